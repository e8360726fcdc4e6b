// The client's mutators: the JavaScript twins of the Python ones in ../app.py.
//
// Reflect runs these in the browser at once (optimistically), and sends each call to the
// server, which runs the Python mutator of the same name; the server's result then replaces
// the optimistic one. So every mutator here must do what its Python twin does: same names,
// same arguments, same keys and values.
//
// Keys: count/<name> (a number), todo/<id> ({id, text, done}), and -/p/<clientID>/<field>
// (presence data of one client, removed by the server when that client disconnects).

/** @typedef {import('@rocicorp/reflect/client').WriteTransaction} WriteTransaction */
/** @typedef {{id: string, text: string, done: boolean}} Todo */

export const TODO_PREFIX = 'todo/';
export const PRESENCE_PREFIX = '-/p/';
const MAX_TODO_TEXT = 500;
const MAX_NAME = 40;

/** The key of one field of a client's presence data. */
export function presenceKey(clientID, field) {
  return `${PRESENCE_PREFIX}${clientID}/${field}`;
}

/** args[name], which must be a non-empty string (a mutator that throws changes nothing). */
function text(args, name) {
  const value = args[name];
  if (typeof value !== 'string' || value === '') {
    throw new Error(`${name} must be a non-empty string`);
  }
  return value;
}

function isNumber(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

// Python slices strings by code point, JavaScript by UTF-16 unit: cut by code point here too.
function truncate(value, max) {
  const codePoints = Array.from(value);
  return codePoints.length > max ? codePoints.slice(0, max).join('') : value;
}

export const mutators = {
  /** Add `delta` to the counter at `key` (0 if unset). */
  async increment(/** @type {WriteTransaction} */ tx, args) {
    const key = text(args, 'key');
    if (!isNumber(args.delta)) throw new Error('delta must be a number');
    const value = (await tx.get(key)) ?? 0;
    await tx.set(key, value + args.delta);
  },

  /** Add the todo {id, text} (not done). The client picks the id. */
  async addTodo(/** @type {WriteTransaction} */ tx, args) {
    const id = text(args, 'id');
    /** @type {Todo} */
    const todo = {id, text: truncate(text(args, 'text'), MAX_TODO_TEXT), done: false};
    await tx.set(TODO_PREFIX + id, todo);
  },

  /** Flip the `done` flag of the todo `id`; nothing if it was deleted. */
  async toggleTodo(/** @type {WriteTransaction} */ tx, args) {
    const key = TODO_PREFIX + text(args, 'id');
    const todo = /** @type {Todo | undefined} */ (await tx.get(key));
    if (todo === undefined) return; // someone deleted it meanwhile: nothing to toggle
    await tx.set(key, {...todo, done: !todo.done});
  },

  /** Delete the todo `id` (nothing if it is already gone). */
  async deleteTodo(/** @type {WriteTransaction} */ tx, args) {
    await tx.del(TODO_PREFIX + text(args, 'id'));
  },

  /** Delete every todo that is done. */
  async clearCompleted(/** @type {WriteTransaction} */ tx) {
    const entries = await tx.scan({prefix: TODO_PREFIX}).entries().toArray();
    for (const [key, todo] of entries) {
      if (todo.done) await tx.del(key);
    }
  },

  /** Set the calling client's display name. */
  async setName(/** @type {WriteTransaction} */ tx, args) {
    await tx.set(presenceKey(tx.clientID, 'name'), truncate(text(args, 'name'), MAX_NAME));
  },

  /** Set the calling client's pointer position ({x, y}, fractions of the page). */
  async setCursor(/** @type {WriteTransaction} */ tx, args) {
    if (!isNumber(args.x) || !isNumber(args.y)) throw new Error('x and y must be numbers');
    await tx.set(presenceKey(tx.clientID, 'cursor'), {x: args.x, y: args.y});
  },
};
