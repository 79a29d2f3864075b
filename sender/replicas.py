"""The servers ``cre fetchdata`` sends to: replicas of one service, one of them at a time.

Every request goes to the current server, with its retries (``retrying``). When that server
cannot be reached, or still answers 502, 503 or 504, the same request goes to the next one,
where the sender logs in again (the token would do, as tokens live in the service's database,
but a login there is what proves that replica answers); the next one stays current for the
requests after. Each server is tried once per request, in the order given, round from the
current one. Sending an upload again is safe: the service never loses one it did not
acknowledge, and answers one it did as a duplicate.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import httpx
import tenacity

from sender.retrying import FAILOVER, detail, request, transient, why


class Unavailable(ConnectionError):
    """A server that did not answer what the sender cannot go on without (a login, the
    tenant's constraints), after its retries: 502, 503 or 504 for a login."""


def _failed_over(error: BaseException) -> bool:
    return transient(error) or isinstance(error, Unavailable)


class Replicas:
    """The servers of one service, and the tenant's login at the current one, on ``client``
    (which knows no server of its own)."""

    def __init__(self, client: httpx.Client, servers: Sequence[str], auth: tuple[str, str]):
        if not servers:
            raise ValueError("at least one server is needed")
        self._client, self._auth = client, auth
        self._servers = [server.rstrip("/") for server in servers]
        self._current = 0
        self._logged_in = False

    @property
    def server(self) -> str:
        """The server the requests go to now."""
        return self._servers[self._current]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``retrying.request`` of ``path`` at the current server, logged in; at the next ones
        in turn while it fails. The last answer is returned, the last connection error (or
        ``Unavailable``, ``PermissionError`` for a refused login) raised."""
        failing_over = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(len(self._servers)),
            retry=tenacity.retry_if_exception(_failed_over)
            | tenacity.retry_if_result(lambda response: response.status_code in FAILOVER),
            before_sleep=self._fail_over,
            retry_error_callback=lambda state: state.outcome.result())
        return failing_over(self._ask, method, path, **kwargs)

    def log_out(self) -> None:
        """Ends the token (at every replica) where the service can. A courtesy: the token
        expires on its own, so a failure is only noted, and a service without a logout
        (404, 405) is not even that."""
        if not self._logged_in:
            return
        try:
            ended = self._client.delete(f"{self.server}/v1/token")
        except httpx.TransportError as error:
            print(f"{self.server}: logout: {error}; the token expires on its own",
                  file=sys.stderr)
            return
        if ended.status_code not in (204, 404, 405):
            print(f"{self.server}: logout: HTTP {ended.status_code}: {detail(ended)}; the "
                  "token expires on its own", file=sys.stderr)

    def _ask(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self._logged_in:
            self._log_in()
        return request(self._client, method, f"{self.server}{path}", **kwargs)

    def _log_in(self) -> None:
        self._client.headers.pop("Authorization", None)  # the previous server's
        login = request(self._client, "POST", f"{self.server}/v1/token", auth=self._auth)
        if login.status_code in FAILOVER:
            raise Unavailable(f"its login answered HTTP {login.status_code}: {detail(login)}")
        if login.status_code != 200:
            raise PermissionError(f"login refused: {detail(login)}")
        self._client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        self._logged_in = True

    def _fail_over(self, state: tenacity.RetryCallState) -> None:
        failed = self.server
        self._current = (self._current + 1) % len(self._servers)
        self._logged_in = False
        print(f"{failed}: {why(state.outcome)}; trying {self.server}", file=sys.stderr)
