"""What the routers of ``cre serve`` share, as FastAPI dependencies.

``create_app`` (``app.py``) builds one ``Shared`` per application and keeps it on
``app.state.shared``; a route asks for a part of it (``AuditDep``, ``SessionDep``...) or for the
tenant its bearer token proves (``CallerDep``, ``Depends(current_tenant)``). Nothing here knows the
collection routes or the console: both packages build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Optional

from fastapi import Depends, HTTPException, Request
from prometheus_client import CollectorRegistry

from service.access import Grant, LoginThrottle, Tokens, client_address
from service.audit import ANONYMOUS, AuditTrail
from service.tenants import Tenant, TenantStore


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``cre serve`` is told on its command line. ``operators_path`` None: no console."""

    zones_root: str
    tenants_path: str
    token_seconds: float = 900.0  # a tenant's bearer token
    max_login_failures: int = 5  # within the throttle's window, per name and per address
    operators_path: Optional[str] = None
    console_seconds: float = 8 * 3600  # an operator's console session
    tenant_concurrency: int = 4  # uploads of one tenant in progress at once, on each replica


@dataclasses.dataclass(frozen=True)
class Shared:
    """One application's settings and what it keeps for its whole life."""

    settings: Settings
    session: Any  # a Cassandra session on the keyspace
    audit: AuditTrail
    registry: CollectorRegistry  # /metrics: the service's and its ingest manager's
    tenants: TenantStore
    tokens: Tokens  # the tenants' bearer tokens
    throttle: LoginThrottle  # the failed logins, the tenants' and the operators'

    @classmethod
    def build(cls, settings: Settings, session, audit: AuditTrail,
              registry: CollectorRegistry) -> Shared:
        return cls(settings, session, audit, registry, TenantStore(settings.tenants_path),
                   Tokens(session, settings.token_seconds),
                   LoginThrottle(session, settings.max_login_failures))


def shared(request: Request) -> Shared:
    return request.app.state.shared


def _part(attribute: str) -> Callable[[Request], Any]:
    """The dependency on one part of the application's ``Shared``."""
    def part(request: Request) -> Any:
        return getattr(shared(request), attribute)
    part.__name__ = attribute
    return part


@dataclasses.dataclass(frozen=True)
class Caller:
    """A tenant and the live token it called with (the token counts its files)."""

    tenant: Tenant
    grant: Grant


def current_tenant(request: Request) -> Caller:
    """The caller its bearer token proves; else a 401, in the audit trail."""
    found = shared(request)
    tokens, tenants, audit = found.tokens, found.tenants, found.audit
    header = request.headers.get("authorization", "")
    grant = tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
    if grant is None:
        audit.record(ANONYMOUS, "token", request.url.path, "refused",
                     "no valid bearer token", client_address(request))
        raise HTTPException(401, "a valid bearer token is required (POST /v1/token)",
                            headers={"WWW-Authenticate": "Bearer"})
    tenant = tenants.load().get(grant.tenant)
    if tenant is None:
        audit.record(grant.tenant, "token", request.url.path, "refused",
                     "the tenant no longer exists", client_address(request))
        raise HTTPException(401, "this tenant no longer exists")
    if not grant.issued_for(tenant):
        audit.record(tenant.name, "token", request.url.path, "refused",
                     "revoked by a new password", client_address(request))
        raise HTTPException(401, "this token was revoked: the tenant's password changed",
                            headers={"WWW-Authenticate": "Bearer"})
    return Caller(tenant, grant)


SessionDep = Annotated[Any, Depends(_part("session"))]
AuditDep = Annotated[AuditTrail, Depends(_part("audit"))]
RegistryDep = Annotated[CollectorRegistry, Depends(_part("registry"))]
TenantStoreDep = Annotated[TenantStore, Depends(_part("tenants"))]
TokensDep = Annotated[Tokens, Depends(_part("tokens"))]  # the tenants' bearer tokens
ThrottleDep = Annotated[LoginThrottle, Depends(_part("throttle"))]
CallerDep = Annotated[Caller, Depends(current_tenant)]
