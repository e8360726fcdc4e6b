"""The servers under test: reflectd serving the benchmark app, the original Reflect server
(bench/original), or any server already running at an URL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerError(RuntimeError):
    pass


@dataclass
class Target:
    """A server under test: an URL, and when we manage it, how to (re)start it."""

    name: str
    url: str
    argv: list[str] | None = None
    restart_argv: list[str] | None = None
    cwd: Path | None = None
    log_path: Path | None = None
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def managed(self) -> bool:
        return self.argv is not None

    def start(self, timeout: float = 60.0) -> None:
        assert self.argv is not None and self.log_path is not None
        argv = self.restart_argv if self.starts and self.restart_argv else self.argv
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"=== start #{self.starts}: {' '.join(argv)}\n")
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {self.proc.returncode} on start; "
                    f"see {self.log_path}:\n{_tail(self.log_path)}"
                )
            if _ready(self.url):
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not answer GET / within {timeout} s: {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind (workerd, esbuild)
        self.proc = None

    def restart_hooks(self) -> loadgen.Restart | None:
        if not self.managed:
            return None
        import asyncio

        async def stop() -> None:
            await asyncio.to_thread(self.stop)

        async def start() -> None:
            await asyncio.to_thread(self.start)

        return loadgen.Restart(stop=stop, start=start)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


#: reflectd's targets: the benchmark app in Python, and as a Reflect server module
REFLECTD_APPS = {"reflectd": "bench/app.py:app", "reflectd-ts": "bench/reflect/index.ts"}


def reflectd_target(work: Path, port: int, name: str = "reflectd") -> Target:
    exe = Path(sys.executable).parent / "reflectd"
    if not exe.exists():
        raise ServerError(f"{exe} not found: run scripts/bootstrap (reflectd in this venv)")
    argv = [
        str(exe), "serve", REFLECTD_APPS[name], "--host", "127.0.0.1", "--port", str(port),
        "--db", str(work / f"{name}.sqlite3"), "--log-level", "warning",
    ]  # fmt: skip
    return Target(
        name, f"http://127.0.0.1:{port}", argv=argv, cwd=REPO_ROOT,
        log_path=work / f"{name}.log",
    )  # fmt: skip


#: the original Reflect server's start script: the pinned @rocicorp/reflect of bench/node under
#: miniflare/workerd, as `reflect dev` runs it (installed by bench/bootstrap-node)
ORIGINAL_SCRIPT = BENCH_DIR / "node" / "original.mjs"
#: the benchmark app as a Reflect server module (no auth handler), which the original serves
ORIGINAL_APP = BENCH_DIR / "reflect" / "index.ts"


def original_command(reference_dir: Path | None = None) -> tuple[list[str], Path]:
    """(argv without the port and data options, cwd) that start the original serving the
    benchmark app: bench/node/original.mjs, or, with ``reference_dir``, a folder of your own
    whose ``start-reference-server.mjs`` takes original.mjs's options and serves
    ``reflect-server/noauth.ts`` (the same app without auth) from its own node_modules."""
    if reference_dir is None:
        if not (ORIGINAL_SCRIPT.parent / "node_modules" / "@rocicorp" / "reflect").is_dir():
            raise ServerError(
                "the original server runs from bench/node/node_modules, which is missing: "
                "run bench/bootstrap-node (or pass --targets reflectd)"
            )
        return [
            "node",
            str(ORIGINAL_SCRIPT),
            "--server-path",
            str(ORIGINAL_APP),
        ], ORIGINAL_SCRIPT.parent
    script = reference_dir / "start-reference-server.mjs"
    if not script.exists() or not (reference_dir / "node_modules").is_dir():
        raise ServerError(
            f"--reference-dir {reference_dir}: expected start-reference-server.mjs and an "
            "npm-installed node_modules/ there; leave the option and REFLECTD_REFERENCE_DIR "
            "unset to run the original from bench/node (bench/bootstrap-node installs it)"
        )
    return ["node", str(script), "--server-path", "reflect-server/noauth.ts"], reference_dir


def original_target(work: Path, port: int, reference_dir: Path | None = None) -> Target:
    """The original Reflect server on ``port``, its rooms in ``work`` (fresh at the first start,
    kept across restarts)."""
    argv, cwd = original_command(reference_dir)
    common = [
        *argv, "--port", str(port), "--persist", str(work / "original-data"),
        "--log-level", "error",
    ]  # fmt: skip
    return Target(
        "original", f"http://127.0.0.1:{port}", argv=[*common, "--fresh"], restart_argv=common,
        cwd=cwd, log_path=work / "original.log",
    )  # fmt: skip


@contextlib.contextmanager
def managed_targets(
    names: Sequence[str], reference_dir: str | None, work: Path, log: Callable[[str], None]
) -> Iterator[list[Target]]:
    targets: list[Target] = []
    try:
        for name in names:
            if name in REFLECTD_APPS:
                t = reflectd_target(work, free_port(), name)
            elif name == "original":
                folder = Path(reference_dir).resolve() if reference_dir else None
                t = original_target(work, free_port(), folder)
            else:
                raise ServerError(f"unknown target {name!r} (reflectd, reflectd-ts, original)")
            log(f"starting {name} on {t.url} (log: {t.log_path})")
            t.start()
            targets.append(t)
        yield targets
    finally:
        for t in targets:
            t.stop()
