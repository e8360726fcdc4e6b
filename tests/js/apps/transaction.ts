// The transaction as Reflect's server WriteTransaction: each mutator reports what it saw by
// writing it at `out` (tests/js/node/test_prelude.py).
import type {ReadonlyJSONValue, WriteTransaction} from '@rocicorp/reflect/server';

type ScanOptions = {prefix?: string; start?: {key: string; exclusive?: boolean}; limit?: number};
type Via = 'values' | 'keys' | 'entries' | 'toArray' | 'forAwait' | 'forAwaitEntries';

async function scanVia(tx: WriteTransaction, options: ScanOptions, via: Via) {
  const scan = tx.scan(options);
  const found: unknown[] = [];
  switch (via) {
    case 'values':
      for await (const value of scan.values()) found.push(value);
      return found;
    case 'keys':
      for await (const key of scan.keys()) found.push(key);
      return found;
    case 'entries':
      for await (const entry of scan.entries()) found.push(entry);
      return found;
    case 'toArray':
      return scan.toArray();
    case 'forAwait':
      for await (const value of scan) found.push(value);
      return found;
    case 'forAwaitEntries':
      return scan.entries().toArray();
  }
}

const NOT_JSON: Record<string, () => unknown> = {
  function: () => () => 1,
  nan: () => NaN,
  infinity: () => ({n: Infinity}),
  date: () => new Date(0),
  bigint: () => 1n,
  cyclic: () => {
    const o: Record<string, unknown> = {};
    o.self = o;
    return o;
  },
  undefined: () => undefined,
  map: () => new Map(),
  nested: () => ({list: [1, {f: () => 2}]}),
};

export default function makeOptions() {
  return {
    mutators: {
      async put(tx: WriteTransaction, {key, value}: {key: string; value: ReadonlyJSONValue}) {
        await tx.set(key, value);
      },
      async putMany(tx: WriteTransaction, entries: [string, ReadonlyJSONValue][]) {
        for (const [key, value] of entries) await tx.put(key, value);
      },
      async del(tx: WriteTransaction, {key}: {key: string}) {
        await tx.set('out', await tx.del(key));
      },
      async delMany(tx: WriteTransaction, keys: string[]) {
        for (const key of keys) await tx.del(key);
      },
      async read(tx: WriteTransaction, {key}: {key: string}) {
        await tx.set('out', {value: (await tx.get(key)) ?? '<undefined>', has: await tx.has(key)});
      },
      async isEmpty(tx: WriteTransaction) {
        await tx.set('out', await tx.isEmpty());
      },
      async scan(tx: WriteTransaction, {options, via}: {options: ScanOptions; via: Via}) {
        const found = await scanVia(tx, options, via);
        await tx.set('out', found as ReadonlyJSONValue);
      },
      async putThenScan(tx: WriteTransaction, {keys, options}: {keys: string[]; options: ScanOptions}) {
        for (const key of keys) await tx.set(key, key);
        await tx.set('out', await tx.scan(options).keys().toArray());
      },
      async scanStopEarly(tx: WriteTransaction, {prefix}: {prefix: string}) {
        const found: string[] = [];
        for await (const key of tx.scan({prefix}).keys()) {
          found.push(key);
          if (found.length === 2) break;
        }
        await tx.set('out', found);
      },
      // writes, then reads its own writes (set, overwrite, delete) through every read
      async writeThenRead(tx: WriteTransaction) {
        await tx.set('w/b', 'new');
        await tx.set('w/a', 'replaced');
        const deleted = await tx.del('w/c');
        const deletedAgain = await tx.del('w/c');
        await tx.set('w/d', 1);
        await tx.del('w/d');
        await tx.set('out', {
          a: (await tx.get('w/a')) ?? null,
          c: (await tx.has('w/c')) ? 'present' : 'absent',
          d: (await tx.has('w/d')) ? 'present' : 'absent',
          deleted,
          deletedAgain,
          entries: (await tx.scan({prefix: 'w/'}).entries().toArray()) as ReadonlyJSONValue,
        });
      },
      async txInfo(tx: WriteTransaction, args: ReadonlyJSONValue) {
        await tx.set('out', {
          args: args === undefined ? '<undefined>' : args,
          clientID: tx.clientID,
          mutationID: tx.mutationID,
          reason: tx.reason,
          location: tx.location,
          auth: (tx.auth ?? null) as ReadonlyJSONValue,
          env: {...tx.env},
        });
      },
      async putUndefinedProperties(tx: WriteTransaction) {
        const value = {kept: 1, dropped: undefined, nested: {alsoDropped: undefined, list: [1]}};
        await tx.set('out', value as unknown as ReadonlyJSONValue);
      },
      async putNotJSON(tx: WriteTransaction, {kind}: {kind: string}) {
        await tx.set('before', 'written first');
        await tx.set('bad', NOT_JSON[kind]() as ReadonlyJSONValue);
      },
      async failAfterWrite(tx: WriteTransaction, {message}: {message: string}) {
        await tx.set('partial', true);
        throw new Error(message);
      },
      async throwString(tx: WriteTransaction) {
        await tx.set('partial', true);
        throw 'a plain string';
      },
      async increment(tx: WriteTransaction, {key}: {key: string}) {
        const value = ((await tx.get(key)) as number | undefined) ?? 0;
        await tx.set(key, value + 1);
      },
    },
  };
}
