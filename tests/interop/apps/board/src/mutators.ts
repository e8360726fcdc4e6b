// A board in the style of real Reflect apps: the mutators the client runs optimistically and
// the server runs again (reflect/index.ts serves them). Entities with @rocicorp/rails, ids
// from nanoid, a batch of fast-json-patch operations, and checks only the server can make.
//
// The interop tests load this file (bundled for Node) as the client's mutators.

import type {WriteTransaction} from '@rocicorp/reflect';
import {generate} from '@rocicorp/rails';
import {applyPatch, type Operation} from 'fast-json-patch';
import {nanoid} from 'nanoid';
import {itemSchema, type Item} from './schema.js';

export type {Item};

export type Presence = {
  id: string; // the clientID
  userID: string;
  name: string;
  cursor: {x: number; y: number} | null;
};

export const items = generate<Item>('item');
export const presence = generate<Presence>('presence');

export const mutators = {
  createItem,
  addRandomItem,
  toggleDone,
  renameItem,
  deleteItem,
  patchItems,
  clearDone,
  stamp,
  join,
  moveCursor,
};

export type M = typeof mutators;

/** Who is asking, as far as the server knows (the client cannot know its own auth). */
function checkOwner(tx: WriteTransaction, owner: string) {
  if (tx.location === 'server' && (tx.auth as {userID?: string} | undefined)?.userID !== owner) {
    throw new Error(`user ${JSON.stringify(tx.auth?.userID)} may not act for ${JSON.stringify(owner)}`);
  }
}

async function createItem(tx: WriteTransaction, {id, title, owner}: {id: string; title: string; owner: string}) {
  checkOwner(tx, owner);
  const order = (await items.list(tx)).length;
  await items.set(tx, {id, title, owner, done: false, order, votes: 0});
}

/** Mints its id and order itself: the server's run gives other ones, which replace the client's. */
async function addRandomItem(tx: WriteTransaction, {title, owner}: {title: string; owner: string}) {
  checkOwner(tx, owner);
  const id = nanoid();
  await items.set(tx, {id, title, owner, done: false, order: Math.random(), votes: 0});
  return {id, location: tx.location};
}

async function toggleDone(tx: WriteTransaction, {id}: {id: string}) {
  const item = await items.mustGet(tx, id);
  await items.update(tx, {id, done: !item.done, votes: item.votes + 1});
}

async function renameItem(tx: WriteTransaction, {id, title}: {id: string; title: string}) {
  await items.update(tx, {id, title});
}

async function deleteItem(tx: WriteTransaction, {id}: {id: string}) {
  const item = await items.mustGet(tx, id);
  checkOwner(tx, item.owner);
  await items.delete(tx, id);
}

/**
 * A batch of JSON Patch operations on the board's items ({[id]: item}), applied at once.
 * The server checks every item the batch leaves with the schema, as it writes them.
 */
async function patchItems(tx: WriteTransaction, operations: Operation[]) {
  const before: Record<string, Item> = {};
  for (const item of await items.list(tx)) before[item.id] = item;
  const {newDocument: after} = applyPatch(before, operations, true, false);
  for (const [id, item] of Object.entries(after)) {
    if (JSON.stringify(item) === JSON.stringify(before[id])) continue;
    await items.set(tx, tx.location === 'server' ? itemSchema.parse({...item, id}) : {...item, id});
  }
  for (const id of Object.keys(before)) {
    if (!(id in after)) await items.delete(tx, id);
  }
}

/** Called with no argument. */
async function clearDone(tx: WriteTransaction) {
  for (const item of await items.list(tx)) {
    if (item.done) await items.delete(tx, item.id);
  }
}

/** Records what argument it got, and where it ran. */
async function stamp(tx: WriteTransaction, arg?: unknown) {
  await tx.set(`stamp/${tx.clientID}`, {
    arg: arg === undefined ? 'undefined' : JSON.stringify(arg),
    location: tx.location,
  });
}

async function join(tx: WriteTransaction, {userID, name}: {userID: string; name: string}) {
  await presence.set(tx, {id: tx.clientID, userID, name, cursor: null});
}

async function moveCursor(tx: WriteTransaction, cursor: {x: number; y: number}) {
  await presence.update(tx, {id: tx.clientID, cursor});
}
