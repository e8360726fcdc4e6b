// The interop tests' app as a Reflect server module: the same mutators as tests/interop/app.py
// (the reference app's, bench/node/mutators.js), and the same auth handler: the token is the
// userID, and the token `reject-me` is refused.
//
//   reflectd serve tests/interop/app/index.ts     # noauth.ts: without the auth handler
import type {AuthHandler, ReflectServerOptions} from '@rocicorp/reflect/server';
import {mutators} from '../../../bench/node/mutators.js';

const authHandler: AuthHandler = (auth: string) =>
  auth && auth !== 'reject-me' ? {userID: auth} : null;

export default function makeOptions(): ReflectServerOptions<typeof mutators> {
  return {mutators, authHandler};
}
