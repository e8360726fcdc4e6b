// Evaluated first inside the context where an app's mutators and room handlers run.
//
// It keeps a copy of each live room's entries (JSON text by key), kept coherent with the
// server's by a sequence number (see sync below), and runs a batch of calls (mutations or
// room handlers) against it, each in its own transaction: Reflect's server WriteTransaction.
// A call's writes enter the copy only when it returns normally. Everything a call creates
// belongs to this context (requests are parsed here), so apps see ordinary objects.
(() => {
  const host = globalThis.__reflectdHost;
  delete globalThis.__reflectdHost;

  // ------------------------------------------------------------------ key order
  // Keys sort by UTF-8 bytes (code points), as the server's storage does; JavaScript's `<`
  // compares UTF-16 code units, which differ only when a surrogate meets U+E000..U+FFFF.
  function compareKeys(a, b) {
    if (a === b) return 0;
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      let x = a.charCodeAt(i);
      let y = b.charCodeAt(i);
      if (x !== y) {
        if (x >= 0xd800 && y >= 0xd800) {
          x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
          y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
        }
        return x < y ? -1 : 1;
      }
    }
    return a.length < b.length ? -1 : 1;
  }

  function lowerBound(keys, key) {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keys[mid], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ------------------------------------------------------------------ room copies
  class RoomCopy {
    constructor() {
      this.entries = new Map(); // key -> JSON text of the value
      this.keys = []; // sorted when `sorted`; may hold deleted keys until compacted
      this.sorted = true;
      this.seq = -1;
    }
    put(key, json) {
      if (!this.entries.has(key)) {
        this.keys.push(key);
        this.sorted = false;
      }
      this.entries.set(key, json);
    }
    delete(key) {
      this.entries.delete(key);
    }
    sortedKeys() {
      if (this.keys.length > 2 * this.entries.size + 64) {
        this.keys = [...this.entries.keys()];
        this.sorted = false;
      }
      if (!this.sorted) {
        this.keys.sort(compareKeys);
        let w = 0;
        for (let r = 0; r < this.keys.length; r++) {
          if (r === 0 || this.keys[r] !== this.keys[w - 1]) this.keys[w++] = this.keys[r];
        }
        this.keys.length = w;
        this.sorted = true;
      }
      return this.keys;
    }
  }
  const rooms = new Map();

  /** Brings the copy of a room up to date; false if the server must send it whole. */
  function sync(request) {
    let room = rooms.get(request.room);
    if (request.full) {
      room = new RoomCopy();
      rooms.set(request.room, room);
    } else if (room === undefined || room.seq !== request.since) {
      return undefined;
    }
    for (const [key, value] of request.delta) {
      if (value === null) room.delete(key);
      else room.put(key, JSON.stringify(value));
    }
    room.seq = request.seq;
    return room;
  }

  // ------------------------------------------------------------------ values
  const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

  function checkKeyType(key) {
    if (typeof key !== 'string') throw new TypeError(`keys are strings, got ${typeof key}`);
  }

  /** A key to write: a string of valid Unicode within the size limit. */
  function checkKey(key) {
    checkKeyType(key);
    if (LONE_SURROGATE.test(key)) throw new TypeError(`key ${JSON.stringify(key)} is not valid Unicode`);
    const size = host.utf8Length(key);
    if (size > limits.maxKeyBytes) {
      throw new RangeError(`key is ${size} bytes, more than the limit of ${limits.maxKeyBytes}`);
    }
  }

  function checkJSON(value, key, ancestors = new Set()) {
    switch (typeof value) {
      case 'string':
      case 'boolean':
        return;
      case 'number':
        if (!Number.isFinite(value)) throw notJSON(key, String(value));
        return;
      case 'object': {
        if (value === null) return;
        if (ancestors.has(value)) throw notJSON(key, 'a cyclic object');
        ancestors.add(value);
        if (Array.isArray(value)) {
          for (const item of value) {
            if (item === undefined) throw notJSON(key, 'undefined in an array');
            checkJSON(item, key, ancestors);
          }
        } else {
          const proto = Object.getPrototypeOf(value);
          if (proto !== null && Object.getPrototypeOf(proto) !== null) {
            throw notJSON(key, `a ${value.constructor?.name ?? 'non-plain'} object`);
          }
          for (const k of Object.keys(value)) {
            const item = value[k];
            if (item !== undefined) checkJSON(item, key, ancestors);
          }
        }
        ancestors.delete(value);
        return;
      }
      default:
        throw notJSON(key, `a ${typeof value}`);
    }
  }

  function notJSON(key, what) {
    return new TypeError(`cannot store ${what} at ${JSON.stringify(key)}: not a JSON value`);
  }

  function encodeValue(key, value) {
    if (value === undefined) throw notJSON(key, 'undefined');
    checkJSON(value, key);
    const json = JSON.stringify(value);
    const size = host.utf8Length(json);
    if (size > limits.maxValueBytes) {
      throw new RangeError(
        `value at ${JSON.stringify(key)} is ${size} bytes of JSON, more than the limit of ${limits.maxValueBytes}`,
      );
    }
    return json;
  }

  // ------------------------------------------------------------------ scans
  function makeIterator(items) {
    let i = 0;
    return {
      next: async () => (i < items.length ? {value: items[i++], done: false} : {value: undefined, done: true}),
      return: async () => {
        i = items.length;
        return {value: undefined, done: true};
      },
      [Symbol.asyncIterator]() {
        return this;
      },
      toArray: async () => items.slice(i),
    };
  }

  class ScanResult {
    #find;
    #found;
    constructor(find) {
      this.#find = find;
    }
    #mapped(f) {
      this.#found ??= this.#find();
      return makeIterator(this.#found.map(f));
    }
    values() {
      return this.#mapped(([, json]) => JSON.parse(json));
    }
    keys() {
      return this.#mapped(([key]) => key);
    }
    entries() {
      return this.#mapped(([key, json]) => [key, JSON.parse(json)]);
    }
    toArray() {
      return this.values().toArray();
    }
    [Symbol.asyncIterator]() {
      return this.values();
    }
  }

  // ------------------------------------------------------------------ the transaction
  class WriteTransaction {
    #room;
    #writes = new Map(); // key -> JSON text, or null for a delete
    constructor(room, call) {
      this.#room = room;
      this.clientID = call.clientID;
      this.mutationID = call.mutationID;
      this.auth = call.auth ?? undefined;
      this.env = env;
    }
    get reason() {
      return 'authoritative';
    }
    get location() {
      return 'server';
    }
    get environment() {
      return 'server';
    }
    get writes() {
      return this.#writes;
    }
    #read(key) {
      const written = this.#writes.get(key);
      if (written !== undefined) return written;
      return this.#room.entries.get(key) ?? null;
    }
    async get(key) {
      checkKeyType(key);
      const json = this.#read(key);
      return json === null ? undefined : JSON.parse(json);
    }
    async has(key) {
      checkKeyType(key);
      return this.#read(key) !== null;
    }
    async isEmpty() {
      return (await this.scan({limit: 1}).toArray()).length === 0;
    }
    scan(options = {}) {
      if (options.indexName !== undefined) {
        throw new Error('scans of an index are not supported by the server (no indexes are defined there)');
      }
      const prefix = options.prefix ?? '';
      const startKey = options.start?.key;
      const exclusive = options.start?.exclusive ?? false;
      const limit = options.limit ?? Infinity;
      return new ScanResult(() => this.#scan(prefix, startKey, exclusive, limit));
    }
    #scan(prefix, startKey, exclusive, limit) {
      const found = [];
      if (limit <= 0) return found;
      const start = startKey === undefined || compareKeys(startKey, prefix) < 0 ? prefix : startKey;
      const stored = this.#room.sortedKeys();
      const written = [...this.#writes.keys()].filter(k => compareKeys(k, start) >= 0).sort(compareKeys);
      let i = lowerBound(stored, start);
      let j = 0;
      while (found.length < limit) {
        let key;
        if (i < stored.length && (j >= written.length || compareKeys(stored[i], written[j]) <= 0)) {
          key = stored[i++];
          if (j < written.length && written[j] === key) j++;
        } else if (j < written.length) {
          key = written[j++];
        } else {
          break;
        }
        if (!key.startsWith(prefix)) break;
        if (exclusive && key === startKey) continue;
        const json = this.#read(key);
        if (json !== null) found.push([key, json]);
      }
      return found;
    }
    async set(key, value) {
      checkKey(key);
      this.#writes.set(key, encodeValue(key, value));
    }
    async put(key, value) {
      return this.set(key, value);
    }
    async del(key) {
      checkKeyType(key);
      const existed = this.#read(key) !== null;
      if (existed || this.#writes.has(key)) this.#writes.set(key, null);
      return existed;
    }
  }

  // ------------------------------------------------------------------ the app
  let env = {};
  let limits = {maxKeyBytes: 2048, maxValueBytes: 128 * 1024};
  let options = {mutators: {}};
  let logLevel = 0;
  const LEVELS = {debug: 0, info: 1, warn: 1, error: 2};

  // ------------------------------------------------------------------ console
  let logs = [];
  let current = {roomID: '', clientID: ''};

  function format(args) {
    return args
      .map(a => {
        if (typeof a === 'string') return a;
        if (a instanceof Error) return a.stack ?? String(a);
        try {
          return JSON.stringify(a) ?? String(a);
        } catch {
          return String(a);
        }
      })
      .join(' ');
  }
  // A sink that writes to the console (consoleLogSink, what defaultConsoleLogSink adds) would
  // call back here for ever: what a sink logs is dropped, its line is in the log already.
  let inSink = false;
  function logAt(level) {
    return (...args) => {
      if (inSink || LEVELS[level] < logLevel) return;
      const message = format(args);
      logs.push([level, current.roomID, current.clientID, message]);
      inSink = true;
      try {
        for (const sink of options.logSinks ?? []) {
          try {
            sink.log(level === 'warn' ? 'info' : level, {roomID: current.roomID, clientID: current.clientID}, ...args);
          } catch {
            // a failing sink must not fail the call
          }
        }
      } finally {
        inSink = false;
      }
    };
  }
  const console = {
    debug: logAt('debug'),
    log: logAt('info'),
    info: logAt('info'),
    warn: logAt('warn'),
    error: logAt('error'),
    trace: logAt('debug'),
  };
  globalThis.console = console;

  // ------------------------------------------------------------------ batches
  // The host runs a batch in one evaluation with a time limit. `batch` records the progress,
  // so that after a timeout the host knows which call ran away and continues after it.
  let batch = null;

  function describe(e) {
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    return `${typeof e === 'string' ? e : format([e])}`;
  }

  function handlerFor(call) {
    switch (call.kind) {
      case 'mutator': {
        const mutator = options.mutators[call.name];
        return tx => mutator(tx, call.args ?? null);
      }
      case 'roomStart':
        return tx => options.roomStartHandler(tx, batch.roomID);
      case 'clientDisconnect':
        return tx => (options.onClientDisconnect ?? options.disconnectHandler)(tx);
      case 'clientDelete':
        return tx => options.onClientDelete(tx);
      default:
        throw new Error(`unknown call kind ${call.kind}`);
    }
  }

  async function runFrom(token, start) {
    const {room, calls, results} = batch;
    for (let i = start; i < calls.length; i++) {
      const call = calls[i];
      batch.index = i;
      batch.startedAt = Date.now();
      host.callStarted(batch.startedAt);
      current = {roomID: batch.roomID, clientID: call.clientID ?? ''};
      const tx = new WriteTransaction(room, call);
      try {
        await handlerFor(call)(tx);
      } catch (e) {
        if (batch?.token !== token) return;
        results[i] = {error: describe(e)};
        continue;
      }
      if (batch?.token !== token) return;
      const writes = [];
      for (const [key, json] of tx.writes) {
        if (json === null) {
          room.delete(key);
          writes.push(JSON.stringify(key));
        } else {
          room.put(key, json);
          writes.push(`${JSON.stringify(key)},${json}`);
        }
      }
      results[i] = {writes};
    }
    batch.done = true;
  }

  let tokens = 0;
  globalThis.__reflectdBatch = {
    /** Prepares a batch (the request's JSON text); false if the room copy is stale. */
    prepare(text) {
      const request = JSON.parse(text);
      const room = sync(request);
      if (room === undefined) {
        batch = null;
        return false;
      }
      batch = {token: ++tokens, room, roomID: request.roomID, calls: request.calls, results: [], index: 0, startedAt: 0, done: false};
      logs = [];
      return true;
    },
    /** Runs the prepared batch's calls, one after the other. */
    run() {
      void runFrom(batch.token, 0);
    },
    /** Gives up the call in progress with `error`; runs the rest (a new evaluation). */
    skipCurrent(error) {
      const {index} = batch;
      batch.results[index] = {error};
      batch.token = ++tokens;
      if (index + 1 < batch.calls.length) void runFrom(batch.token, index + 1);
      else batch.done = true;
    },
    /** Runs the call in progress again from its start (its time was spent on others). */
    retryCurrent() {
      batch.token = ++tokens;
      void runFrom(batch.token, batch.index);
    },
    progress() {
      return {done: batch.done, index: batch.index, startedAt: batch.startedAt};
    },
    /** The batch's answer as JSON text: each call's writes (or error), and the logs. */
    finish() {
      const parts = batch.results.map(r =>
        r.error !== undefined ? `{"error":${JSON.stringify(r.error)}}` : `{"writes":[${r.writes.map(w => `[${w}]`).join(',')}]}`,
      );
      const text = `{"results":[${parts.join(',')}],"logs":${JSON.stringify(logs)}}`;
      batch = null;
      logs = [];
      return text;
    },
    forget(roomKey) {
      rooms.delete(roomKey);
    },
  };

  globalThis.__reflectdConfigure = (config, appOptions) => {
    env = config.env;
    limits = config.limits;
    options = appOptions;
    logLevel = LEVELS[appOptions.logLevel ?? 'info'] ?? 1;
  };
  globalThis.__reflectdTakeLogs = () => {
    const taken = logs;
    logs = [];
    return JSON.stringify(taken);
  };
})();
