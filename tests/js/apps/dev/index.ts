// `reflectd dev` reloads when an imported module changes (tests/js/test_dev.py edits a copy
// of lib/value.ts).
import type {WriteTransaction} from '@rocicorp/reflect/server';
import {VALUE} from './lib/value.js';

console.info(`dev app loaded with value ${VALUE}`);

export default function makeOptions() {
  return {
    mutators: {
      async writeValue(tx: WriteTransaction) {
        await tx.set(`value/${tx.clientID}`, VALUE);
      },
    },
  };
}
