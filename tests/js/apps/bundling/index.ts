// Imports resolved as Reflect's CLI resolved them (tests/js/node/test_bundle.py): tsconfig
// `paths` and `baseUrl`, `./x.js` naming `./x.ts`, package.json `imports` (#alias).
import type {WriteTransaction} from '@rocicorp/reflect/server';
import {double} from '@lib/math';
import {triple} from 'lib/triple';
import {greeting} from '#greeting';
import {shout} from '#shared/shout';
import {MUTATOR_NAME} from './names.js';

export default function makeOptions() {
  return {
    mutators: {
      async [MUTATOR_NAME](tx: WriteTransaction, {n}: {n: number}) {
        await tx.set('out', {
          double: double(n),
          triple: triple(n),
          greeting: shout(greeting),
          nodeEnv: process.env.NODE_ENV,
          processEnv: {...process.env},
        });
      },
    },
  };
}
