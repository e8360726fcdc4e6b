"""Process control for the interop tests: the real client (``NodeClients``) and a server
(``ServerProcess``), plus where each server target comes from (``server_command``).

``NodeClients`` runs ``node/driver.mjs`` (see the protocol at its top) and exposes its commands
as methods. Requests may run concurrently: ``submit`` returns a ``Future``, ``call`` waits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TextIO

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parents[1]
NODE_DIR = INTEROP_DIR / "node"
DRIVER = NODE_DIR / "driver.mjs"
#: the npm project holding older published clients side by side, under npm aliases
VERSIONS_DIR = INTEROP_DIR / "versions"
REFERENCE_API_KEY = "dev-api-key"

#: Error kinds that tell a client it is ahead of the server (the server lost state)
SERVER_AHEAD_KINDS = (
    "InvalidConnectionRequestBaseCookie",
    "InvalidConnectionRequestLastMutationID",
)
#: Log lines that mean the same, or that a poke broke the client's cookie chain
SERVER_AHEAD_MARKERS = (
    *SERVER_AHEAD_KINDS,
    "client is ahead of server",
    "unexpected base cookie",
    "out of order poke",
    "Reflect reloaded the page",
    "location.reload() called",
)


#: ``NodeClients.mutate(name, mutator)`` without ``args``: the mutator gets no argument at all
NO_ARGS: Any = object()


class DriverError(RuntimeError):
    """A driver command failed (the message is the driver's), or the driver died."""


class ServerStartError(RuntimeError):
    """The server process did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_versions() -> dict[str, str]:
    """The client version matrix: npm alias (``reflect-0.38.202311200859``) -> version,
    as listed in tests/interop/versions/package.json."""
    manifest = json.loads((VERSIONS_DIR / "package.json").read_text())
    prefix = "npm:@rocicorp/reflect@"
    versions = {}
    for alias, spec in manifest["dependencies"].items():
        assert spec.startswith(prefix), f"{alias}: {spec} is not an alias of @rocicorp/reflect"
        versions[alias] = spec.removeprefix(prefix)
    return versions


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no output)"
    with path.open(errors="replace") as f:
        return "".join(deque(f, maxlen=lines)).rstrip() or "(no output)"


# --------------------------------------------------------------------------------------------
# the client side


class NodeClients:
    """One ``node driver.mjs`` process holding any number of named Reflect clients.

    ``client`` names an alias of tests/interop/versions/package.json to drive that published
    version instead of the pinned one (the driver's ``REFLECT_CLIENT``). ``mutators`` is an
    ES module whose ``mutators`` the clients use instead of the test app's (the driver's
    ``REFLECT_MUTATORS``).
    """

    def __init__(
        self,
        *,
        log_path: Path,
        node: str = "node",
        start_timeout: float = 30.0,
        env: dict[str, str] | None = None,
        client: str | None = None,
        mutators: Path | None = None,
    ) -> None:
        self.log_path = log_path
        env = {
            **(env or {}),
            **({"REFLECT_CLIENT": client} if client else {}),
            **({"REFLECT_MUTATORS": str(mutators)} if mutators else {}),
        }
        self._log: TextIO = log_path.open("w")
        self._proc = subprocess.Popen(
            [node, str(DRIVER)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **env},
        )
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._ready: Future[Any] = Future()
        self._dead: str | None = None
        self._reader = threading.Thread(target=self._read, name="node-driver-reader", daemon=True)
        self._reader.start()
        try:
            self._ready.result(timeout=start_timeout)
        except Exception as exc:
            self.stop()
            raise DriverError(
                f"node driver did not start: {exc}\n--- driver stderr ---\n{_tail(log_path)}"
            ) from None

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg.get("id") is None:
                if msg.get("result") == "ready" and not self._ready.done():
                    self._ready.set_result(None)
                continue
            with self._lock:
                future = self._pending.pop(msg["id"], None)
            if future is None:
                continue
            if msg.get("ok"):
                future.set_result(msg.get("result"))
            else:
                future.set_exception(DriverError(msg.get("error", "unknown driver error")))
        # EOF: the driver exited
        code = self._proc.wait()
        self._dead = f"node driver exited with code {code}"
        error = DriverError(f"{self._dead}\n--- driver stderr ---\n{_tail(self.log_path)}")
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(error)
        if not self._ready.done():
            self._ready.set_exception(error)

    def submit(self, cmd: str, **params: Any) -> Future[Any]:
        """Sends one command; the future resolves with its result (or DriverError)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._dead:
                raise DriverError(self._dead)
            request_id = next(self._ids)
            self._pending[request_id] = future
            line = json.dumps({"id": request_id, "cmd": cmd, **params}) + "\n"
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                self._pending.pop(request_id, None)
                raise DriverError(f"node driver is gone: {exc}") from None
        return future

    def call(self, cmd: str, *, wait: float = 60.0, **params: Any) -> Any:
        """Sends one command and waits ``wait`` seconds at most for its result."""
        future = self.submit(cmd, **params)
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            raise DriverError(f"no answer from the node driver to {cmd} within {wait} s") from None

    @staticmethod
    def gather(futures: Iterable[Future[Any]], timeout: float = 120.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        return [f.result(timeout=max(0.0, deadline - time.monotonic())) for f in futures]

    # ---- commands (timeouts are in seconds; the driver gets them in ms and answers first) ----

    def open(
        self,
        name: str,
        *,
        server: str,
        room_id: str,
        user_id: str,
        auth: str | None = None,
        wait_online: bool = True,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Creates a Reflect client; ``auth=None`` sends no token. Returns its clientID."""
        return self.call(
            "open",
            wait=timeout + 10,
            name=name,
            server=server,
            roomID=room_id,
            userID=user_id,
            auth=auth,
            waitOnline=wait_online,
            timeout=int(timeout * 1000),
        )

    def mutate_async(
        self,
        name: str,
        mutator: str,
        args: Any = NO_ARGS,
        *,
        confirm: bool = True,
        timeout: float = 30.0,
    ) -> Future[Any]:
        """``args=NO_ARGS`` calls the mutator with no argument at all."""
        params = {"noArgs": True} if args is NO_ARGS else {"args": args}
        return self.submit(
            "mutate",
            name=name,
            mutator=mutator,
            confirm=confirm,
            timeout=int(timeout * 1000),
            **params,
        )

    def mutate(
        self,
        name: str,
        mutator: str,
        args: Any = NO_ARGS,
        *,
        confirm: bool = True,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Runs a mutator; with ``confirm`` waits until the server confirmed it (``ms``)."""
        return self.mutate_async(name, mutator, args, confirm=confirm, timeout=timeout).result(
            timeout=timeout + 10
        )

    def hello(self) -> dict[str, Any]:
        """The driver's Node version and the client it loaded (``reflect``: its version)."""
        return dict(self.call("hello"))

    def drop_connection(self, name: str) -> None:
        """Cuts the client's connection without a close frame; it reconnects by itself."""
        self.call("dropConnection", name=name)

    def settle(self, name: str, *, timeout: float = 30.0) -> dict[str, Any]:
        return self.call("settle", wait=timeout + 10, name=name, timeout=int(timeout * 1000))

    def get(self, name: str, key: str) -> Any:
        """The client's current value of ``key`` (``None`` when absent)."""
        return self.call("get", name=name, key=key)["value"]

    def has(self, name: str, key: str) -> bool:
        return bool(self.call("get", name=name, key=key)["exists"])

    def scan(self, name: str, prefix: str = "") -> dict[str, Any]:
        return dict(self.call("scan", name=name, prefix=prefix))

    def wait_for_async(
        self, name: str, key: str, value: Any = None, *, absent: bool = False, timeout: float = 15.0
    ) -> Future[Any]:
        return self.submit(
            "waitFor", name=name, key=key, value=value, absent=absent, timeout=int(timeout * 1000)
        )

    def wait_for(
        self, name: str, key: str, value: Any = None, *, absent: bool = False, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Waits until the client's ``key`` deep-equals ``value`` (or is absent)."""
        return self.wait_for_async(name, key, value, absent=absent, timeout=timeout).result(
            timeout=timeout + 10
        )

    def presence(self, name: str) -> list[str]:
        return list(self.call("presence", name=name)["present"])

    def wait_presence(self, name: str, present: Sequence[str], *, timeout: float = 15.0) -> None:
        self.call(
            "waitPresence",
            wait=timeout + 10,
            name=name,
            present=list(present),
            timeout=int(timeout * 1000),
        )

    def wait_online(
        self, name: str, online: bool = True, *, connected: int = 0, timeout: float = 15.0
    ) -> None:
        """Waits until the client is online (or not), having had ``connected`` connections."""
        self.call(
            "waitOnline",
            wait=timeout + 10,
            name=name,
            online=online,
            connected=connected,
            timeout=int(timeout * 1000),
        )

    def state(self, name: str | None = None, levels: Sequence[str] = ("error", "warn", "info")):
        """What happened to a client (or, without a name, to the whole driver process)."""
        params: dict[str, Any] = {"logLevels": list(levels)}
        if name is not None:
            params["name"] = name
        return self.call("state", **params)

    def close(self, name: str, *, persist: bool = False) -> None:
        """Closes a client; ``persist`` first saves its snapshot for a later reopen."""
        self.call("close", name=name, persist=persist)

    def assert_healthy(self) -> None:
        """No reload, no server-ahead error, no poke the client refused, in the whole process."""
        state = self.state(levels=("error", "warn", "info"))
        problems = [f"location.reload() called: {r['stack'][:300]}" for r in state["reloads"]]
        problems += [f"{u['event']}: {u['error']}" for u in state["uncaught"]]
        problems += [
            f"{line['level']}: {line['text'][:400]}"
            for line in state["logs"]
            if any(marker in line["text"] for marker in SERVER_AHEAD_MARKERS)
        ]
        for name in state["clients"]:
            client = self.state(name, levels=())
            problems += [f"{name}: poke failed: {e['error']}" for e in client["pokeErrors"]]
            problems += [f"{name}: onUpdateNeeded({u['reason']})" for u in client["updateNeeded"]]
            problems += [
                f"{name}: error frame {e['kind']}: {e['message']}"
                for e in client["wire"]["errors"]
                if e["kind"] in SERVER_AHEAD_KINDS
            ]
        assert not problems, "the client saw protocol trouble:\n" + "\n".join(problems)

    def stop(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("exit", wait=5)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


# --------------------------------------------------------------------------------------------
# the server side


class ServerProcess:
    """A server started from a command line, ready when ``GET /`` answers 200.

    It runs in its own process group. ``stop(SIGTERM)`` signals the main process (a graceful
    shutdown, as a supervisor would); ``stop(SIGKILL)`` kills the whole group, like a crash.
    ``restart`` starts the same command again: same port, same data (in ``data_dir``, when
    known; wipe it between ``stop`` and ``start`` to make the server lose its state).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        cwd: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
        hint: str = "",
        data_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.argv = list(argv)
        self.port = port
        self.cwd = cwd
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.hint = hint
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = self.log_path.open("a")
        log.write(f"=== start #{self.starts}: {' '.join(self.argv)}\n")
        log.flush()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerStartError(self._explain(f"could not run the command: {exc}")) from None
        finally:
            log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    self._explain(f"the process exited with code {self.proc.returncode}")
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise ServerStartError(
            self._explain(f"GET {self.url}/ did not answer 200 within {self.ready_timeout} s")
        )

    def _explain(self, what: str) -> str:
        return (
            f"{self.name} server did not start: {what}.\n"
            f"command: {' '.join(self.argv)}\n(cwd {self.cwd})\n"
            + (f"{self.hint}\n" if self.hint else "")
            + f"--- server output ({self.log_path}) ---\n{_tail(self.log_path)}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the group id is the leader's pid
        if proc.poll() is None:
            try:
                if sig == signal.SIGKILL:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name}: no exit {timeout} s after {sig!r}; killing", file=sys.stderr)
                os.killpg(pgid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # helpers left behind (the original's workerd)
        deadline = time.monotonic() + 10
        while self._ready() and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> ServerProcess:
        self.stop(sig)
        return self.start()


# --------------------------------------------------------------------------------------------
# targets


def interop_target() -> str:
    """``reflectd`` (the default) or ``original`` (``reference`` is accepted for it)."""
    target = os.environ.get("REFLECTD_INTEROP_TARGET", "reflectd").strip() or "reflectd"
    if target == "reference":
        target = "original"
    if target not in ("reflectd", "original"):
        raise ValueError(f"REFLECTD_INTEROP_TARGET must be reflectd or original, not {target!r}")
    return target


#: the test app as a Reflect server module, with and without its auth handler
TS_APP = {True: "tests/interop/app/index.ts", False: "tests/interop/app/noauth.ts"}
PY_APP = {True: "tests/interop/app.py:app", False: "tests/interop/app.py:noauth_app"}


def server_command(
    target: str, *, port: int, data_dir: Path, auth: bool = True, app_form: str = "python"
) -> tuple[list[str], Path, str]:
    """(argv, cwd, hint) that serve the test app (with or without its auth handler), in
    ``app_form`` "python" or "typescript" (a Reflect server module)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if target == "original":
        argv, cwd = _original_command(auth)
        argv += ["--port", str(port), "--api-key", REFERENCE_API_KEY, "--log-level", "error"]
        argv += ["--persist", str(data_dir / "original-data")]
        return argv, cwd, "(the original Reflect server under miniflare)"
    executable = Path(sys.executable).parent / "reflectd"
    argv = [
        str(executable),
        "serve",
        TS_APP[auth] if app_form == "typescript" else PY_APP[auth],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(data_dir / "data.sqlite3"),
    ]
    hint = (
        "The interop tests run the real client against `reflectd serve`. "
        + (
            f"{executable} does not exist: is reflectd installed in this venv (scripts/bootstrap)?"
            if not executable.exists()
            else "Check that `reflectd serve` works with this command line."
        )
        + " To check the tests themselves against the original server instead, set "
        "REFLECTD_INTEROP_TARGET=original."
    )
    return argv, REPO_ROOT, hint


def _original_command(auth: bool) -> tuple[list[str], Path]:
    """(argv, cwd) that start the original Reflect server serving the test app: the
    benchmark's bench/node/original.mjs (the pinned @rocicorp/reflect under miniflare), or a
    start-reference-server.mjs of your own in ``REFLECTD_REFERENCE_DIR`` (taking the same
    options, serving reflect-server/index.ts or noauth.ts from its own node_modules)."""
    folder = os.environ.get("REFLECTD_REFERENCE_DIR", "")
    if folder:
        script = Path(folder) / "start-reference-server.mjs"
        if not script.exists() or not (Path(folder) / "node_modules").is_dir():
            raise ServerStartError(
                f"REFLECTD_REFERENCE_DIR={folder!r}: expected start-reference-server.mjs and an "
                "npm-installed node_modules/ there; unset it to run the original from bench/node"
            )
        app = "reflect-server/index.ts" if auth else "reflect-server/noauth.ts"
        return ["node", str(script), "--server-path", app], Path(folder)
    node_dir = REPO_ROOT / "bench" / "node"
    if not (node_dir / "node_modules" / "@rocicorp" / "reflect").is_dir():
        raise ServerStartError(
            "REFLECTD_INTEROP_TARGET=original runs the original from bench/node/node_modules, "
            "which is missing: run bench/bootstrap-node"
        )
    app = REPO_ROOT / TS_APP[auth]
    return ["node", str(node_dir / "original.mjs"), "--server-path", str(app)], node_dir
