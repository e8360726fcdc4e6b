// The auth handler's side of the JS runtime: its worker thread (./auth-worker.mjs), started on
// the first request, and the watchdog that restarts it when it stops answering pings (a
// handler that spins), failing the requests it held.

import {Worker} from 'node:worker_threads';

/**
 * `send(id, body)` answers a request; `log(level, message)` reports. Returns
 * `authenticate(id, body)`, which runs the app's authHandler for the request `id`.
 */
export function authService({bundleFile, config, send, log}) {
  let worker;
  const waiting = new Set(); // request ids
  let lastPong = 0;
  let watchdog;

  const failAll = why => {
    for (const id of waiting) send(id, JSON.stringify({error: {name: 'Error', message: why}}));
    waiting.clear();
  };

  function start() {
    const started = new Worker(new URL('./auth-worker.mjs', import.meta.url), {
      workerData: {bundleFile, env: config.env},
      resourceLimits: config.heapLimitMb ? {maxOldGenerationSizeMb: config.heapLimitMb} : undefined,
    });
    worker = started;
    lastPong = Date.now();
    // a worker the watchdog gave up on may still speak or exit later: only the current one counts
    started.on('message', message => {
      if (worker !== started) return;
      if (message.pong) {
        lastPong = Date.now();
      } else if (message.log) {
        send(0, JSON.stringify({logs: [message.log]}));
      } else if (waiting.delete(message.id)) {
        send(message.id, JSON.stringify(message.answer));
      }
    });
    started.on('error', e => {
      if (worker !== started) return;
      log('error', `the auth handler's worker failed: ${e?.stack ?? e}`);
      failAll(`the auth handler's worker failed: ${e?.message ?? e}`);
      worker = undefined;
    });
    started.on('exit', () => {
      if (worker !== started) return;
      failAll("the auth handler's worker stopped");
      worker = undefined;
    });
    watchdog ??= setInterval(checkWorker, 250);
    watchdog.unref();
  }

  function checkWorker() {
    if (!worker || waiting.size === 0) {
      lastPong = Date.now();
      return;
    }
    const limit = config.cpuLimitMs;
    if (Date.now() - lastPong > limit + 500) {
      log('error', `the auth handler ran past the time limit of ${limit} ms; its worker is restarted`);
      const stuck = worker;
      worker = undefined;
      failAll(`authHandler ran past the time limit of ${limit} ms`);
      void stuck.terminate();
      return;
    }
    worker.postMessage({ping: true});
  }

  return function authenticate(id, body) {
    if (!worker) start();
    waiting.add(id);
    worker.postMessage({id, ...JSON.parse(body)});
  };
}
