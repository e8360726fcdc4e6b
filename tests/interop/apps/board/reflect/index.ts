// The board's server: the shared mutators, each behind a zod check of its arguments; the
// template's auth handler (the token is the userID); a room starts with a welcome item; a
// client's presence record goes when it disconnects.
import type {AuthHandler, ReflectServerOptions, WriteTransaction} from '@rocicorp/reflect/server';
import {nanoid} from 'nanoid';
import {items, mutators, presence, type M} from '../src/mutators.js';
import {argSchemas} from '../src/schema.js';

/** Each mutator, refusing arguments that do not match its schema. */
function checked(defs: M): M {
  const out: Record<string, (tx: WriteTransaction, args: unknown) => Promise<unknown>> = {};
  for (const [name, mutator] of Object.entries(defs)) {
    const schema = argSchemas[name as keyof M];
    out[name] = (tx, args) => (mutator as (tx: WriteTransaction, a: unknown) => Promise<unknown>)(tx, schema.parse(args));
  }
  return out as M;
}

const authHandler: AuthHandler = (auth: string) => (auth ? {userID: auth} : null);

async function roomStartHandler(tx: WriteTransaction, roomID: string) {
  if (!(await tx.isEmpty())) return;
  await tx.set('meta', {roomID, title: `Board ${roomID}`, seeded: true});
  await items.set(tx, {id: nanoid(), title: 'Welcome', owner: 'system', done: false, order: 0, votes: 0});
}

async function disconnectHandler(tx: WriteTransaction) {
  await presence.delete(tx, tx.clientID);
}

export default function makeOptions(): ReflectServerOptions<M> {
  return {
    mutators: checked(mutators),
    authHandler,
    roomStartHandler,
    disconnectHandler,
  };
}
