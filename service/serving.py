"""How ``cre serve`` runs its application: uvicorn, with limits on what one client may hold.

uvicorn closes a keep-alive connection left idle, but not one that is slow to say what it
wants: a client trickling its request head byte by byte, or stalling halfway through a body,
keeps its socket (and, for an upload, a landing file) for as long as it likes, and a few hundred
of them take the service. Here each connection has a deadline for its request head and another
for each pause in its body, its head has a size limit, and over TLS the handshake has the
head's deadline (asyncio's own is 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Optional

import h11
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a client may take of a connection."""

    header_seconds: float = 10.0  # from connecting (or a later request's first byte) to its head
    body_seconds: float = 30.0  # the longest pause while a request body is being received
    # a request line and headers, with a browser's cookies, are far below; more is refused with
    # 400 (h11's own default is 16 KiB)
    head_bytes: int = 64 * 1024


class _Deadline:
    """One deadline of a connection: ``expired`` is called ``seconds`` after it is armed,
    unless it is disarmed first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float,
                 expired: Callable[[], None]):
        self._loop, self._seconds, self._expired = loop, seconds, expired
        self._timer: Optional[asyncio.TimerHandle] = None

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self) -> None:
        """Starts the time over."""
        self.disarm()
        self._timer = self._loop.call_later(self._seconds, self._fire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._expired()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with the deadlines of ``limits``.

    The head's deadline starts when the connection is made and, between keep-alive requests
    (which uvicorn's keep-alive timeout governs), at the next request's first byte; it ends
    when h11 has the whole head. Past it the client is answered 408 and the connection closed.
    While a body is received, each pause longer than ``limits.body_seconds`` closes the
    connection, as if the client had gone: the application sees a disconnect (an upload
    discards what it had landed). A pause of the service's own (reading paused because the
    application is slow to take the body, or a client waiting for its ``100 Continue``) does
    not count.
    """

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head = _Deadline(self.loop, limits.header_seconds, self._head_too_slow)
        self._body = _Deadline(self.loop, limits.body_seconds, self._body_stalled)

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._head.arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and not self._head.armed:
            self._head.arm()  # the first byte of a request after a keep-alive wait
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._head.disarm()
        if self.conn.their_state is h11.SEND_BODY:
            self._body.arm()
        else:
            self._body.disarm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._head.disarm()
        self._body.disarm()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        if self.transport.is_closing():
            return
        self.logger.info("%s: no request head within its deadline; closed", self._peer())
        self.transport.write(self.conn.send(h11.Response(
            status_code=408, reason=b"Request Timeout",
            headers=[(b"connection", b"close"), (b"content-length", b"0")])))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def _body_stalled(self) -> None:
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._body.arm()  # the application's pause, not the client's
        elif not self.transport.is_closing():
            self.logger.info("%s: request body stalled past its deadline; closed", self._peer())
            self.transport.close()

    def _peer(self) -> str:
        return ":".join(map(str, self.client)) if self.client else "a client"


class _BoundedHandshakes(asyncio.SelectorEventLoop):
    """asyncio's event loop, whose TLS servers give a handshake ``seconds`` (uvicorn does not
    say, and asyncio's default is 60 s): a client that connects and sends nothing is closed as
    soon over TLS as over plain HTTP."""

    def __init__(self, seconds: float):
        super().__init__()
        self._seconds = seconds

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("ssl") is not None:
            kwargs["ssl_handshake_timeout"] = self._seconds
        return await super().create_server(*args, **kwargs)


def configure(app: Any, limits: Limits, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration of ``app`` under ``limits``, with its other ``options``."""
    # uvicorn makes each connection's protocol by calling this, as it would the class
    return uvicorn.Config(app, http=functools.partial(GuardedH11Protocol, limits=limits),
                          h11_max_incomplete_event_size=limits.head_bytes, **options)


def run(app: Any, host: str, port: int, limits: Limits, *, tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None) -> None:
    """Serves ``app`` until SIGINT or SIGTERM, HTTPS with ``tls_cert`` and ``tls_key``; as
    ``uvicorn.run`` does, a Ctrl-C is a normal stop and a server that never started exits
    with uvicorn's startup failure."""
    server = uvicorn.Server(configure(app, limits, host=host, port=port, log_level="info",
                                      ssl_certfile=tls_cert, ssl_keyfile=tls_key))
    loop = functools.partial(_BoundedHandshakes, limits.header_seconds)
    # uvicorn raises the SIGINT it caught again once stopped
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop) as runner:
        runner.run(server.serve())
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
