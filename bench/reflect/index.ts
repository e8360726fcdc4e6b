// The benchmark app as a Reflect server module: the reference app's mutators
// (bench/node/mutators.js), no auth handler, as the original serves reflect-server/noauth.ts.
//
//   reflectd serve bench/reflect/index.ts --port 8080 --db /tmp/bench-ts.sqlite3
import type {ReflectServerOptions} from '@rocicorp/reflect/server';
import {mutators} from '../node/mutators.js';

export default function makeOptions(): ReflectServerOptions<typeof mutators> {
  return {mutators};
}
