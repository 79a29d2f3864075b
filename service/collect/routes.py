"""The collection service's routes: tenants upload vacations, which land and are queued.

A tenant logs in with HTTP Basic for a short-lived bearer token (kept in Cassandra by
``access``, so every replica of the service accepts it), sends its archives (``receiving``)
and asks what became of them: the ledger says, through its owner ``Ledger``. A tenant has at
most a few uploads in progress at once on each replica (``slots``); ``DELETE /v1/token`` ends
its token at every replica.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Annotated, Optional

from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from pipelines.ledger import Ledger, State
from service.access import client_address
from service.audit import ANONYMOUS
from service.collect.receiving import Metrics, Receiving
from service.collect.slots import UploadSlots
from service.dependencies import (
    AuditDep,
    CallerDep,
    Shared,
    TenantStoreDep,
    ThrottleDep,
    TokensDep,
)
from service.uploads import Uploads
from transforms.contract import Fatal, Outcome


@dataclasses.dataclass(frozen=True)
class Collection:
    """What the collection routes keep for the application's life (``app.state.collect``)."""

    uploads: Uploads
    ledger: Ledger
    metrics: Metrics
    receiving: Receiving

    @classmethod
    def build(cls, shared: Shared) -> Collection:
        uploads, ledger, metrics = Uploads(shared.session), Ledger(shared.session), \
            Metrics(shared.registry)
        return cls(uploads, ledger, metrics, Receiving(
            uploads, ledger, shared.settings.zones_root, shared.tokens, shared.audit, metrics,
            UploadSlots(shared.settings.tenant_concurrency)))


def collection(request: Request) -> Collection:
    return request.app.state.collect


class _Refusal(BaseModel):
    """Every refusal's body, FastAPI's own."""

    detail: str


_REFUSALS = {
    401: "no valid credentials", 404: "no such upload of this tenant's", 413: "too large",
    415: "a format the tenant may not send",
    422: "not a vacation's name, or META.json names another vacation",
    429: "too many failed logins, too many files for this token, or too many uploads of this "
         "tenant's in progress",
    503: "the service's database cannot be reached for a moment: try again after Retry-After",
    507: "no space left to land the upload: nothing was kept; try again later",
}


def _refusals(*codes: int) -> dict[int, dict]:
    """The OpenAPI documentation of the refusals a route gives, and of the 503 any route may
    give (``service.unavailable``)."""
    return {code: {"description": _REFUSALS[code], "model": _Refusal}
            for code in (*codes, 503)}


_ARCHIVE_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
# documents the scheme: current_tenant refuses (and audits) a request without a valid token
_SCHEME = HTTPBearer(description="the access_token of POST /v1/token", auto_error=False)
_BEARER = [Security(_SCHEME)]

router = APIRouter()


@router.post("/v1/token", responses=_refusals(401, 429))
async def token(request: Request, tenants: TenantStoreDep, throttle: ThrottleDep,
                tokens: TokensDep, audit: AuditDep) -> dict:
    client = client_address(request)
    name, password = _basic(request.headers.get("authorization", ""))
    # a name that is no tenant is the attempt's detail, not a partition of its own
    known, attempt = (name, "") if name in tenants.load() else (ANONYMOUS, f"as {name!r}")
    if throttle.blocked(name, client):
        audit.record(known, "login", name, "throttled", attempt, client)
        raise HTTPException(429, "too many failed logins; try again later",
                            headers={"Retry-After": str(throttle.window)})
    tenant = await asyncio.to_thread(tenants.authenticate, name, password)
    if tenant is None:
        audit.record(known, "login", name, "refused", attempt or "wrong password", client)
        collection(request).metrics.logins_failed.inc()
        await asyncio.sleep(throttle.failed(name, client))
        raise HTTPException(401, "wrong tenant or password",
                            headers={"WWW-Authenticate": "Basic"})
    audit.record(tenant.name, "login", tenant.name, "ok", client=client)
    return {"access_token": tokens.issue(tenant), "token_type": "bearer",
            "expires_in": tokens.seconds}


@router.delete("/v1/token", status_code=204, responses=_refusals(401))
def logout(request: Request, caller: CallerDep, tokens: TokensDep, audit: AuditDep,
           bearer: Annotated[HTTPAuthorizationCredentials, Security(_SCHEME)]) -> Response:
    """Ends the caller's token at once, at every replica (its other tokens live on); the
    caller, resolved first, proved there is one."""
    tokens.revoke(bearer.credentials)
    audit.record(caller.tenant.name, "logout", caller.tenant.name, "ok",
                 client=client_address(request))
    return Response(status_code=204)


@router.get("/v1/constraints", dependencies=_BEARER, responses=_refusals(401))
def constraints(caller: CallerDep) -> dict:
    return caller.tenant.constraints()


@router.put("/v1/uploads/{filename}", status_code=201, dependencies=_BEARER,
            openapi_extra=_ARCHIVE_BODY, responses={
                200: {"description": "this tenant already sent this archive under this name: "
                                     "its first upload"},
                **_refusals(401, 413, 415, 422, 429, 507)})
async def upload(filename: str, request: Request, caller: CallerDep) -> JSONResponse:
    return await collection(request).receiving.receive(
        filename, caller, request.headers.get("content-length"), request.stream(),
        client_address(request))


@router.get("/v1/uploads/{upload_id}", dependencies=_BEARER, responses=_refusals(401, 404))
def upload_status(upload_id: str, request: Request, caller: CallerDep) -> dict:
    found = collection(request)
    row = found.uploads.get(caller.tenant.name, upload_id)
    if row is None:  # another tenant's upload is as unknown as a made-up id
        raise HTTPException(404, f"no upload {upload_id}")
    return _status(found.ledger, row)


@router.get("/v1/uploads", dependencies=_BEARER, responses=_refusals(401))
def uploads(request: Request, caller: CallerDep, date: Optional[str] = None,
            file_name: Optional[str] = None, sha256: Optional[str] = None) -> list[dict]:
    found = collection(request)
    return [_status(found.ledger, row) for row in found.uploads.of(caller.tenant.name)
            if (date is None or row["business_date"].isoformat() == date)
            and (file_name is None or row["file_name"] == file_name)
            and (sha256 is None or row["sha256"] == sha256)]


def _status(ledger: Ledger, row: dict) -> dict:
    """An upload and what became of it, as the ledger says."""
    vacation = ledger.get(row["vacation_id"])
    status, summary = State.RECEIVED, None
    if vacation is not None and vacation.sha256 == row["sha256"]:
        seen = vacation.view("state", "outcome", "summary")
        state, summary = seen["state"], seen["summary"]
        status = {State.RECEIVED: "QUEUED", State.LANDED: "INGESTING",
                  State.VALIDATED: "INGESTING"}.get(state, state)
        if state == State.LOADED and seen["outcome"]:
            status = seen["outcome"]
    elif vacation is not None and vacation.visible:
        status = Outcome.REJECTED
        summary = {"errors": [{"code": Fatal.VACATION_ID_REUSED, "message": (
            f"{row['vacation_id']} was already accepted with another content")}]}
    return {**row, "received_at": row["received_at"].isoformat().replace("+00:00", "Z"),
            "business_date": row["business_date"].isoformat(),
            "status": status, "summary": summary}


def _basic(header: str) -> tuple[str, str]:
    if not header.lower().startswith("basic "):
        raise HTTPException(401, "HTTP Basic credentials are required",
                            headers={"WWW-Authenticate": "Basic"})
    try:
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        raise HTTPException(401, "malformed Basic credentials") from None
    return name, password
