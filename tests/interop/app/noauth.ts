// The interop tests' app as a Reflect server module, without an auth handler.
import type {ReflectServerOptions} from '@rocicorp/reflect/server';
import {mutators} from '../../../bench/node/mutators.js';

export default function makeOptions(): ReflectServerOptions<typeof mutators> {
  return {mutators};
}
