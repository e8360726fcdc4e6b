// Starts the ORIGINAL Reflect server (the pinned @rocicorp/reflect of package.json) under
// miniflare/workerd, for side-by-side comparisons with reflectd (python -m bench.run, and the
// interop tests with REFLECTD_INTEROP_TARGET=original).
//
//   node original.mjs --server-path ../reflect/index.ts --port 8080 [--api-key KEY]
//        [--host 127.0.0.1] [--log-level error|info|debug] [--persist DIR [--fresh]]
//
// It takes the steps of `npx reflect dev` (startDevServer in @rocicorp/reflect/bin/cli.js):
// the app bundled by esbuild with the CLI's options, @rocicorp/reflect/server bundled beside it
// as reflect-server.js, the package's own dev worker template, the RoomDO and AuthDO durable
// objects, the same compatibility date and flags. It leaves out what makes `reflect dev` unfit
// for a benchmark: the browser login to a hosted service, and the random REST API key it never
// prints (here --api-key, default dev-api-key). Without --persist the rooms live in memory.
// Prints one line when it is ready; stops on SIGINT/SIGTERM.
import {createRequire} from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import {pathToFileURL} from 'node:url';

const MODE = 'development';
//: what `reflect dev` gives miniflare (compatibilityDate, compatibilityFlags)
const COMPATIBILITY_DATE = '2023-05-18';
const COMPATIBILITY_FLAGS = ['nodejs_compat'];

function parseArgs(argv) {
  const opts = {
    port: 8080,
    host: '127.0.0.1',
    serverPath: undefined,
    apiKey: 'dev-api-key',
    logLevel: 'error',
    persist: undefined,
    fresh: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i];
    switch (argv[i]) {
      case '--port': opts.port = Number(value()); break;
      case '--host': opts.host = value(); break;
      case '--server-path': opts.serverPath = path.resolve(value()); break;
      case '--api-key': opts.apiKey = value(); break;
      case '--log-level': opts.logLevel = value(); break;
      case '--persist': opts.persist = path.resolve(value()); break;
      case '--fresh': opts.fresh = true; break;
      default:
        console.error(`original.mjs: unknown option ${argv[i]} (see the comment at its top)`);
        process.exit(2);
    }
  }
  if (!opts.serverPath) {
    console.error('original.mjs: --server-path FILE (a Reflect server module) is required');
    process.exit(2);
  }
  return opts;
}

// The server tooling comes with the client package: resolve it from there.
const require = createRequire(import.meta.url);
const reflectMain = require.resolve('@rocicorp/reflect');
const fromReflect = createRequire(reflectMain);
const load = name => import(pathToFileURL(fromReflect.resolve(name)).href);
const esbuild = await load('esbuild');
const {Miniflare} = await load('miniflare');
const reflectDir = path.dirname(reflectMain);

// As the CLI's getEsbuildOptions(): @rocicorp/reflect/server stays outside the app's bundle.
function esbuildOptions(entryPoint, sourcemap) {
  return {
    bundle: true,
    conditions: ['workerd', 'worker', 'browser'],
    define: {'process.env.NODE_ENV': JSON.stringify(MODE), 'process.env': '{}'},
    external: ['node:diagnostics_channel'],
    format: 'esm',
    outdir: '.', // as the CLI: miniflare names the modules relative to the working directory
    platform: 'browser',
    plugins: [{
      name: 'replace-reflect',
      setup(build) {
        build.onResolve({filter: /^@rocicorp\/reflect\/server$/}, () => ({
          path: './reflect-server.js',
          external: true,
        }));
      },
    }],
    target: 'esnext',
    write: false,
    entryPoints: [entryPoint],
    sourcemap,
  };
}

async function modules(serverPath) {
  const app = await esbuild.build(esbuildOptions(serverPath, 'linked'));
  const code = app.outputFiles.find(f => f.path.endsWith('.js'));
  const map = app.outputFiles.find(f => f.path.endsWith('.map'));
  const server = await esbuild.build(
    esbuildOptions(fromReflect.resolve('@rocicorp/reflect/server'), false),
  );
  const dir = path.dirname(code.path);
  const worker = fs
    .readFileSync(path.join(reflectDir, 'script-templates', 'dev-script.js'), 'utf8')
    .replaceAll('app-module-name.js', path.basename(code.path))
    .replaceAll('server-module-name.js', 'reflect-server.js');
  return [
    {type: 'ESModule', path: path.join(dir, 'worker.js'), contents: worker},
    {type: 'ESModule', path: code.path, contents: code.text},
    {type: 'Text', path: map.path, contents: map.text},
    {type: 'ESModule', path: path.join(dir, 'reflect-server.js'), contents: server.outputFiles[0].text},
  ];
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
if (opts.persist && opts.fresh) fs.rmSync(opts.persist, {recursive: true, force: true});
const mf = new Miniflare({
  host: opts.host,
  port: opts.port,
  modules: await modules(opts.serverPath),
  bindings: {REFLECT_API_KEY: opts.apiKey, LOG_LEVEL: opts.logLevel},
  durableObjects: {roomDO: 'RoomDO', authDO: 'AuthDO'},
  durableObjectsPersist: opts.persist ?? false,
  compatibilityDate: COMPATIBILITY_DATE,
  compatibilityFlags: COMPATIBILITY_FLAGS,
  handleRuntimeStdio(stdout, stderr) {
    readline.createInterface(stdout).on('line', line => console.log(line));
    readline.createInterface(stderr).on('line', line => {
      if (!/stack:( (0|[a-f\d]{4,})){3,}/.test(line)) console.error(line); // workerd's traces
    });
  },
});
const url = await mf.ready;
const {version} = JSON.parse(fs.readFileSync(path.join(reflectDir, 'package.json'), 'utf8'));
console.log(
  `original Reflect server ${version} ready in ${Date.now() - started} ms at ${url.href} ` +
    `(persist: ${opts.persist ?? 'memory'}, pid ${process.pid})`,
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    try {
      await mf.dispose();
    } finally {
      process.exit(0);
    }
  });
}
