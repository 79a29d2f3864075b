"""The deadlines and limits ``cre serve`` puts on a connection (``service.serving``), on the
protocol uvicorn would make for it, fed bytes by hand: no server, no socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from uvicorn.server import ServerState

from service.serving import Limits, configure

LIMITS = Limits(header_seconds=0.3, body_seconds=0.3, head_bytes=1024)
HEAD = b"PUT /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n"


class _Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self):
        super().__init__()
        self.written, self.closed = bytearray(), False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("192.0.2.7", 40000),
                "sockname": ("127.0.0.1", 8080)}.get(name, default)


class _Connection:
    """A connection to an application that reads the whole body and answers 200 with it,
    remembering a disconnect."""

    def __init__(self):
        self.disconnected = False
        config = configure(self._app, LIMITS, log_config=None, lifespan="off", interface="asgi3")
        config.load()
        self.protocol = config.http_protocol_class(config=config, server_state=ServerState(),
                                                   app_state={})
        self.transport = _Transport()
        self.protocol.connection_made(self.transport)

    async def _app(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            body += message["body"]
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    @property
    def answer(self) -> bytes:
        return bytes(self.transport.written)


def _run(scenario: Callable[[_Connection], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario(_Connection())
    asyncio.run(main())


def test_a_connection_that_sends_nothing_is_answered_408_and_closed():
    async def scenario(connection: _Connection) -> None:
        await asyncio.sleep(0.2)
        assert not connection.transport.closed
        await asyncio.sleep(0.2)
        assert connection.transport.closed
        assert connection.answer.startswith(b"HTTP/1.1 408 ")
    _run(scenario)


def test_a_head_trickled_past_its_deadline_is_cut():
    async def scenario(connection: _Connection) -> None:
        for byte in HEAD[:20]:  # a byte every 0.05 s: 20 of them take 1 s, the deadline 0.3
            if connection.transport.closed:
                break
            connection.send(bytes([byte]))
            await asyncio.sleep(0.05)
        assert connection.transport.closed and connection.answer.startswith(b"HTTP/1.1 408 ")
    _run(scenario)


def test_a_steady_request_outlives_both_deadlines_and_keep_alive_starts_them_over():
    async def scenario(connection: _Connection) -> None:
        connection.send(HEAD)
        for byte in b"0123456789":  # 0.5 s of body, no pause of 0.3
            await asyncio.sleep(0.05)
            connection.send(bytes([byte]))
        await asyncio.sleep(0.05)
        assert connection.answer.startswith(b"HTTP/1.1 200 ")
        assert connection.answer.endswith(b"0123456789") and not connection.transport.closed
        connection.transport.written.clear()
        connection.send(b"G")  # a next request's first byte: its head has 0.3 s
        await asyncio.sleep(0.4)
        assert connection.transport.closed and connection.answer.startswith(b"HTTP/1.1 408 ")
    _run(scenario)


def test_a_stalled_body_closes_the_connection_as_a_disconnect():
    async def scenario(connection: _Connection) -> None:
        connection.send(HEAD + b"012")
        await asyncio.sleep(0.2)
        assert not connection.transport.closed
        await asyncio.sleep(0.2)
        assert connection.transport.closed and connection.answer == b""
        connection.protocol.connection_lost(None)  # what asyncio does after the close
        await asyncio.sleep(0)
        assert connection.disconnected
    _run(scenario)


def test_a_head_over_the_size_limit_is_refused():
    async def scenario(connection: _Connection) -> None:
        connection.send(b"GET / HTTP/1.1\r\nHost: test\r\nCookie: " + b"x" * 2000)
        assert connection.transport.closed and connection.answer.startswith(b"HTTP/1.1 400 ")
    _run(scenario)
