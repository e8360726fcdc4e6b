// Bundles a Reflect app's server module as Reflect's CLI did: esbuild, ESM, the worker
// conditions, process.env replaced. '@rocicorp/reflect/server' becomes reflectd's own
// implementation of its runtime values (./reflect-server.js); its types vanish as usual.

import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {builtinModules, createRequire} from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {pathToFileURL} from 'node:url';

const REFLECT_SERVER = new URL('./reflect-server.js', import.meta.url).pathname;

/** esbuild: the app's own (every app with @rocicorp/reflect installed has it), else ours. */
async function loadEsbuild(entry) {
  for (const from of [entry, import.meta.url.replace('file://', '')]) {
    try {
      const resolved = createRequire(from).resolve('esbuild');
      return await import(pathToFileURL(resolved).href);
    } catch {
      // try the next place
    }
  }
  throw new Error(
    'esbuild was not found: run `npm install` in your app (with @rocicorp/reflect among its ' +
      "packages), or install reflectd's own JS packages (scripts/bootstrap-node)",
  );
}

const replaceReflectServer = {
  name: 'reflectd-reflect-server',
  setup(build) {
    build.onResolve({filter: /^@rocicorp\/reflect\/server$/}, () => ({path: REFLECT_SERVER}));
  },
};

/** One line per message: file:line:column, esbuild's text, and what to do about it. */
function describe(message) {
  const where = message.location;
  const at = where ? `${where.file}:${where.line}:${where.column + 1}: ` : '';
  // reflectd's stand-in for the package is its own business
  const text = message.text.replace(/"[^"]*reflect-server\.js"/g, '"@rocicorp/reflect/server"');
  const unresolved = /^Could not resolve "(.*)"$/.exec(text)?.[1];
  if (unresolved === undefined) {
    return `${at}${text}${(message.notes ?? []).map(n => ` (${n.text})`).join('')}`;
  }
  // esbuild's notes suggest its own options (platform, external), which an app cannot set
  const hint =
    unresolved.startsWith('node:') || builtinModules.includes(unresolved)
      ? 'Node.js built-in modules are not available to a server module, which runs as in a Worker'
      : 'is the package installed? (run `npm install` in your app)';
  return `${at}${text}: ${hint}`;
}

let outDir;

/**
 * Bundles `entry`; `mode` is 'production' (serve) or 'development' (dev).
 * Returns {code, file, inputs, warnings} or {errors} (text with file:line:column).
 */
export async function bundle(entry, mode) {
  const esbuild = await loadEsbuild(entry);
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: path.dirname(entry),
      bundle: true,
      conditions: ['workerd', 'worker', 'browser'],
      define: {'process.env.NODE_ENV': JSON.stringify(mode), 'process.env': '{}'},
      format: 'esm',
      platform: 'browser',
      target: 'esnext',
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [replaceReflectServer],
    });
  } catch (e) {
    if (Array.isArray(e?.errors)) return {errors: e.errors.map(describe).join('\n')};
    throw e;
  }
  const code = result.outputFiles[0].text;
  outDir ??= mkdtempSync(path.join(os.tmpdir(), 'reflectd-app-'));
  const file = path.join(outDir, 'app.mjs');
  writeFileSync(file, code);
  const base = path.dirname(entry);
  const inputs = Object.keys(result.metafile.inputs)
    .filter(input => !input.startsWith('<'))
    .map(input => path.resolve(base, input))
    .filter(input => input !== REFLECT_SERVER);
  return {code, file, inputs, warnings: result.warnings.map(describe)};
}

process.on('exit', () => {
  if (outDir) rmSync(outDir, {recursive: true, force: true});
});
