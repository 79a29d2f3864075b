"""Who is at the console: its sessions, and the checks a page or a POST passes first, as
FastAPI dependencies.

A session is a cookie holding a token of ``access.Tokens`` (HttpOnly, SameSite=Strict, Secure
when served over TLS), valid on every replica. Every POST but the login carries the session's
CSRF token, an HMAC of the session token that only a page of the console can have printed; a
POST from another origin is refused before anything else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Annotated, Optional
from urllib.parse import urlsplit

from fastapi import Depends, Request

from service.access import Tokens, client_address
from service.audit import ANONYMOUS
from service.console.actions import ActionRunner
from service.console.operators import PRINCIPAL, Operator, OperatorStore
from service.console.views import ConsoleViews
from service.dependencies import Shared, shared

COOKIE = "cre_console"


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class Refusal(Exception):
    """A request the console refuses: an HTML page with the reason, and this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Console:
    """What the console keeps for the application's life (``app.state.console``); ``actions``
    None: a console that only reads (``cre serve --no-manager``)."""

    views: ConsoleViews
    operators: OperatorStore
    tokens: Tokens  # the operators' sessions
    actions: Optional[ActionRunner]

    @classmethod
    def build(cls, shared: Shared, operators_path: str,
              actions: Optional[ActionRunner]) -> Console:
        settings = shared.settings
        return cls(ConsoleViews(shared.session, settings.zones_root, shared.tenants),
                   OperatorStore(operators_path),
                   Tokens(shared.session, settings.console_seconds, PRINCIPAL), actions)


def console(request: Request) -> Console:
    return request.app.state.console


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"cre console csrf", hashlib.sha256).hexdigest()


def current_operator(request: Request) -> Operator:
    """The operator of the session cookie; else ``LoginRequired``."""
    found = console(request)
    token = request.cookies.get(COOKIE)
    grant = found.tokens.get(token) if token else None
    operator = found.operators.load().get(grant.tenant) if grant else None
    if operator is None or not grant.issued_for(operator):
        raise LoginRequired()
    return operator


async def posting_operator(request: Request) -> Operator:
    """The operator of a POST that came from a console page: same origin, then a session,
    then its CSRF token; else a ``Refusal`` (in the audit trail) or ``LoginRequired``."""
    audit = shared(request).audit
    form = await request.form()
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        audit.record(ANONYMOUS, "console", request.url.path, "refused",
                     f"cross-origin POST from {origin}", client_address(request))
        raise Refusal(403, "cross-origin request refused")
    operator = current_operator(request)
    if not hmac.compare_digest(str(form.get("csrf", "")),
                               csrf_token(request.cookies.get(COOKIE, ""))):
        audit.record(operator.principal, "console", request.url.path, "refused",
                     "missing or wrong CSRF token", client_address(request))
        raise Refusal(403, "missing or wrong CSRF token: reload the page")
    return operator


ConsoleDep = Annotated[Console, Depends(console)]
OperatorDep = Annotated[Operator, Depends(current_operator)]
PostingOperatorDep = Annotated[Operator, Depends(posting_operator)]
