// Drives the UNMODIFIED @rocicorp/reflect client under Node for reflectd's interop tests.
//
// Protocol: one JSON request per line on stdin, {"id": 1, "cmd": "open", ...}; one JSON
// response per line on stdout, {"id": 1, "ok": true, "result": ...} or
// {"id": 1, "ok": false, "error": "..."}. Requests run concurrently. stdout carries nothing
// else: the client's console output is captured (see `state`) and errors are mirrored to
// stderr (everything with REFLECT_DRIVER_VERBOSE=1).
//
// The client is written for browsers; this sets up what it needs before importing it: a `ws`
// WebSocket (with a no-op 'error' listener, since the client closes sockets that are still
// connecting), `navigator`, `location` (reload() is recorded, not performed) and a ~16 ms
// `requestAnimationFrame` (pokes are played back on animation frames).
//
// A mutation counts as CONFIRMED when it has left the client's pending queue
// (Replicache.experimentalPendingMutations()), i.e. when a poke carrying
// lastMutationIDChanges[clientID] >= its id has been applied. The Replicache instance is the
// private field `#rep` of Reflect; it is read through the in-process inspector, and its
// poke() is wrapped to observe applied pokes (and the errors the client otherwise swallows).
import {setMaxListeners} from 'node:events';
import inspector from 'node:inspector';
import {readFileSync} from 'node:fs';
import readline from 'node:readline';
import {pathToFileURL} from 'node:url';
import {isDeepStrictEqual, inspect} from 'node:util';
import WS from 'ws';

setMaxListeners(10_000); // the client adds an abort listener per pending wait
const VERBOSE = process.env.REFLECT_DRIVER_VERBOSE === '1';
const MAX_LOGS = 50_000;

// ---- console capture: the client logs through console[level](context..., args...) ----------
const logs = []; // {t, level, text}
const fmt = a =>
  typeof a === 'string' ? a : a instanceof Error ? `${a.name}: ${a.message}` : inspect(a, {depth: 4, breakLength: Infinity});
for (const level of ['debug', 'info', 'log', 'warn', 'error']) {
  console[level] = (...args) => {
    const text = args.map(fmt).join(' ');
    logs.push({t: Date.now(), level, text});
    if (logs.length > MAX_LOGS) logs.splice(0, logs.length - MAX_LOGS);
    if (VERBOSE || level === 'error') process.stderr.write(`[${level}] ${text}\n`);
  };
}

// ---- browser globals -------------------------------------------------------------------------
const wire = new Map(); // clientID -> what went over its sockets
const sockets = new Map(); // clientID -> its latest socket
function wireFor(clientID) {
  let w = wire.get(clientID);
  if (!w) wire.set(clientID, (w = {connects: [], connected: 0, errors: [], pokes: 0, pushes: 0, closes: []}));
  return w;
}

class TrackedWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols);
    this.on('error', () => {}); // browsers never throw here; ws does when closed while connecting
    const q = new URL(String(url)).searchParams;
    const w = wireFor(q.get('clientID'));
    sockets.set(q.get('clientID'), this); // the latest, for dropConnection
    w.connects.push({
      t: Date.now(),
      baseCookie: q.get('baseCookie'),
      lmid: q.get('lmid'),
      withAuth: protocols !== undefined,
    });
    this.addEventListener('message', ({data}) => {
      if (typeof data !== 'string') return;
      if (data.startsWith('["poke"')) w.pokes++;
      else if (data.startsWith('["connected"')) w.connected++;
      else if (data.startsWith('["error"')) {
        try {
          const [, kind, message] = JSON.parse(data);
          w.errors.push({t: Date.now(), kind, message});
        } catch {
          w.errors.push({t: Date.now(), kind: 'unparseable', message: data});
        }
      }
    });
    this.addEventListener('close', ({code, reason, wasClean}) =>
      w.closes.push({t: Date.now(), code, reason, wasClean}),
    );
  }
  send(data, ...rest) {
    if (typeof data === 'string' && data.startsWith('["push"')) wireFor(new URL(this.url).searchParams.get('clientID')).pushes++;
    return super.send(data, ...rest);
  }
}

const reloads = [];
// Errors nobody handled. Notably, on a server-ahead error the client first drops its IndexedDB
// database, which throws under Node (no indexedDB), so location.reload() is never reached.
const uncaught = [];
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, e => {
    uncaught.push({t: Date.now(), event, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e)});
    console.error(event, e);
  });
}
globalThis.WebSocket = TrackedWebSocket;
Object.defineProperty(globalThis, 'navigator', {
  value: {onLine: true, userAgent: 'reflectd-interop-driver (Node)'},
  configurable: true,
  writable: true,
});
globalThis.location = {
  host: 'localhost',
  hostname: 'localhost',
  href: 'http://localhost/',
  origin: 'http://localhost',
  reload() {
    reloads.push({t: Date.now(), stack: new Error().stack});
    console.error('location.reload() called');
  },
};
// Clients before 0.38 read `localStorage` unguarded (the reload reason) in their constructor.
if (typeof globalThis.localStorage === 'undefined') globalThis.localStorage = Object.create(null);
globalThis.requestAnimationFrame = cb => setTimeout(() => cb(performance.now()), 16);
globalThis.cancelAnimationFrame = handle => clearTimeout(handle);

// The client: the pinned one (./node_modules), or with REFLECT_CLIENT=<alias> one of the older
// published versions installed side by side under npm aliases in ../versions/node_modules
// (`reflect-0.38.202311200859`, ...: see ../versions/package.json).
const CLIENT_ALIAS = process.env.REFLECT_CLIENT ?? '';
if (CLIENT_ALIAS && !/^reflect-[0-9][0-9A-Za-z.-]*$/.test(CLIENT_ALIAS)) {
  throw new Error(`REFLECT_CLIENT must name an alias of ../versions/package.json, not ${JSON.stringify(CLIENT_ALIAS)}`);
}
const clientDir = new URL(
  CLIENT_ALIAS ? `../versions/node_modules/${CLIENT_ALIAS}/` : './node_modules/@rocicorp/reflect/',
  import.meta.url,
);
// e.g. "0.38.202311200859+8c13c9" (the client module does not export its version)
const clientVersion = JSON.parse(readFileSync(new URL('package.json', clientDir), 'utf8')).version;
const {Reflect} = await import(new URL('client.js', clientDir).href);

// ---- mutators: the test app's (bench/node/mutators.js), each returning its mutation id,
// plus one the server lacks.
// REFLECT_MUTATORS=<path of an ES module> loads an app's own mutators instead: its export
// `mutators` (or its default export), e.g. an app's src/mutators.ts bundled for Node.
const MUTATORS_MODULE = process.env.REFLECT_MUTATORS ?? '';
const mutatorsModule = await import(
  MUTATORS_MODULE ? pathToFileURL(MUTATORS_MODULE).href : '../../../bench/node/mutators.js'
);
const sharedMutators = mutatorsModule.mutators ?? mutatorsModule.default;
if (!sharedMutators || typeof sharedMutators !== 'object') {
  throw new Error(`${MUTATORS_MODULE}: exports no \`mutators\` object (nor a default one)`);
}
const clientMutators = {};
for (const [name, fn] of Object.entries(sharedMutators)) {
  clientMutators[name] = async (tx, args) => {
    const result = await fn(tx, args);
    return {mutationID: tx.mutationID, result: result ?? null}; // the optimistic run's result
  };
}
// Not in the server apps: the server must skip it (consuming its id) and keep going.
clientMutators.clientOnly ??= async (tx, {key, value}) => {
  await tx.set(key, value);
  return {mutationID: tx.mutationID, result: null};
};

// ---- private field access through the inspector ----------------------------------------------
const session = new inspector.Session();
session.connect();
function post(method, params) {
  let error, result;
  session.post(method, params, (e, r) => ((error = e), (result = r))); // synchronous in-thread
  if (error) throw error;
  return result;
}
function privateField(obj, name) {
  globalThis.__driverTarget = obj;
  try {
    const {result} = post('Runtime.evaluate', {expression: 'globalThis.__driverTarget', objectGroup: 'driver'});
    const {privateProperties = []} = post('Runtime.getProperties', {objectId: result.objectId, ownProperties: true});
    const prop = privateProperties.find(p => p.name === name);
    if (!prop?.value?.objectId) throw new Error(`private field ${name} not found`);
    post('Runtime.callFunctionOn', {
      objectId: prop.value.objectId,
      functionDeclaration: 'function () { globalThis.__driverFound = this; }',
    });
    return globalThis.__driverFound;
  } finally {
    post('Runtime.releaseObjectGroup', {objectGroup: 'driver'});
    delete globalThis.__driverTarget;
    delete globalThis.__driverFound;
  }
}

// ---- clients -----------------------------------------------------------------------------------
const clients = new Map(); // name -> client record

function client(name) {
  const c = clients.get(name);
  if (!c) throw new Error(`no client named ${JSON.stringify(name)}`);
  if (c.closed) throw new Error(`client ${JSON.stringify(name)} is closed`);
  return c;
}

function notify(c) {
  for (const listener of [...c.listeners]) listener();
}

// Resolves when check() (sync or async) returns a truthy value, re-checking on every change
// of the client (applied poke, presence, online) and every 50 ms.
function until(c, check, timeoutMs, describe) {
  return new Promise((resolve, reject) => {
    let done = false;
    let running = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(interval);
      c.listeners.delete(run);
      err ? reject(err) : resolve(value);
    };
    const run = async () => {
      if (done || running) return;
      running = true;
      try {
        const v = await check();
        if (v) finish(null, v);
      } catch (e) {
        finish(e);
      } finally {
        running = false;
      }
    };
    const timer = setTimeout(
      () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`)),
      timeoutMs,
    );
    const interval = setInterval(run, 50);
    c.listeners.add(run);
    void run();
  });
}

// Confirmation waiters: id -> resolve; checked after each applied poke and every 50 ms.
async function checkConfirmed(c) {
  if (c.checking) {
    c.recheck = true;
    return;
  }
  c.checking = true;
  try {
    do {
      c.recheck = false;
      if (c.waiters.size === 0 || c.closed) break;
      const pending = await c.rep.experimentalPendingMutations();
      const ids = new Set(pending.filter(m => m.clientID === c.clientID).map(m => m.id));
      for (const [id, resolve] of c.waiters) {
        if (!ids.has(id)) {
          c.waiters.delete(id);
          resolve();
        }
      }
    } while (c.recheck);
  } catch (e) {
    if (!c.closed) console.error('checkConfirmed failed', e);
  } finally {
    c.checking = false;
  }
}
setInterval(() => {
  for (const c of clients.values()) if (c.waiters.size) void checkConfirmed(c);
}, 50).unref();

function confirmed(c, id, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.waiters.delete(id);
      reject(new Error(`mutation ${id} of ${c.name} not confirmed within ${timeoutMs} ms (online=${c.r.online})`));
    }, timeoutMs);
    c.waiters.set(id, () => {
      clearTimeout(timer);
      resolve();
    });
    void checkConfirmed(c);
  });
}

const canonical = v =>
  JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map(k => [k, x[k]]))
      : x,
  );

const commands = {
  hello: () => ({
    node: process.version,
    reflect: clientVersion,
    alias: CLIENT_ALIAS || null,
    mutators: Object.keys(clientMutators),
  }),

  async open({name, server, roomID, userID, auth = null, logLevel = 'info', waitOnline = true, timeout = 15_000}) {
    if (clients.has(name) && !clients.get(name).closed) throw new Error(`client ${name} already open`);
    const t0 = performance.now();
    const c = {name, roomID, userID, closed: false, online: false, onlineChanges: [], updateNeeded: [],
      pokeErrors: [], pokesApplied: 0, presence: [], listeners: new Set(), waiters: new Map()};
    const r = new Reflect({
      server, roomID, userID,
      auth: auth ?? undefined,
      kvStore: 'mem',
      enableAnalytics: false,
      logLevel,
      mutators: clientMutators,
      onOnlineChange: online => {
        c.online = online;
        c.onlineChanges.push({t: Date.now(), online});
        notify(c);
      },
    });
    r.onUpdateNeeded = reason => c.updateNeeded.push({t: Date.now(), reason});
    // clientID is a promise in 0.36, a string from 0.37 on
    Object.assign(c, {r, clientID: await r.clientID, rep: privateField(r, '#rep')});
    const poke = c.rep.poke.bind(c.rep);
    c.rep.poke = async p => {
      try {
        await poke(p);
        c.pokesApplied++;
      } catch (e) {
        c.pokeErrors.push({t: Date.now(), error: String(e).slice(0, 500)});
        throw e;
      } finally {
        void checkConfirmed(c);
        notify(c);
      }
    };
    r.subscribeToPresence(ids => {
      c.presence = [...ids].sort();
      notify(c);
    });
    clients.set(name, c);
    if (waitOnline) await until(c, () => c.online, timeout, () => `${name} to connect to ${server}`);
    return {clientID: c.clientID, clientGroupID: await r.clientGroupID, ms: performance.now() - t0};
  },

  // noArgs: calls the mutator with no argument at all (`r.mutate.reset()`).
  async mutate({name, mutator, args = {}, noArgs = false, confirm = true, timeout = 30_000}) {
    const c = client(name);
    const fn = c.r.mutate[mutator];
    if (!fn) throw new Error(`unknown mutator ${mutator}`);
    const t0 = performance.now();
    const {mutationID: id, result} = noArgs ? await fn() : await fn(args);
    const localMs = performance.now() - t0;
    if (!confirm) return {id, result, localMs};
    await confirmed(c, id, timeout);
    return {id, result, localMs, ms: performance.now() - t0};
  },

  // Waits until every mutation this client has made so far is confirmed.
  async settle({name, timeout = 30_000}) {
    const c = client(name);
    const t0 = performance.now();
    await until(c, async () => {
      const pending = await c.rep.experimentalPendingMutations();
      return !pending.some(m => m.clientID === c.clientID);
    }, timeout, () => `${name}'s pending mutations to be confirmed`);
    return {ms: performance.now() - t0};
  },

  async get({name, key}) {
    const v = await client(name).r.query(tx => tx.get(key));
    return {exists: v !== undefined, value: v ?? null};
  },

  async scan({name, prefix = ''}) {
    return client(name).r.query(tx => tx.scan({prefix}).entries().toArray());
  },

  // Until `key` deep-equals `value` (or is absent, with absent: true) in the client's view.
  async waitFor({name, key, value = null, absent = false, timeout = 15_000}) {
    const c = client(name);
    const t0 = performance.now();
    let last;
    let unsubscribe = () => {};
    try {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out after ${timeout} ms waiting for ${name}: ${key} = ${absent ? '<absent>' : canonical(value)}; last seen ${last === undefined ? '<absent>' : canonical(last)}`)),
          timeout,
        );
        unsubscribe = c.r.subscribe(tx => tx.get(key), {
          onData: v => {
            last = v;
            if (absent ? v === undefined : v !== undefined && isDeepStrictEqual(v, value)) {
              clearTimeout(timer);
              resolve();
            }
          },
          onError: e => {
            clearTimeout(timer);
            reject(e);
          },
        });
      });
    } finally {
      unsubscribe();
    }
    return {ms: performance.now() - t0};
  },

  presence: ({name}) => ({clientID: client(name).clientID, present: client(name).presence}),

  async waitPresence({name, present, timeout = 15_000}) {
    const c = client(name);
    const want = [...present].sort();
    const t0 = performance.now();
    await until(c, () => isDeepStrictEqual(c.presence, want), timeout,
      () => `${name}'s presence to be ${JSON.stringify(want)}, is ${JSON.stringify(c.presence)}`);
    return {ms: performance.now() - t0};
  },

  // Until online (or offline) after at least `connected` 'connected' messages in all.
  async waitOnline({name, online = true, connected = 0, timeout = 15_000}) {
    const c = client(name);
    const t0 = performance.now();
    const w = wireFor(c.clientID);
    await until(c, () => c.online === online && w.connected >= connected, timeout,
      () => `${name} to be ${online ? 'online' : 'offline'} after ${connected} connections (has ${w.connected})`);
    return {ms: performance.now() - t0};
  },

  // Cuts the client's current connection as a network failure would (no close frame); the
  // client sees an abrupt close and reconnects by itself.
  dropConnection({name}) {
    const socket = sockets.get(client(name).clientID);
    if (!socket) throw new Error(`${name} has no connection to drop`);
    socket.terminate();
    return {};
  },

  // What happened to one client (name) or to the whole process (no name).
  state({name, logLevels = ['error', 'warn', 'info']}) {
    const pick = l => logLevels.includes(l.level);
    if (name === undefined) {
      return {reloads, uncaught, logs: logs.filter(pick), clients: [...clients.keys()]};
    }
    const c = clients.get(name);
    if (!c) throw new Error(`no client named ${JSON.stringify(name)}`);
    const mine = `clientID=${c.clientID}`;
    const repName = `name=reflect-${c.userID}-${c.roomID}`;
    return {
      clientID: c.clientID, closed: c.closed, online: c.online, onlineChanges: c.onlineChanges,
      updateNeeded: c.updateNeeded, pokeErrors: c.pokeErrors, pokesApplied: c.pokesApplied,
      presence: c.presence, wire: wireFor(c.clientID), reloads,
      logs: logs.filter(l => pick(l) && (l.text.includes(mine) || l.text.includes(repName))),
    };
  },

  // persist: first write the in-memory snapshot to the (process-wide) 'mem' store, as
  // Replicache does on its own about 1 s after the last change, so that reopening the same
  // userID and roomID later starts from this client's cookie (like reloading a tab).
  async close({name, persist = false}) {
    const c = client(name);
    if (persist) {
      // #internalAPI exists from 0.39.202402220553 on; older clients persist only on their own
      let api;
      try {
        api = privateField(c.r, '#internalAPI');
      } catch {
        throw new Error(`close({persist: true}) needs a client with #internalAPI (0.39.202402220553 or later), not ${clientVersion}`);
      }
      for (let attempt = 0; ; attempt++) {
        try {
          await api.persist();
          break;
        } catch (e) {
          if (attempt >= 20) throw e; // a scheduled persist is running: try again shortly
          await new Promise(resolve => setTimeout(resolve, 100));
        }
      }
    }
    c.closed = true;
    c.waiters.clear();
    await c.r.close();
    return {};
  },

  async exit() {
    await Promise.allSettled([...clients.values()].filter(c => !c.closed).map(c => c.r.close()));
    setTimeout(() => process.exit(0), 10);
    return {};
  },
};

const write = obj => process.stdout.write(JSON.stringify(obj) + '\n');
readline.createInterface({input: process.stdin}).on('line', async line => {
  if (!line.trim()) return;
  let id = null;
  try {
    const req = JSON.parse(line);
    id = req.id ?? null;
    const fn = commands[req.cmd];
    if (!fn) throw new Error(`unknown command ${req.cmd}`);
    write({id, ok: true, result: (await fn(req)) ?? null});
  } catch (e) {
    write({id, ok: false, error: e instanceof Error ? e.message : String(e)});
  }
}).on('close', () => process.exit(0)); // the controller went away
write({id: null, ok: true, result: 'ready'});
