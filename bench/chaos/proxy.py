"""The link between a site's leaf server and the hub's leaf port, as a TCP proxy that a scenario
can sever and restore (no iptables, no root): `LinkProxy`.

It runs its own event loop in a thread, so that a scenario's own loop (polling a database,
copying frames) never delays the bytes of the link. Severing resets every connection through it
and refuses new ones (accepted and closed at once), as a router whose uplink is down does;
restoring lets the site's next reconnect attempt through (nats-server retries a leaf remote
every second).
"""

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

BUFFER_BYTES = 64 * 1024


class LinkProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until `stop()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.severed = False
        self.connections = 0
        """Connections accepted and forwarded so far (the site's link and its reconnects)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def leaf_url(self) -> str:
        return f"nats-leaf://127.0.0.1:{self.port}"

    def start(self) -> "LinkProxy":
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def sever(self) -> None:
        """Cut the link: reset every connection through it, refuse new ones."""
        self._call(self._sever())

    def restore(self) -> None:
        """Let connections through again."""
        self.severed = False

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _sever(self) -> None:
        self.severed = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._sever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.severed:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:  # the hub is down: the site sees its link refused, as it would
            writer.transport.abort()
            return
        self.connections += 1
        self._open |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._open -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until either side closes; then close the other."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(BUFFER_BYTES):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
