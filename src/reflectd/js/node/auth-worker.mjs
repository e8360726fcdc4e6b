// The auth handler's thread: the app's bundle evaluated with Node's Web platform (fetch,
// crypto.subtle, ...), as the hosted service ran it in a worker of its own. The host stops
// this thread when it stops answering pings (a handler that spins).

import {parentPort, workerData} from 'node:worker_threads';
import {pathToFileURL} from 'node:url';

const {bundleFile, env} = workerData;

function format(args) {
  return args
    .map(a => (typeof a === 'string' ? a : a instanceof Error ? (a.stack ?? String(a)) : safeJSON(a)))
    .join(' ');
}
function safeJSON(value) {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
for (const [method, level] of [['debug', 'debug'], ['log', 'info'], ['info', 'info'], ['warn', 'warn'], ['error', 'error']]) {
  console[method] = (...args) => parentPort.postMessage({log: [level, '', '', format(args)]});
}

const namespace = await import(pathToFileURL(bundleFile).href);
const exported = namespace.default;
const make = typeof exported === 'function' ? exported : (exported?.__reflectdMakeOptions ?? (() => exported));
const {authHandler} = make(Object.freeze({...env}));

parentPort.on('message', async message => {
  if (message.ping) {
    parentPort.postMessage({pong: true});
    return;
  }
  let answer;
  try {
    const result = await authHandler(message.token, message.roomID, env);
    answer = {result: result ?? null};
    JSON.stringify(answer);
  } catch (e) {
    answer = {error: {name: e?.name ?? 'Error', message: e?.message ?? String(e)}};
  }
  parentPort.postMessage({id: message.id, answer});
});
