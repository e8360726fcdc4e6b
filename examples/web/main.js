// The example page: a shared counter, a todo list and who is here, kept in sync by reflectd.
//
// This is the unmodified client from npm (@rocicorp/reflect), bundled by esbuild into
// dist/main.js (scripts/serve does it; or `npm run build` / `npm run watch` in this folder).
// reflectd serves this folder under /app/, so the sync server is this page's own origin.

import {Reflect} from '@rocicorp/reflect/client';
import {mutators, presenceKey, PRESENCE_PREFIX, TODO_PREFIX} from './mutators.js';

const COUNTER_KEY = 'count/main';

// The room comes from ?room= (default "demo"); Reflect allows [A-Za-z0-9_/-] in room IDs.
const params = new URLSearchParams(location.search);
const roomID = (params.get('room') ?? '').replace(/[^A-Za-z0-9_/-]/g, '') || 'demo';
// A new user per tab, and no auth: this example's server has no auth_handler.
const userID = `user-${crypto.randomUUID()}`;

const r = new Reflect({
  server: location.origin,
  roomID,
  userID,
  mutators,
  onOnlineChange: online => {
    $('#status').textContent = online ? 'online' : 'offline';
    $('#status').classList.toggle('online', online);
  },
});
// For poking around in the browser's console: `reflect.mutate.increment({key: 'count/main', delta: 5})`.
globalThis.reflect = r;

function $(selector) {
  return /** @type {HTMLElement} */ (document.querySelector(selector));
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

$('#room').textContent = roomID;

// ---------------------------------------------------------------------------- counter

r.subscribe(tx => tx.get(COUNTER_KEY), value => {
  $('#count').textContent = String(value ?? 0);
});
$('#inc').addEventListener('click', () => r.mutate.increment({key: COUNTER_KEY, delta: 1}));
$('#dec').addEventListener('click', () => r.mutate.increment({key: COUNTER_KEY, delta: -1}));

// ---------------------------------------------------------------------------- todo list

r.subscribe(tx => tx.scan({prefix: TODO_PREFIX}).values().toArray(), todos => {
  const items = todos.map(todo => {
    const checkbox = el('input', {type: 'checkbox', checked: todo.done});
    checkbox.addEventListener('change', () => r.mutate.toggleTodo({id: todo.id}));
    const remove = el('button', {className: 'delete', title: 'Delete', textContent: '×'});
    remove.addEventListener('click', () => r.mutate.deleteTodo({id: todo.id}));
    return el(
      'li',
      {className: todo.done ? 'done' : ''},
      el('label', {}, checkbox, el('span', {textContent: todo.text})),
      remove,
    );
  });
  $('#todos').replaceChildren(...items);
  const left = todos.filter(todo => !todo.done).length;
  $('#todo-count').textContent = `${left} left`;
  /** @type {HTMLButtonElement} */ ($('#clear')).disabled = left === todos.length;
});

$('#add-todo').addEventListener('submit', event => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('#new-todo'));
  const text = input.value.trim();
  if (text === '') return;
  // Todo ids are time-ordered, so the list (sorted by key) shows todos in the order added.
  const id = `${Date.now().toString(36).padStart(9, '0')}-${crypto.randomUUID().slice(0, 8)}`;
  r.mutate.addTodo({id, text});
  input.value = '';
});
$('#clear').addEventListener('click', () => r.mutate.clearCompleted());

// ---------------------------------------------------------------------------- presence

const myName = `Guest ${Math.floor(1000 + Math.random() * 9000)}`;
/** @type {HTMLInputElement} */ ($('#name')).value = myName;
r.mutate.setName({name: myName});
$('#name').addEventListener('change', event => {
  const name = /** @type {HTMLInputElement} */ (event.target).value.trim();
  if (name !== '') r.mutate.setName({name});
});

// Which clients are connected (from the server), and what they wrote under -/p/<clientID>/.
let present = /** @type {readonly string[]} */ ([]);
let presenceData = /** @type {Map<string, {name?: string, cursor?: {x: number, y: number}}>} */ (
  new Map()
);

r.subscribeToPresence(clientIDs => {
  present = clientIDs;
  renderPresence();
});
r.subscribe(
  tx => tx.scan({prefix: PRESENCE_PREFIX}).entries().toArray(),
  entries => {
    presenceData = new Map();
    for (const [key, value] of entries) {
      const [clientID, field] = key.slice(PRESENCE_PREFIX.length).split('/');
      const data = presenceData.get(clientID) ?? {};
      data[field] = value;
      presenceData.set(clientID, data);
    }
    renderPresence();
  },
);

function renderPresence() {
  const me = r.clientID;
  $('#clients').replaceChildren(
    ...present.map(clientID => {
      const name = presenceData.get(clientID)?.name ?? '…';
      return el(
        'li',
        {style: `--hue: ${hue(clientID)}`},
        el('span', {className: 'dot'}),
        `${name}${clientID === me ? ' (you)' : ''}`,
      );
    }),
  );
  $('#cursors').replaceChildren(
    ...present
      .filter(clientID => clientID !== me && presenceData.get(clientID)?.cursor)
      .map(clientID => {
        const {name, cursor} = /** @type {any} */ (presenceData.get(clientID));
        return el('div', {
          className: 'cursor',
          textContent: name ?? '',
          style: `--hue: ${hue(clientID)}; left: ${cursor.x * 100}%; top: ${cursor.y * 100}%`,
        });
      }),
  );
}

/** A color (hue, 0-359) per client: an FNV-1a hash of its ID. */
function hue(clientID) {
  let h = 2166136261;
  for (let i = 0; i < clientID.length; i++) h = Math.imul(h ^ clientID.charCodeAt(i), 16777619);
  return (h >>> 0) % 360;
}

// Send the pointer position at most once per animation frame.
let pendingCursor = /** @type {{x: number, y: number} | null} */ (null);
document.addEventListener('pointermove', event => {
  const first = pendingCursor === null;
  pendingCursor = {
    x: event.pageX / document.documentElement.scrollWidth,
    y: event.pageY / document.documentElement.scrollHeight,
  };
  if (first) {
    requestAnimationFrame(() => {
      if (pendingCursor !== null) r.mutate.setCursor(pendingCursor);
      pendingCursor = null;
    });
  }
});
