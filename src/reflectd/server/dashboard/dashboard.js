// reflectd's dashboard: plain JavaScript over the REST API, /metrics and the log stream.
// The API key lives in sessionStorage and goes out as "Authorization: Basic <key>"; no cookies.
"use strict";

const KEY_ITEM = "reflectd.apiKey";
const DENIED_ITEM = "reflectd.denied";
const GRANTED_ITEM = "reflectd.granted"; // the key's permissions, from GET /key
const NAME_ITEM = "reflectd.keyName";
const PAGE_SIZE = 50;
const main = document.getElementById("main");
let appId = "default";
let stopPage = () => {};

// ------------------------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false && value != null) el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child != null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function notice(text, kind = "error") {
  const box = document.getElementById("notice");
  box.textContent = text || "";
  box.className = kind;
  box.hidden = !text;
}

function apiKey() { return sessionStorage.getItem(KEY_ITEM); }

function denied() { return JSON.parse(sessionStorage.getItem(DENIED_ITEM) || "[]"); }

// null: unknown (a server without GET /key); then only a 403 tells.
function granted() { return JSON.parse(sessionStorage.getItem(GRANTED_ITEM) || "null"); }

function allowed(permission) {
  const known = granted();
  return !denied().includes(permission) && (known === null || known.includes(permission));
}

function when(ms) {
  if (ms == null) return "—";
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function ago(ms) {
  if (ms == null) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

function deny(permission) {
  const list = denied();
  if (!list.includes(permission)) list.push(permission);
  sessionStorage.setItem(DENIED_ITEM, JSON.stringify(list));
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, query = {}, body) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value != null && value !== "") params.append(name, value);
  }
  const url = `/v1/apps/${encodeURIComponent(appId)}${path}` + (params.size ? `?${params}` : "");
  const init = { method, headers: { Authorization: `Basic ${apiKey()}` } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url, init);
  const text = await response.text();
  let answer = null;
  try { answer = JSON.parse(text); } catch { /* a plain-text answer */ }
  if (!response.ok) {
    const message = answer?.error?.message || text || response.statusText;
    if (response.status === 401) { signOut("Wrong or unknown API key: " + message); }
    const permission = /lacks the permission (\S+)/.exec(message);
    if (response.status === 403 && permission) deny(permission[1]);
    throw new ApiError(response.status, message);
  }
  return answer.result;
}

// Runs a command, shows its error, then `then(succeeded)` (re-renders the page either way,
// so that a permission found missing disables its buttons).
async function run(action, then) {
  let succeeded = false;
  try {
    await action();
    succeeded = true;
    notice("");
  } catch (e) {
    if (e.status === 401) return; // signed out, with its own notice
    notice(e.status === 403 ? `Not allowed: ${e.message}` : e.message);
    if (e.status === 403) applyDenials();
  }
  if (then) then(succeeded);
}

function confirmAction(text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Disables, on the page as it is, every button of a permission found missing (a 403).
function applyDenials() {
  for (const button of document.querySelectorAll("button[data-permission]")) {
    const permission = button.dataset.permission;
    if (!allowed(permission)) {
      button.disabled = true;
      button.title = `This key lacks the permission ${permission}`;
    }
  }
}

function permButton(label, permission, onclick, cls = "quiet small", enabled = true) {
  const refused = !allowed(permission);
  return h("button", {
    class: cls, disabled: refused || !enabled, onclick, "data-permission": permission,
    title: refused ? `This key lacks the permission ${permission}` : null,
  }, label);
}

function badge(status) { return h("span", { class: `badge ${status}` }, status); }

// ------------------------------------------------------------------------------ sign in

function signOut(reason) {
  sessionStorage.removeItem(KEY_ITEM);
  sessionStorage.removeItem(DENIED_ITEM);
  sessionStorage.removeItem(GRANTED_ITEM);
  sessionStorage.removeItem(NAME_ITEM);
  history.replaceState(null, "", "#/"); // no hashchange: the render below keeps the notice
  render();
  if (reason) notice(reason);
}

function signInPage() {
  const input = h("input", { type: "password", id: "api-key", placeholder: "API key",
    autocomplete: "off", autofocus: true });
  const error = h("div", { class: "error", id: "sign-in-error" });
  const form = h("form", { class: "panel signin", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    const key = input.value.trim();
    if (!key) { error.textContent = "Enter an API key."; return; }
    const response = await fetch(`/v1/apps/${encodeURIComponent(appId)}/key`,
      { headers: { Authorization: `Basic ${key}` } });
    if (response.status === 401) {
      error.textContent = "Wrong API key: this server knows no such key.";
      return;
    }
    if (response.status === 429) {
      error.textContent = "Too many failed sign-ins from this address; wait a minute.";
      return;
    }
    sessionStorage.setItem(KEY_ITEM, key);
    sessionStorage.removeItem(DENIED_ITEM);
    sessionStorage.removeItem(GRANTED_ITEM);
    if (response.ok) {
      const me = (await response.json()).result;
      sessionStorage.setItem(GRANTED_ITEM, JSON.stringify(me.permissions));
      sessionStorage.setItem(NAME_ITEM, me.name);
    }
    location.hash = "#/rooms";
    render();
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" },
    "Paste an API key made with ", h("code", {}, "reflectd keys create"),
    ". It stays in this tab's session storage."),
  input, h("button", { type: "submit" }, "Sign in"), error);
  main.replaceChildren(form);
  input.focus();
}

// ------------------------------------------------------------------------------ rooms

function roomsPage(query) {
  const prefix = query.get("prefix") || "";
  const after = query.get("after") || "";
  const starts = (query.get("starts") || "").split("\n").filter((s) => s !== "");
  const search = h("input", { id: "room-search", placeholder: "Room ID prefix", value: prefix });
  const newRoom = h("input", { id: "new-room", placeholder: "New room ID" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Loading…")));
  const pager = h("div", { class: "row pager" });
  const go = (params) => { location.hash = "#/rooms?" + new URLSearchParams(params); };

  main.replaceChildren(
    h("h1", {}, "Rooms"),
    h("div", { class: "panel" },
      h("div", { class: "row" },
        h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); go({ prefix: search.value }); } },
          search, h("button", { type: "submit", class: "quiet" }, "Search")),
        h("span", { class: "spacer" }),
        h("form", { class: "row", onsubmit: (e) => {
          e.preventDefault();
          const id = newRoom.value.trim();
          run(() => call("POST", "/rooms:create", { roomID: id }, {}),
            (succeeded) => (succeeded ? go({ prefix: id }) : roomsPage(query)));
        } }, newRoom, permButton("Create room", "rooms:create", null, "small"))),
    ),
    h("div", { class: "panel" },
      h("table", { id: "rooms" },
        h("thead", {}, h("tr", {}, h("th", {}, "Room ID"), h("th", {}, "Status"),
          h("th", {}, "Created"), h("th", {}, "Jurisdiction"), h("th", {}))),
        body),
      pager));

  const request = after ? { startAfterKey: after } : { startKey: prefix };
  // one room more than a page: whether a next page (of this prefix) exists
  call("GET", "/rooms", { ...request, maxResults: PAGE_SIZE + 1 }).then((result) => {
    const matching = result.results.filter((room) => room.roomID.startsWith(prefix));
    const rooms = matching.slice(0, PAGE_SIZE);
    const more = matching.length > PAGE_SIZE;
    body.replaceChildren(...rooms.map((room) => roomRow(room, () => roomsPage(query))));
    if (!rooms.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" },
        prefix ? `No room starts with "${prefix}".` : "No rooms yet.")));
    }
    const label = `${rooms.length} room${rooms.length === 1 ? "" : "s"}` +
      (starts.length || more ? ` (page ${starts.length + 1})` : "");
    pager.replaceChildren(
      h("span", { class: "muted" }, label), h("span", { class: "spacer" }),
      h("button", { class: "quiet small", disabled: !starts.length, onclick: () => {
        const previous = starts.slice(0, -1);
        go({ prefix, after: starts[starts.length - 1] === "\u0000" ? "" : starts[starts.length - 1],
          starts: previous.join("\n") });
      } }, "← Previous"),
      h("button", { class: "quiet small", id: "next-page", disabled: !more, onclick: () => {
        go({ prefix, after: rooms[rooms.length - 1].roomID,
          starts: [...starts, after || "\u0000"].join("\n") });
      } }, "Next →"));
  }).catch((e) => {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "error" },
      e.status === 403 ? `This key may not list rooms: ${e.message}` : e.message)));
  });
}

function roomRow(room, refresh) {
  const id = room.roomID;
  return h("tr", { "data-room": id },
    h("td", {}, h("a", { href: `#/room?id=${encodeURIComponent(id)}` }, id)),
    h("td", {}, badge(room.status)),
    h("td", { class: "muted", title: ago(room.createdMs) }, when(room.createdMs)),
    h("td", { class: "muted" }, room.jurisdiction || "—"),
    h("td", { class: "actions" }, roomActions(room, refresh)));
}

function roomActions(room, refresh) {
  const id = room.roomID;
  return [
    permButton("Close", "rooms:close", async () => {
      if (await confirmAction(`Close room "${id}"? New connections will be refused; it never reopens.`, "Close room")) {
        run(() => call("POST", "/rooms:close", { roomID: id }), refresh);
      }
    }, "quiet small", room.status === "open"), " ",
    permButton("Delete", "rooms:delete", async () => {
      if (await confirmAction(`Delete room "${id}" and all its data? This cannot be undone.`, "Delete room")) {
        run(() => call("POST", "/rooms:delete", { roomID: id }), refresh);
      }
    }, "danger small", room.status === "closed"),
  ];
}

// ------------------------------------------------------------------------------ a room

function roomPage(query) {
  const id = query.get("id") || "";
  const status = h("span", { id: "room-status" });
  const created = h("span", { class: "muted", id: "room-created" });
  const actions = h("span", { class: "row" });
  const clientRows = h("tbody", {}, h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Loading…")));
  const presence = h("div", { id: "presence", class: "muted" });
  const clientsNote = h("span", { class: "muted", id: "clients-note" });
  const tree = h("div", { class: "tree", id: "contents" }, h("span", { class: "muted" }, "Loading…"));
  const updated = h("span", { class: "muted", id: "updated" });
  const user = h("input", { placeholder: "userID", id: "user-id" });
  const open = new Set([""]);
  const changedAt = new Map(); // path -> when its value last changed (highlighted for 3 s)
  let previous = new Map();
  let stopped = false;

  const refreshStatus = () => call("GET", "/rooms", { roomID: id }).then((result) => {
    const room = result.results[0];
    status.replaceChildren(room ? badge(room.status) : h("span", { class: "muted" }, "not found"));
    created.textContent = room && room.createdMs != null ? `created ${when(room.createdMs)}` : "";
    created.title = room ? ago(room.createdMs) : "";
    actions.replaceChildren(...(room ? roomActions(room, refreshStatus) : []));
  }).catch((e) => status.replaceChildren(h("span", { class: "error" }, e.message)));

  main.replaceChildren(
    h("p", {}, h("a", { href: "#/rooms" }, "← Rooms")),
    h("div", { class: "row" }, h("h1", {}, id), status, created, h("span", { class: "spacer" }),
      actions),
    h("div", { class: "panel" },
      h("div", { class: "row" }, h("h2", {}, "Clients connected now"), h("span", { class: "spacer" }),
        clientsNote),
      h("table", { id: "clients" },
        h("thead", {}, h("tr", {}, h("th", {}, "Client ID"), h("th", {}, "User ID"),
          h("th", {}, "Connected since"), h("th", {}, "Last mutation ID"), h("th", {}, "Present"),
          h("th", {}))),
        clientRows),
      h("div", { class: "row presence" }, h("strong", {}, "Presence"), presence),
      h("div", { class: "row" },
        permButton("Invalidate the room's connections", "connections:invalidate", () =>
          run(() => call("POST", "/connections/rooms:invalidate", { roomID: id }),
            (ok) => ok && notice(`Closed the connections to "${id}"; clients reconnect at once.`, "info")),
          "quiet small"),
        h("span", { class: "spacer" }), user,
        permButton("Invalidate user", "connections:invalidate", () =>
          invalidateUser(user.value.trim()), "quiet small"))),
    h("div", { class: "panel" },
      h("div", { class: "row" }, h("h2", {}, "Contents"), h("span", { class: "spacer" }), updated),
      tree));
  refreshStatus();

  const invalidateUser = (userId) =>
    run(() => call("POST", "/connections/users:invalidate", { userID: userId }),
      (ok) => ok && notice(`Closed the connections of user "${userId}".`, "info"));

  let shownClients = "";
  function showClients(result) {
    const seen = JSON.stringify(result);
    if (seen === shownClients) return; // unchanged: keep the rows (and a button being clicked)
    shownClients = seen;
    clientRows.replaceChildren(...result.clients.map((c) => h("tr", { "data-client": c.clientID },
      h("td", {}, h("code", {}, c.clientID)),
      h("td", {}, c.userID || h("span", { class: "muted" }, "—")),
      h("td", { class: "since", title: c.connectedMs == null ? "not known: read from storage" : "" },
        when(c.connectedMs)),
      h("td", {}, String(c.lastMutationID)),
      h("td", {}, result.presence.includes(c.clientID) ? "yes" : h("span", { class: "muted" }, "not yet")),
      h("td", { class: "actions" }, c.userID ? permButton("Invalidate user", "connections:invalidate",
        () => invalidateUser(c.userID)) : null))));
    if (!result.clients.length) {
      clientRows.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" },
        "No client is connected.")));
    }
    presence.replaceChildren(...(result.presence.length
      ? result.presence.map((clientId) => h("code", { class: "present" }, clientId))
      : [h("span", { class: "muted" }, "nobody")]));
    clientsNote.textContent = result.live ? ""
      : "Read from storage: this node does not run the room (no client here, or another node owns it).";
  }

  async function pollClients() {
    try {
      showClients(await call("GET", "/rooms/clients", { roomID: id }));
    } catch (e) {
      clientRows.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "error" },
        e.status === 403 ? `This key may not see the clients: ${e.message}` : e.message)));
      shownClients = "";
    }
  }

  async function poll() {
    if (stopped) return;
    const clientsDone = pollClients();
    try {
      const result = await call("GET", "/rooms/contents", { roomID: id });
      const values = new Map();
      const seen = { previous, values, changedAt, now: Date.now() };
      tree.replaceChildren(...jsonTree(result.contents, "", open, seen, true));
      previous = values;
      updated.textContent = `live · ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      tree.replaceChildren(h("span", { class: "error" }, e.message));
    }
    await clientsDone;
    if (!stopped) timer = setTimeout(poll, 1000);
  }
  let timer = setTimeout(poll, 0);
  return () => { stopped = true; clearTimeout(timer); };
}

// The value as nested <details>; `open` keeps which paths are expanded across refreshes and
// a leaf whose value changed in the last 3 s is highlighted.
function jsonTree(value, path, open, seen, root = false) {
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v])
    : Object.entries(value);
  if (root && !entries.length) return [h("span", { class: "muted" }, "The room is empty.")];
  return entries.map(([key, child]) => {
    const childPath = `${path}/${key}`;
    const label = h("span", { class: "k" }, Array.isArray(value) ? key : JSON.stringify(key));
    if (child !== null && typeof child === "object") {
      const size = Array.isArray(child) ? `[${child.length}]` : `{${Object.keys(child).length}}`;
      const details = h("details", { open: open.has(childPath), "data-path": childPath },
        h("summary", {}, label, ": ", h("span", { class: "z" }, size)),
        ...jsonTree(child, childPath, open, seen));
      details.addEventListener("toggle", () => {
        if (details.open) open.add(childPath); else open.delete(childPath);
      });
      return details;
    }
    const text = JSON.stringify(child);
    seen.values.set(childPath, text);
    if (seen.previous.size && seen.previous.get(childPath) !== text) {
      seen.changedAt.set(childPath, seen.now);
    }
    const changed = seen.now - (seen.changedAt.get(childPath) ?? -Infinity) < 3000;
    const kind = { string: "s", number: "n", boolean: "b" }[typeof child] || "z";
    return h("div", { class: "leaf", "data-path": childPath }, label, ": ",
      h("span", { class: kind + (changed ? " changed" : "") }, text));
  });
}

// ------------------------------------------------------------------------------ the server

function parseMetrics(text) {
  const sums = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labels = ""] = match;
    if (name === "reflectd_mutations_total" && !labels.includes('outcome="applied"')) continue;
    sums[name] = (sums[name] || 0) + Number(match[3]);
  }
  return sums;
}

function chart(canvas, points, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...points);
  ctx.strokeStyle = "#e3e6ec"; ctx.fillStyle = "#6b7385"; ctx.font = "11px system-ui";
  for (const f of [0, 0.5, 1]) {
    const y = height - 14 - f * (height - 24);
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
    ctx.fillText(`${+(max * f).toFixed(2)}${unit}`, 2, y - 2);
  }
  // the newest point at the right edge; the x axis grows to five minutes as points come
  const span = Math.min(HISTORY, Math.max(points.length, 30)) - 1;
  const seconds = span * 2;
  const label = seconds >= 120 ? `last ${Math.round(seconds / 60)} min` : `last ${seconds} s`;
  ctx.fillText(label, width - ctx.measureText(label).width - 2, height - 2);
  if (points.length < 2) return;
  ctx.strokeStyle = "#2f6fde"; ctx.lineWidth = 2; ctx.beginPath();
  points.forEach((p, i) => {
    const x = width - ((points.length - 1 - i) / span) * width;
    const y = height - 14 - (p / max) * (height - 24);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

const HISTORY = 150; // two seconds apart: five minutes

function serverPage() {
  const cards = [
    ["connections", "Connections open", ""],
    ["mutations", "Mutations/s", ""],
    ["turn", "Turn latency", " ms"],
  ].map(([id, title, unit]) => ({
    id, unit, value: h("div", { class: "metric", id: `metric-${id}` }, "–"),
    canvas: h("canvas", { id: `chart-${id}` }), points: [], title,
  }));
  const metricsNote = h("p", { class: "muted", id: "metrics-note" });
  const level = h("select", { id: "log-level" },
    ...["debug", "info", "warning", "error"].map((l) => h("option", { value: l, selected: l === "info" }, l)));
  const log = h("div", { class: "log", id: "log" });
  const logNote = h("p", { class: "muted", id: "log-note" });
  main.replaceChildren(
    h("h1", {}, "Server"),
    h("div", { class: "grid" }, ...cards.map((c) =>
      h("div", { class: "panel" }, h("h2", {}, c.title), c.value, c.canvas))),
    metricsNote,
    h("div", { class: "panel" },
      h("div", { class: "row" }, h("h2", {}, "Live log"), h("span", { class: "spacer" }),
        h("label", { class: "muted" }, "level ", level)),
      log, logNote));

  let last = null, stopped = false, timer = null;
  async function scrape() {
    if (stopped) return;
    try {
      const response = await fetch("/metrics", { headers: { Authorization: `Basic ${apiKey()}` } });
      if (!response.ok) throw new Error(response.status === 404 ? "the server serves no /metrics (--metrics off)"
        : response.status === 403 ? "this key lacks the permission metrics:read" : `HTTP ${response.status}`);
      const now = parseMetrics(await response.text());
      const rates = { connections: now.reflectd_connections_open || 0 };
      if (last) {
        const seconds = (Date.now() - last.at) / 1000;
        rates.mutations = Math.max(0, (now.reflectd_mutations_total || 0) - (last.reflectd_mutations_total || 0)) / seconds;
        const turns = (now.reflectd_turn_duration_seconds_count || 0) - (last.reflectd_turn_duration_seconds_count || 0);
        const spent = (now.reflectd_turn_duration_seconds_sum || 0) - (last.reflectd_turn_duration_seconds_sum || 0);
        rates.turn = turns > 0 ? (spent / turns) * 1000 : 0;
      }
      last = { ...now, at: Date.now() };
      for (const card of cards) {
        if (rates[card.id] === undefined) continue;
        card.points.push(rates[card.id]);
        if (card.points.length > HISTORY) card.points.shift();
        card.value.textContent = `${+rates[card.id].toFixed(card.id === "connections" ? 0 : 2)}${card.unit}`;
        chart(card.canvas, card.points, card.unit);
      }
      metricsNote.textContent = "From /metrics, every 2 s.";
    } catch (e) {
      metricsNote.textContent = `No metrics: ${e.message}.`;
    }
    if (!stopped) timer = setTimeout(scrape, 2000);
  }
  scrape();

  let controller = null;
  async function tail() {
    controller?.abort();
    controller = new AbortController();
    log.replaceChildren();
    logNote.textContent = "Following the server's log…";
    try {
      const url = `/v1/apps/${encodeURIComponent(appId)}/logs:tail?level=${level.value}`;
      const response = await fetch(url, { headers: { Authorization: `Basic ${apiKey()}` },
        signal: controller.signal });
      if (!response.ok) {
        const text = await response.text();
        let message = text;
        try { message = JSON.parse(text).error.message; } catch { /* plain text */ }
        logNote.textContent = response.status === 403
          ? `No live log: this key lacks the permission logs:read.` : `No live log: ${message}`;
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          showEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      logNote.textContent = "The log stream ended (the server stopped?).";
    } catch (e) {
      if (e.name !== "AbortError") logNote.textContent = `The log stream failed: ${e.message}`;
    }
  }
  function showEvent(block) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (!data) return;
    const record = JSON.parse(data);
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    let text;
    if (event === "dropped") text = `… ${record.dropped} lines dropped (the dashboard fell behind)`;
    else {
      const { time, level: lvl, logger, message, exception, ...fields } = record;
      const extra = Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(" ");
      text = `${time} ${String(lvl).toUpperCase().padEnd(7)} ${logger}: ${message} ${extra}`;
      if (exception) text += `\n${exception}`;
    }
    log.append(h("div", { class: record.level || "" }, text));
    while (log.childElementCount > 500) log.firstElementChild.remove();
    if (stick) log.scrollTop = log.scrollHeight;
  }
  level.addEventListener("change", tail);
  tail();
  return () => { stopped = true; clearTimeout(timer); controller?.abort(); };
}

// ------------------------------------------------------------------------------ routing

function render() {
  stopPage();
  stopPage = () => {};
  notice("");
  const signedIn = !!apiKey();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  const name = sessionStorage.getItem(NAME_ITEM);
  document.getElementById("who").textContent =
    signedIn ? `app ${appId}` + (name ? ` · key ${name}` : "") : "";
  if (!signedIn) { signInPage(); return; }
  const [page, rawQuery = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const query = new URLSearchParams(rawQuery);
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === (page === "room" ? "rooms" : page));
  }
  if (page === "room") stopPage = roomPage(query);
  else if (page === "server") stopPage = serverPage();
  else roomsPage(query);
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", render);
fetch("config.json").then((r) => r.json()).then((config) => { appId = config.appId; })
  .catch(() => {}).finally(render);
