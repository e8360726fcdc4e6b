"""A TCP proxy in front of a server that crashes: it holds new connections while the server
is down and forwards them once it is back.

The 0.39 client retries once at once after its socket closes, then every 5 s. A server
killed with ``kill -9`` and restarted takes about a second to listen again, so without the
proxy every kill would cost each client a 5 s pause. The proxy accepts the client's retry at
once and connects it to the server as soon as the server listens (or closes it after
``hold_s``). A connection whose server side closes (the server died) is closed on the client
side too, as the kernel would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time


class HoldingProxy:
    def __init__(self, upstream_port: int, *, hold_s: float = 15.0) -> None:
        self.upstream_port = upstream_port
        self.hold_s = hold_s
        self.connections = 0
        self.held = 0
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._started = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._main, name="holding-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HoldingProxy:
        self._thread.start()
        assert self._started.wait(10), "the proxy did not start"
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock, backlog=1024)

        self._loop.run_until_complete(listen())
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        deadline = time.monotonic() + self.hold_s
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        waited = False
        while upstream is None:
            try:
                upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                if time.monotonic() > deadline:
                    writer.close()
                    return
                waited = True
                await asyncio.sleep(0.02)
        self.held += waited
        up_reader, up_writer = upstream
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
