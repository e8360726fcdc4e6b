// Load driver for reflectd's benchmark: the UNMODIFIED @rocicorp/reflect client under Node.
//
//   node bench.mjs --server http://127.0.0.1:8080 --workload closed [--clients 20 --mutations 50]
//
// Workloads (each in its own fresh rooms, so runs against one server do not interfere):
//   closed   one room, N clients, each does M `echo` mutations one at a time: round trip from
//            mutate() to server confirmation, and the time until another client sees the value
//   open     one room, N clients, each fires M mutations without waiting (optionally paced with
//            --rate per client): confirmed mutations/s
//   rooms    R rooms x N clients x M mutations, open loop: aggregate confirmed mutations/s
//   connect  K clients open one after the other in one room: connect time
// Several drivers can share one workload (python -m bench.run --set driver_procs=N): --room names the room
// (closed, open, connect; rooms: the prefix of the rooms), --user-prefix keeps their userIDs
// apart, and --start-at (epoch ms) makes them all start mutating at the same moment.
// Prints one JSON object on stdout (everything else goes to stderr) and exits.
//
// CONFIRMATION. Every mutation is `echo({key: 'e/<clientID>', seq})`, which writes
// {seq, loc: tx.location, clientID}. The client first sees its optimistic value (loc 'client');
// the value with loc 'server' exists only once the server ran the mutator and the client applied
// the poke carrying it, which is the same poke whose lastMutationIDChanges confirms the mutation
// (patch and lmid travel together). A subscription to the key therefore observes confirmation
// through the public API only: seq k with loc 'server' confirms every seq <= k of that client
// (a client's mutations are applied in order), even when pokes were merged and intermediate
// values never surfaced. Another client subscribed to the same key sees the server value when
// the poke reaches it: that is the visibility latency.
//
// The client expects a browser; set up before it is imported: a `ws` WebSocket (with a no-op
// 'error' listener: the client closes sockets that are still connecting), `navigator`, `location`
// and a ~16 ms requestAnimationFrame (pokes are played back on animation frames).
import WS from 'ws';
import {setMaxListeners} from 'node:events';
import {inspect, parseArgs} from 'node:util';
import {mutators} from './mutators.js';

setMaxListeners(100_000);

const errors = [];
let errorCount = 0;
for (const level of ['debug', 'info', 'log', 'warn', 'error']) {
  console[level] = (...args) => {
    if (level !== 'error' && level !== 'warn') return;
    errorCount++;
    if (errors.length < 20) {
      const text = args
        .map(a => (typeof a === 'string' ? a : a instanceof Error ? `${a.name}: ${a.message}` : inspect(a, {depth: 2, breakLength: Infinity})))
        .join(' ');
      errors.push(`${level}: ${text}`.slice(0, 400));
    }
  };
}

class BenchWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols);
    this.on('error', () => {});
  }
}
globalThis.WebSocket = BenchWebSocket;
Object.defineProperty(globalThis, 'navigator', {
  value: {onLine: true, userAgent: 'reflectd-bench (Node)'},
  configurable: true,
  writable: true,
});
globalThis.location = {
  host: 'localhost',
  hostname: 'localhost',
  href: 'http://localhost/',
  origin: 'http://localhost',
  reload() {
    console.error('location.reload() called');
  },
};
globalThis.requestAnimationFrame = cb => setTimeout(() => cb(performance.now()), 16);
globalThis.cancelAnimationFrame = handle => clearTimeout(handle);

const {Reflect} = await import('@rocicorp/reflect/client');

const {values: opt} = parseArgs({
  options: {
    server: {type: 'string', default: 'http://127.0.0.1:8080'},
    workload: {type: 'string', default: 'closed'},
    clients: {type: 'string'},
    mutations: {type: 'string'},
    rooms: {type: 'string', default: '50'},
    rate: {type: 'string', default: '0'},
    settle: {type: 'string', default: '300'},
    timeout: {type: 'string', default: '120'},
    tag: {type: 'string', default: ''},
    room: {type: 'string'},
    'user-prefix': {type: 'string', default: 'u'},
    'start-at': {type: 'string'},
    help: {type: 'boolean', default: false},
  },
});
if (opt.help) {
  process.stdout.write(
    'usage: node bench.mjs --server URL --workload closed|open|rooms|connect ' +
      '[--clients N] [--mutations M] [--rooms R] [--rate PER_CLIENT_PER_S] [--settle MS] [--timeout S]\n' +
      '      [--room ID] [--user-prefix P] [--start-at EPOCH_MS]\n',
  );
  process.exit(0);
}
const DEFAULTS = {
  closed: {clients: 20, mutations: 50},
  open: {clients: 4, mutations: 300},
  rooms: {clients: 2, mutations: 20},
  connect: {clients: 20, mutations: 0},
};
if (!(opt.workload in DEFAULTS)) {
  process.stderr.write(`unknown workload ${opt.workload}\n`);
  process.exit(2);
}
const N = Number(opt.clients ?? DEFAULTS[opt.workload].clients);
const M = Number(opt.mutations ?? DEFAULTS[opt.workload].mutations);
const R = Number(opt.rooms);
const RATE = Number(opt.rate);
const TIMEOUT_MS = Number(opt.timeout) * 1000;
const run = `${opt.tag || 'b'}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

const U = opt['user-prefix'];
const roomName = kind => opt.room ?? `${kind}-${run}`;
const now = () => performance.now();
const epoch = t => Math.round(performance.timeOrigin + t);
// after connecting: wait for the shared start time, or settle for --settle ms
const startSignal = () =>
  sleep(opt['start-at'] !== undefined ? Math.max(0, Number(opt['start-at']) - Date.now()) : Number(opt.settle));
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const round = v => Math.round(v * 1000) / 1000;

// ---- one client --------------------------------------------------------------------------------
function openClient(roomID, userID) {
  const t0 = now();
  const c = {roomID, userID, connectMs: null, confirmed: 0, confirmedAt: [], waiters: [], unsubs: []};
  c.online = new Promise(resolve => {
    c.r = new Reflect({
      server: opt.server,
      roomID,
      userID,
      kvStore: 'mem',
      enableAnalytics: false,
      logLevel: 'error',
      mutators,
      onOnlineChange: online => {
        if (online && c.connectMs === null) {
          c.connectMs = now() - t0;
          resolve(c.connectMs);
        }
      },
    });
  });
  c.clientID = c.r.clientID;
  c.key = `e/${c.clientID}`;
  // own key: confirmation (loc 'server' with seq k confirms every seq <= k)
  c.unsubs.push(
    c.r.subscribe(tx => tx.get(c.key), {
      onData: v => {
        if (!v || v.loc !== 'server' || v.seq <= c.confirmed) return;
        const t = now();
        for (let s = c.confirmed + 1; s <= v.seq; s++) c.confirmedAt[s] = t;
        c.confirmed = v.seq;
        c.waiters = c.waiters.filter(w => (w.seq <= v.seq ? (w.resolve(t), false) : true));
      },
    }),
  );
  return c;
}

function confirmedPromise(c, seq) {
  if (c.confirmed >= seq) return Promise.resolve(c.confirmedAt[seq]);
  return new Promise(resolve => c.waiters.push({seq, resolve}));
}

// `observer` watches `writer`'s key; records when each seq first shows up with loc 'server'.
function observe(observer, writer, sentAt, into) {
  let last = 0;
  observer.unsubs.push(
    observer.r.subscribe(tx => tx.get(writer.key), {
      onData: v => {
        if (!v || v.loc !== 'server' || v.seq <= last) return;
        last = v.seq;
        const t0 = sentAt.get(`${writer.clientID}:${v.seq}`);
        if (t0 !== undefined) into.push(now() - t0);
      },
    }),
  );
}

async function openRoom(roomID, n, userPrefix) {
  const clients = [];
  for (let i = 0; i < n; i++) clients.push(openClient(roomID, `${userPrefix}${i}`));
  await withTimeout(Promise.all(clients.map(c => c.online)), `${n} clients of ${roomID} to connect`);
  return clients;
}

let deadline = Infinity;
function withTimeout(promise, what) {
  const left = deadline - now();
  return Promise.race([
    promise,
    sleep(Math.max(0, left)).then(() => {
      throw new Error(`timed out waiting for ${what}`);
    }),
  ]);
}

// ---- workloads -----------------------------------------------------------------------------------
async function closedLoop() {
  const clients = await openRoom(roomName('closed'), N, U);
  await startSignal();
  const sentAt = new Map();
  const visibility = [];
  if (N > 1) clients.forEach((c, i) => observe(clients[(i + 1) % N], c, sentAt, visibility));
  const roundTrip = [];
  const t0 = now();
  await withTimeout(
    Promise.all(
      clients.map(async c => {
        for (let seq = 1; seq <= M; seq++) {
          const t = now();
          sentAt.set(`${c.clientID}:${seq}`, t);
          await c.r.mutate.echo({key: c.key, seq});
          const tc = await confirmedPromise(c, seq);
          roundTrip.push(tc - t);
        }
      }),
    ),
    'closed-loop mutations to be confirmed',
  );
  const elapsed = now() - t0;
  // the last values may still be on their way to the observers
  const want = N > 1 ? N * M : 0;
  const until = now() + 2000;
  while (visibility.length < want && now() < until) await sleep(20);
  return {
    clients,
    result: {
      clients: N,
      mutations: M,
      confirmed: clients.reduce((a, c) => a + c.confirmed, 0),
      elapsedMs: round(elapsed),
      roundTripMs: roundTrip.map(round),
      visibilityMs: visibility.map(round),
    },
  };
}

// Every client fires M mutations without waiting for confirmation (paced when RATE > 0).
async function openLoop(clients) {
  await startSignal();
  const sentAt = [];
  const t0 = now();
  let lastSent = t0;
  const fire = clients.map(async (c, ci) => {
    const interval = RATE > 0 ? 1000 / RATE : 0;
    const start = now() + (interval ? (interval * ci) / clients.length : 0);
    sentAt[ci] = [];
    for (let seq = 1; seq <= M; seq++) {
      if (interval) {
        const due = start + (seq - 1) * interval;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
      }
      sentAt[ci][seq] = now();
      await c.r.mutate.echo({key: c.key, seq});
    }
    lastSent = Math.max(lastSent, now());
  });
  let timedOut = false;
  try {
    await withTimeout(Promise.all(fire), 'mutations to be sent');
    await withTimeout(Promise.all(clients.map(c => confirmedPromise(c, M))), 'mutations to be confirmed');
  } catch (e) {
    timedOut = true;
    console.error(String(e));
  }
  let lastConfirmed = t0;
  const latency = [];
  clients.forEach((c, ci) => {
    for (let s = 1; s <= c.confirmed; s++) {
      lastConfirmed = Math.max(lastConfirmed, c.confirmedAt[s]);
      latency.push(c.confirmedAt[s] - sentAt[ci][s]);
    }
  });
  const confirmed = clients.reduce((a, c) => a + c.confirmed, 0);
  const elapsed = lastConfirmed - t0;
  return {
    mutations: clients.length * M,
    confirmed,
    timedOut,
    elapsedMs: round(elapsed),
    sendMs: round(lastSent - t0),
    offeredPerSec: round((clients.length * M * 1000) / Math.max(1, lastSent - t0)),
    confirmedPerSec: round((confirmed * 1000) / Math.max(1, elapsed)),
    startedAtEpochMs: epoch(t0),
    lastConfirmedAtEpochMs: epoch(lastConfirmed),
    confirmLatencyMs: latency.map(round),
  };
}

async function oneRoomOpen() {
  const clients = await openRoom(roomName('open'), N, U);
  return {clients, result: {clients: N, perClient: M, ratePerClient: RATE, ...(await openLoop(clients))}};
}

async function manyRooms() {
  const rooms = await Promise.all(Array.from({length: R}, (_, i) => openRoom(`${roomName('rooms')}-${i}`, N, `r${i}${U}`)));
  const clients = rooms.flat();
  return {clients, result: {rooms: R, clientsPerRoom: N, perClient: M, ratePerClient: RATE, ...(await openLoop(clients))}};
}

async function connect() {
  const clients = [];
  const roomID = roomName('connect');
  for (let i = 0; i < N; i++) {
    const c = openClient(roomID, `${U}${i}`);
    clients.push(c);
    await withTimeout(c.online, `client ${i} to connect`);
  }
  return {clients, result: {clients: N, connectMs: clients.map(c => round(c.connectMs))}};
}

// ---- main ----------------------------------------------------------------------------------------
const WORKLOADS = {closed: closedLoop, open: oneRoomOpen, rooms: manyRooms, connect};
const started = now();
const cpu0 = process.cpuUsage();
deadline = started + TIMEOUT_MS;
let out;
let exitCode = 0;
let clients = [];
try {
  const r = await WORKLOADS[opt.workload]();
  clients = r.clients;
  out = {ok: true, ...r.result};
  out.connectMs = out.connectMs ?? clients.map(c => round(c.connectMs ?? NaN));
} catch (e) {
  out = {ok: false, error: String(e?.stack ?? e)};
  exitCode = 1;
}
out = {
  workload: opt.workload,
  server: opt.server,
  node: process.version,
  ...out,
  // the driver's own CPU time: near totalMs means the client, not the server, was the limit
  driverCpuMs: round((({user, system}) => (user + system) / 1000)(process.cpuUsage(cpu0))),
  clientErrors: errorCount,
  clientErrorSamples: errors,
  totalMs: round(now() - started),
};
// wait until it is written: process.exit would cut a large result short on a pipe
await new Promise(resolve => process.stdout.write(JSON.stringify(out) + '\n', resolve));
// closing hundreds of clients can take a while; the numbers are out already
await Promise.race([Promise.allSettled(clients.map(c => c.r.close())), sleep(2000)]);
process.exit(exitCode);
