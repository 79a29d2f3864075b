"""A TCP proxy on the loopback, to cut a process off from a server and give it back.

``cut()`` stops listening (a new connection is refused) and aborts every connection it
forwards: a client such as the Cassandra driver, which keeps its connections, loses them at
once instead of finding out at its next request's timeout. ``restore()`` listens again on the
same port. The proxy runs on an asyncio loop of its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Optional

from helpers.cre import free_port


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:target_port``; a context manager that closes
    it."""

    def __init__(self, host: str, target_port: int):
        self.target = (host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy",
                                        daemon=True)
        self._thread.start()
        self._server: Optional[asyncio.Server] = None
        self._streams: set[asyncio.StreamWriter] = set()  # both ends of every connection
        self.restore()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cut(self) -> None:
        """Refuses new connections and drops the live ones."""
        self._run(self._cut())

    def restore(self) -> None:
        """Forwards again."""
        self._run(self._listen())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()  # the listening socket at once; wait_closed would wait for
            self._server = None   # the connections, aborted next
        for stream in self._streams:
            stream.transport.abort()
        self._streams.clear()

    async def _forward(self, client_in: asyncio.StreamReader,
                       client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        ends = {client_out, server_out}
        self._streams |= ends
        await asyncio.gather(self._pump(client_in, server_out), self._pump(server_in, client_out))
        self._streams -= ends

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copies one direction until it ends, then closes the other side's writing."""
        with contextlib.suppress(ConnectionError):
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
        sink.close()
