"""The pipe to the JS runtime's Node.js process: frames, requests and their answers.

A frame is a 4-byte little-endian length, a 4-byte request id, then ``op\\n`` and a JSON
body; answers carry their request's id, and id 0 carries log lines. Requests are either
blocking (``request``: a turn's batch, from the room's own thread) or awaited
(``request_async``: the auth handler). Whoever needs an answer reads the pipe: a blocking
request reads until its answer has come, handing the others on; between requests, the event
loop reads it. No thread of our own is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import select
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from reflectd.errors import JsRuntimeError

_HEADER = struct.Struct("<II")

#: called with each frame of log lines (id 0)
LogSink = Callable[[bytes], None]


class Channel:
    """A running Node.js process and the pipes to it."""

    def __init__(self, argv: Sequence[str], *, on_logs: LogSink, cwd: str | None = None) -> None:
        to_node_r, self._to_node = os.pipe()
        self._from_node, from_node_w = os.pipe()
        args = [*argv, f"--in={to_node_r}", f"--out={from_node_w}"]
        self.process = subprocess.Popen(
            args, pass_fds=(to_node_r, from_node_w), stdin=subprocess.DEVNULL, cwd=cwd
        )
        os.close(to_node_r)
        os.close(from_node_w)
        os.set_blocking(self._from_node, False)
        self._on_logs = on_logs
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self._answers: dict[int, bytes] = {}
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    # ------------------------------------------------------------------ requests

    def request(self, op: str, body: bytes, *, timeout_s: float) -> bytes:
        """Send a request and wait for its answer (blocking the calling thread)."""
        request_id = self._send(op, body)
        deadline = time.monotonic() + timeout_s
        with self._read_lock:
            while request_id not in self._answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise JsRuntimeError(f"the JS runtime did not answer within {timeout_s:g} s")
                ready, _, _ = select.select([self._from_node], [], [], remaining)
                if ready:
                    self._read_available()
            return self._answers.pop(request_id)

    async def request_async(self, op: str, body: bytes) -> bytes:
        """Send a request; its answer comes through the event loop's reader."""
        return await self.request_future(op, body)

    def request_future(self, op: str, body: bytes) -> asyncio.Future[bytes]:
        """Send a request from the running event loop; the future settles with its answer."""
        loop = asyncio.get_running_loop()
        self._watch(loop)
        future: asyncio.Future[bytes] = loop.create_future()
        request_id = next(self._ids)
        self._waiting[request_id] = future
        future.add_done_callback(lambda _: self._waiting.pop(request_id, None))
        self._send(op, body, request_id=request_id)
        return future

    def send(self, op: str, body: bytes) -> None:
        """Send a request that has no answer."""
        self._send(op, body)

    # ------------------------------------------------------------------ frames

    def _send(self, op: str, body: bytes, *, request_id: int | None = None) -> int:
        if self.closed:
            raise JsRuntimeError("the JS runtime has stopped")
        if request_id is None:
            request_id = next(self._ids)
        payload = op.encode() + b"\n" + body
        frame = memoryview(_HEADER.pack(len(payload) + 4, request_id) + payload)
        with self._write_lock:
            try:
                while frame:
                    written = os.write(self._to_node, frame)
                    frame = frame[written:]
            except OSError as e:
                self._died()
                raise JsRuntimeError(f"the JS runtime has stopped ({e.strerror})") from None
        return request_id

    def _read_available(self) -> None:
        """Read what the pipe holds and hand each whole frame to whoever waits for it."""
        while True:
            try:
                chunk = os.read(self._from_node, 1 << 20)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self._died()
                raise JsRuntimeError("the JS runtime has stopped")
            self._buffer += chunk
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= 4:
            (length,) = struct.unpack_from("<I", buffer, offset)
            if len(buffer) - offset - 4 < length:
                break
            (request_id,) = struct.unpack_from("<I", buffer, offset + 4)
            payload = bytes(buffer[offset + 8 : offset + 4 + length])
            offset += 4 + length
            self._dispatch(request_id, payload)
        del buffer[:offset]

    def _dispatch(self, request_id: int, payload: bytes) -> None:
        if request_id == 0:
            self._on_logs(payload)
            return
        future = self._waiting.pop(request_id, None)
        if future is None:
            self._answers[request_id] = payload
        elif _in_thread_of(future.get_loop()):
            _settle(future, payload)
        else:
            future.get_loop().call_soon_threadsafe(_settle, future, payload)

    # ------------------------------------------------------------------ the event loop's reader

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reader_loop is loop:
            return
        if self._reader_loop is not None and not self._reader_loop.is_closed():
            self._reader_loop.call_soon_threadsafe(self._reader_loop.remove_reader, self._from_node)
        loop.add_reader(self._from_node, self._on_readable)
        self._reader_loop = loop

    def _on_readable(self) -> None:
        if not self._read_lock.acquire(blocking=False):
            return  # a blocking request is reading; it hands our answers on
        try:
            self._read_available()
        except JsRuntimeError:
            pass
        finally:
            self._read_lock.release()

    # ------------------------------------------------------------------ ending

    def _died(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self._reader_loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.remove_reader, self._from_node)
        for future in list(self._waiting.values()):
            if not future.done():
                future.get_loop().call_soon_threadsafe(
                    _fail, future, JsRuntimeError("the JS runtime has stopped")
                )
        self._waiting.clear()

    def kill(self) -> None:
        self._died()
        if self.process.poll() is None:
            self.process.kill()

    def close(self) -> None:
        """Stop the process (it exits when its input closes) and release the pipes."""
        self._died()
        for fd in (self._to_node, self._from_node):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _in_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _settle(future: asyncio.Future[bytes], payload: bytes) -> None:
    if not future.done():
        future.set_result(payload)


def _fail(future: asyncio.Future[bytes], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
