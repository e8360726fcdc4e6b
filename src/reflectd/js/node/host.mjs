// The JS runtime of reflectd: runs a Reflect app's server module beside the Python server.
//
// reflectd starts one such process per server and talks to it over two pipes (file
// descriptors given as arguments), in frames: a 4-byte little-endian length, a 4-byte request
// id, then `op\n` and a JSON body. Answers carry the request's id; id 0 carries log lines.
//
//   load   bundle the app (esbuild, as Reflect's CLI did) and evaluate it; answer its shape
//   batch  run a room's calls (mutations, room handlers) in the mutator context; answer the
//          writes of each call, or its error (batch-guarded: each evaluation time-limited;
//          batches: several rooms' batches, one a line, answered as a JSON array)
//   forget drop the copies of rooms the server has unloaded (no answer)
//   auth   run the auth handler in its own worker thread (it may fetch); answer its result
//
// Mutators and room handlers run in one `vm` context whose microtasks run inside each
// evaluation, so that a call is over when its evaluation returns, and a time limit also stops
// a mutator that spins after an `await` (see "App code that runs too long" below).
// The auth handler runs in a worker thread, with the Web platform of Node, and is stopped by
// terminating the worker when it stops answering.

import {readFileSync} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import vm from 'node:vm';
import {Worker} from 'node:worker_threads';
import {authService} from './auth-host.mjs';
import {bundle} from './bundle.mjs';
import {checkOptions, describeOptions, ModuleError} from './options.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).map(a => a.replace(/^--/, '').split('=')),
);
const input = new net.Socket({fd: Number(args.in), readable: true, writable: false});
const output = new net.Socket({fd: Number(args.out), readable: false, writable: true});

// ------------------------------------------------------------------ frames
function send(id, body) {
  const payload = Buffer.from(body, 'utf8');
  const header = Buffer.allocUnsafe(8);
  header.writeUInt32LE(payload.length + 4, 0);
  header.writeUInt32LE(id, 4);
  output.write(Buffer.concat([header, payload]));
}

function log(level, message) {
  send(0, JSON.stringify({logs: [[level, '', '', message]]}));
}

/** Sends what the app logged outside a batch (while loading, in a timer). */
function flushAppLogs() {
  const logs = context.__reflectdTakeLogs();
  if (logs !== '[]') send(0, `{"logs":${logs}}`);
}

let pending = Buffer.alloc(0);
input.on('data', chunk => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= 4) {
    const length = pending.readUInt32LE(0);
    if (pending.length < 4 + length) break;
    const id = pending.readUInt32LE(4);
    const payload = pending.toString('utf8', 8, 4 + length);
    pending = pending.subarray(4 + length);
    const newline = payload.indexOf('\n');
    handle(id, payload.slice(0, newline), payload.slice(newline + 1));
  }
});
input.on('end', () => process.exit(0));
// the server has closed the pipe (it gave up on this process): nobody is left to answer
output.on('error', () => process.exit(0));
// a promise the app left to fail on its own (a mutator's floating promise, a module that
// throws while loading) must not end the process
process.on('unhandledRejection', e => {
  if (e !== moduleError) log('error', `unhandled rejection: ${e?.stack ?? e}`);
});

function handle(id, op, body) {
  try {
    switch (op) {
      case 'load':
        void load(JSON.parse(body)).then(
          answer => send(id, JSON.stringify(answer)),
          e => send(id, JSON.stringify({error: {kind: 'load', message: describeLoadError(e)}})),
        );
        return;
      case 'batch':
        inTurn(id, () => runBatch(body, false));
        return;
      case 'batch-guarded':
        inTurn(id, () => runBatch(body, true));
        return;
      case 'batches': // several rooms' batches, one a line
        inTurn(id, () => runBatches(body.split('\n'), []));
        return;
      case 'forget':
        for (const key of JSON.parse(body)) batchApi.forget(key);
        return;
      case 'auth':
        authenticate(id, body);
        return;
      default:
        send(id, JSON.stringify({error: {kind: 'internal', message: `unknown op ${op}`}}));
    }
  } catch (e) {
    send(id, JSON.stringify({error: {kind: 'internal', message: e?.stack ?? String(e)}}));
  }
}

function describeLoadError(e) {
  if (e instanceof ModuleError || !e?.stack) return e?.message ?? String(e);
  const hostDir = path.dirname(fileURLToPath(import.meta.url));
  const own = line => line.includes('node:internal') || line.includes(hostDir);
  return e.stack
    .split('\n')
    .filter(line => !own(line))
    .join('\n');
}

// ------------------------------------------------------------------ the mutator context
let config; // {entry, mode, env, limits, cpuLimitMs, heapLimitMb}
let context;
let batchApi;
let authenticate; // the auth handler's service, once the module is loaded

const notAvailable = what => () => {
  throw new Error(
    `${what} is not available to mutators and room handlers under reflectd: they run inside ` +
      "the room's turn and cannot wait for I/O (call your backend from the authHandler, or " +
      'write into rooms with the REST API)',
  );
};

// App code that runs too long is stopped in one of two ways. A batch runs without a time
// limit of its own (a vm timeout starts a thread for each evaluation, which is most of the
// time of a small batch): the watchdog thread sees when the current call started and ends
// this process when a call passes the limit; reflectd starts it again and runs the batch's
// calls again one at a time, "guarded": each evaluation with a vm timeout, so that the call
// that runs away fails alone. Loading the module, timers and such replays are guarded.
const clock = new Float64Array(new SharedArrayBuffer(16)); // [call started at (ms), guarded]
const WATCHDOG = `
const {workerData} = require('node:worker_threads');
const clock = new Float64Array(workerData.buffer);
setInterval(() => {
  const started = clock[0];
  if (started > 0 && Date.now() - started > workerData.limitMs * (clock[1] ? 3 : 1)) {
    process.kill(process.pid, 'SIGKILL');
  }
}, Math.max(5, Math.min(50, workerData.limitMs / 4)));
`;

function startWatchdog() {
  const watchdog = new Worker(WATCHDOG, {
    eval: true,
    workerData: {buffer: clock.buffer, limitMs: config.cpuLimitMs},
  });
  watchdog.unref();
}

const scripts = new Map(); // source -> compiled vm.Script (the host runs a handful, often)

function evaluate(source, guarded) {
  let script = scripts.get(source);
  if (script === undefined) {
    script = new vm.Script(source);
    scripts.set(source, script);
  }
  clock[1] = guarded ? 1 : 0;
  try {
    return {value: script.runInContext(context, guarded ? {timeout: config.cpuLimitMs} : {})};
  } catch (e) {
    if (e?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return {timedOut: true};
    throw e;
  } finally {
    clock[0] = 0;
  }
}

function runGuarded(source) {
  return evaluate(source, true);
}

// Work of the host that app code may await: crypto.subtle operations and timers. A call
// that awaits one goes on when it settles (its batch waits, at most the time limit).
const hostWork = new Set();

function track(promise) {
  hostWork.add(promise);
  const forget = () => hostWork.delete(promise);
  promise.then(forget, forget);
  return promise;
}

/** crypto for the app: subtle's operations tracked as host work. */
function appCrypto() {
  const {subtle} = globalThis.crypto;
  const tracked = {};
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(subtle))) {
    if (name !== 'constructor' && typeof subtle[name] === 'function') {
      tracked[name] = (...args) => track(subtle[name](...args));
    }
  }
  return {
    getRandomValues: array => globalThis.crypto.getRandomValues(array),
    randomUUID: () => globalThis.crypto.randomUUID(),
    subtle: tracked,
  };
}

function makeContext() {
  const timers = new Map();
  let timerIds = 0;
  const schedule = (repeat, fn, ms, ...rest) => {
    const id = ++timerIds;
    let fired;
    if (!repeat) track(new Promise(resolve => (fired = resolve)));
    const fire = () => {
      if (!repeat) timers.delete(id);
      context.__reflectdTimer = () => fn(...rest);
      try {
        runGuarded('__reflectdTimer()');
      } catch (e) {
        log('error', `timer callback failed: ${e?.stack ?? e}`);
      }
      flushAppLogs();
      fired?.();
    };
    timers.set(id, {handle: repeat ? setInterval(fire, ms) : setTimeout(fire, ms), fired});
    return id;
  };
  const clear = id => {
    const timer = timers.get(id);
    if (timer !== undefined) {
      clearTimeout(timer.handle);
      clearInterval(timer.handle);
      timers.delete(id);
      timer.fired?.();
    }
  };
  const globals = {
    __reflectdHost: {
      utf8Length: s => Buffer.byteLength(s, 'utf8'),
      callStarted: at => {
        clock[0] = at;
      },
    },
    crypto: appCrypto(),
    TextEncoder,
    TextDecoder,
    atob,
    btoa,
    URL,
    URLSearchParams,
    structuredClone,
    performance,
    AbortController,
    setTimeout: (fn, ms, ...rest) => schedule(false, fn, ms, ...rest),
    setInterval: (fn, ms, ...rest) => schedule(true, fn, ms, ...rest),
    clearTimeout: clear,
    clearInterval: clear,
    fetch: notAvailable('fetch'),
    WebSocket: notAvailable('WebSocket'),
    XMLHttpRequest: notAvailable('XMLHttpRequest'),
  };
  context = vm.createContext(globals, {microtaskMode: 'afterEvaluate', name: 'reflectd app'});
  const prelude = readFileSync(new URL('./prelude.js', import.meta.url), 'utf8');
  new vm.Script(prelude, {filename: 'reflectd-prelude.js'}).runInContext(context);
  new vm.Script('globalThis.queueMicrotask = fn => void Promise.resolve().then(fn);').runInContext(
    context,
  );
  batchApi = context.__reflectdBatch;
}

let moduleError;

async function evaluateModule(code) {
  const module = new vm.SourceTextModule(code, {context, identifier: config.entry});
  await module.link(specifier => {
    throw new ModuleError(`${config.entry}: import ${JSON.stringify(specifier)} cannot be provided`);
  });
  // its promise never settles here (this context runs its own microtasks): read the status
  void module.evaluate({timeout: config.cpuLimitMs}).catch(() => {});
  // a top-level await goes on only inside an evaluation of this context
  for (let i = 0; module.status === 'evaluating' && i < 1000; i++) {
    await new Promise(resolve => setImmediate(resolve));
    runGuarded('');
  }
  if (module.status === 'errored') {
    moduleError = module.error; // the load's answer reports it; its promise is left rejected
    throw module.error;
  }
  if (module.status !== 'evaluated') throw new ModuleError(`${config.entry}: its top-level await did not finish`);
  return module.namespace;
}

async function load(request) {
  config = request;
  const built = await bundle(config.entry, config.mode);
  if (built.errors) return {error: {kind: 'bundle', message: built.errors}};
  makeContext();
  startWatchdog();
  const namespace = await evaluateModule(built.code);
  context.__reflectdDefault = namespace.default;
  context.__reflectdEnv = config.env;
  const made = runGuarded(`(() => {
    const d = __reflectdDefault;
    const make = typeof d === 'function' ? d : d?.__reflectdMakeOptions ?? (() => d);
    return make(Object.freeze({...__reflectdEnv}));
  })()`);
  if (made.timedOut) throw new ModuleError(`${config.entry}: makeOptions ran past the time limit`);
  const options = made.value;
  checkOptions(options, config.entry, log);
  context.__reflectdOptions = options;
  context.__reflectdConfig = {env: config.env, limits: config.limits};
  runGuarded('__reflectdConfigure(__reflectdConfig, __reflectdOptions)');
  flushAppLogs();
  authenticate = authService({bundleFile: built.file, config, send, log});
  return {...describeOptions(options), inputs: built.inputs, warnings: built.warnings};
}

// ------------------------------------------------------------------ batches
// Batches run one at a time, in the order they came: one that waits for host work holds
// the next ones back (they share the context's batch state).
let running = null;
const waitingBatches = [];

function inTurn(id, work) {
  if (running !== null) {
    waitingBatches.push([id, work]);
    return;
  }
  const answer = work();
  if (typeof answer === 'string') {
    send(id, answer);
    return;
  }
  running = answer.then(
    text => send(id, text),
    e => send(id, JSON.stringify({error: {kind: 'internal', message: e?.stack ?? String(e)}})),
  );
  void running.then(() => {
    running = null;
    while (running === null && waitingBatches.length > 0) inTurn(...waitingBatches.shift());
  });
}

/** Runs each of `texts` after the other; the answers as a JSON array (now or later). */
function runBatches(texts, answers) {
  while (answers.length < texts.length) {
    const answer = runBatch(texts[answers.length], false);
    if (typeof answer !== 'string') {
      return answer.then(text => runBatches(texts, [...answers, text]));
    }
    answers.push(answer);
  }
  return `[${answers.join(',')}]`;
}

/** A batch's answer: now, or later when a call awaits host work. */
function runBatch(text, guarded) {
  if (!batchApi.prepare(text)) return '{"resync":true}';
  return settle(evaluate('__reflectdBatch.run()', guarded), guarded, 0);
}

function settle(outcome, guarded, from) {
  const limit = config.cpuLimitMs;
  for (;;) {
    const {done, index, startedAt} = batchApi.progress();
    if (done) return batchApi.finish();
    const waited = Date.now() - startedAt;
    if (!outcome.timedOut && hostWork.size > 0 && waited < limit) {
      // the call awaits host work: go on when some of it settles (at most the time limit)
      return hostWorkSettled(limit - waited).then(() =>
        settle(evaluate('', guarded), guarded, from),
      );
    }
    if (outcome.timedOut && index > from && waited < limit * 0.9) {
      // the time ran out on the calls before this one: run it again, with its own time
      from = index;
      outcome = evaluate('__reflectdBatch.retryCurrent()', guarded);
      continue;
    }
    context.__reflectdSkip = outcome.timedOut
      ? `it ran past the time limit of ${limit} ms and was stopped`
      : hostWork.size > 0
        ? `it did not finish within the time limit of ${limit} ms`
        : 'it did not finish: mutators and room handlers cannot wait for anything but the ' +
          'transaction, timers and crypto.subtle (no I/O)';
    from = index + 1;
    outcome = evaluate('__reflectdBatch.skipCurrent(__reflectdSkip)', guarded);
  }
}

function hostWorkSettled(ms) {
  let timer;
  const timeout = new Promise(resolve => (timer = setTimeout(resolve, ms)));
  return Promise.race([...hostWork, timeout]).then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
}
