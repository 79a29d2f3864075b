"""The collection service (``cre serve``): tenants upload vacations, which land and are queued.

FastAPI under uvicorn. A tenant logs in with HTTP Basic for a short-lived bearer token (kept
in Cassandra by ``access``, so every replica of the service accepts it); an upload is streamed
to a temporary name in ``landing/`` while it is checked (format, size) and hashed, then
renamed under its sha256 (the layout ``cre ingest`` lands to), recorded in the tenant's own
partition of ``uploads`` and queued as RECEIVED in the vacation ledger. It reads and writes
those tables only through their owners, ``Uploads`` and ``Ledger``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import logging
import time
import uuid
from typing import Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from io_connectors import zones
from io_connectors.landing import commit_landed
from pipelines.ledger import Ledger, State
from service.access import Grant, LoginThrottle, Tokens, client_address
from service.audit import ANONYMOUS, AuditTrail
from service.collect.meta_probe import MetaProbe
from service.collect.tenants import Tenant, TenantStore
from service.collect.uploads import Uploads
from service.console import routes as console
from service.console.actions import ActionRunner
from service.console.operators import PRINCIPAL, OperatorStore
from service.console.views import ConsoleViews
from transforms.contract import Fatal, Outcome, VacationError, VacationName

_LOG = logging.getLogger(__name__)


class _Refusal(BaseModel):
    """Every refusal's body, FastAPI's own."""

    detail: str


_REFUSALS = {
    401: "no valid credentials", 404: "no such upload of this tenant's", 413: "too large",
    415: "a format the tenant may not send",
    422: "not a vacation's name, or META.json names another vacation",
    429: "too many failed logins, or too many files for this token",
}


def _refusals(*codes: int) -> dict[int, dict]:
    """The OpenAPI documentation of the refusals a route gives."""
    return {code: {"description": _REFUSALS[code], "model": _Refusal} for code in codes}


_ARCHIVE_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(zones_root: str, tenants_path: str, session, token_seconds: float = 900.0,
               max_login_failures: int = 5, *, audit: AuditTrail,
               registry: Optional[CollectorRegistry] = None,
               operators_path: Optional[str] = None, console_seconds: float = 8 * 3600,
               actions: Optional[ActionRunner] = None) -> FastAPI:
    """The service's application; ``session`` is a Cassandra session on the keyspace,
    ``audit`` records every login, refused token and upload, and ``/metrics`` shows
    ``registry`` (shared with the ingest manager) with the service's own metrics added. With
    ``operators_path``, the operations console is at ``/console`` (sessions of
    ``console_seconds``; ``actions`` None: it only reads)."""
    app = FastAPI(title="CRE Integration collection service", docs_url=None, redoc_url=None)
    store = TenantStore(tenants_path)
    tokens, throttle = Tokens(session, token_seconds), LoginThrottle(session, max_login_failures)
    if operators_path is not None:
        console.install(app, ConsoleViews(session, zones_root, store),
                        OperatorStore(operators_path), Tokens(session, console_seconds, PRINCIPAL),
                        throttle, actions, audit)
    registry = CollectorRegistry() if registry is None else registry
    uploads_total = Counter("cre_uploads_total", "Uploads by outcome.", ["tenant", "outcome"],
                            registry=registry)
    upload_bytes = Counter("cre_upload_bytes_total", "Bytes received.", ["tenant"],
                           registry=registry)
    logins_failed = Counter("cre_login_failures_total", "Refused logins.", registry=registry)
    upload_seconds = Histogram("cre_upload_seconds", "Upload durations.", registry=registry)
    uploaded, ledger = Uploads(session), Ledger(session)
    # documents the scheme only: tenant_of refuses (and audits) a request without a token
    bearer = [Security(HTTPBearer(description="the access_token of POST /v1/token",
                                  auto_error=False))]

    def tenant_of(request: Request) -> tuple[Tenant, Grant]:
        header = request.headers.get("authorization", "")
        grant = tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
        if grant is None:
            audit.record(ANONYMOUS, "token", request.url.path, "refused",
                         "no valid bearer token", client_address(request))
            raise HTTPException(401, "a valid bearer token is required (POST /v1/token)",
                                headers={"WWW-Authenticate": "Bearer"})
        tenant = store.load().get(grant.tenant)
        if tenant is None:
            audit.record(grant.tenant, "token", request.url.path, "refused",
                         "the tenant no longer exists", client_address(request))
            raise HTTPException(401, "this tenant no longer exists")
        if not grant.issued_for(tenant):
            audit.record(tenant.name, "token", request.url.path, "refused",
                         "revoked by a new password", client_address(request))
            raise HTTPException(401, "this token was revoked: the tenant's password changed",
                                headers={"WWW-Authenticate": "Bearer"})
        return tenant, grant

    @app.post("/v1/token", responses=_refusals(401, 429))
    async def token(request: Request) -> dict:
        client = client_address(request)
        name, password = _basic(request.headers.get("authorization", ""))
        # a name that is no tenant is the attempt's detail, not a partition of its own
        known, attempt = (name, "") if name in store.load() else (ANONYMOUS, f"as {name!r}")
        if throttle.blocked(name, client):
            audit.record(known, "login", name, "throttled", attempt, client)
            raise HTTPException(429, "too many failed logins; try again later",
                                headers={"Retry-After": str(throttle.window)})
        tenant = await asyncio.to_thread(store.authenticate, name, password)
        if tenant is None:
            audit.record(known, "login", name, "refused", attempt or "wrong password", client)
            logins_failed.inc()
            await asyncio.sleep(throttle.failed(name, client))
            raise HTTPException(401, "wrong tenant or password",
                                headers={"WWW-Authenticate": "Basic"})
        audit.record(tenant.name, "login", tenant.name, "ok", client=client)
        return {"access_token": tokens.issue(tenant), "token_type": "bearer",
                "expires_in": tokens.seconds}

    @app.get("/v1/constraints", dependencies=bearer, responses=_refusals(401))
    def constraints(request: Request) -> dict:
        return tenant_of(request)[0].constraints()

    @app.put("/v1/uploads/{filename}", status_code=201, dependencies=bearer,
             openapi_extra=_ARCHIVE_BODY, responses={
                 200: {"description": "this tenant already sent this archive under this name: "
                                      "its first upload"},
                 **_refusals(401, 413, 415, 422, 429)})
    async def upload(filename: str, request: Request) -> JSONResponse:
        tenant, current = tenant_of(request)
        try:
            return await receive(filename, request, tenant, current)
        except HTTPException as refusal:
            audit.record(tenant.name, "upload", filename, "refused",
                         f"{refusal.status_code} {refusal.detail}", client_address(request))
            raise
        except Exception as error:
            audit.record(tenant.name, "upload", filename, "failed",
                         f"{type(error).__name__}: {error}", client_address(request))
            raise

    async def receive(filename: str, request: Request, tenant: Tenant,
                      current: Grant) -> JSONResponse:
        """An upload of ``tenant``'s: refused with an HTTPException, else landed and queued
        (201), or the first upload of the same content (200)."""
        started = time.monotonic()
        if not filename.endswith(tenant.formats) or "/" in filename:
            uploads_total.labels(tenant.name, "bad_format").inc()
            raise HTTPException(415, f"{filename}: allowed formats are "
                                f"{', '.join(tenant.formats)}")
        name = VacationName.parse(filename)
        if name is None:
            uploads_total.labels(tenant.name, "bad_name").inc()
            raise HTTPException(422, f"{filename} is not a vacation BAF_<YYYYMMDD>_<NN>.tar.bz2")
        declared = int(request.headers.get("content-length") or 0)
        if declared > tenant.max_bytes:
            uploads_total.labels(tenant.name, "too_large").inc()
            raise HTTPException(413, f"{filename}: {declared} bytes, more than the "
                                f"{tenant.max_bytes} allowed")
        if not tokens.take_file(current, tenant.max_files):
            uploads_total.labels(tenant.name, "too_many_files").inc()
            raise HTTPException(429, f"at most {tenant.max_files} files per upload session; "
                                "ask for a new token")
        landing = zones.join(zones_root, zones.LANDING)
        folder = zones.join(landing, *filter(None, [tenant.landing_prefix]),
                            name.business_date, name.vacation_id)
        temporary = zones.join(folder, f"_incoming-{uuid.uuid4().hex}")
        zones.ensure_parent(temporary)
        digest, size = hashlib.sha256(), 0
        try:
            with MetaProbe(name) as probe, FileSystems.create(
                    temporary, compression_type=CompressionTypes.UNCOMPRESSED) as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > tenant.max_bytes:
                        uploads_total.labels(tenant.name, "too_large").inc()
                        raise HTTPException(413, f"{filename}: more than the "
                                            f"{tenant.max_bytes} bytes allowed")
                    digest.update(chunk)
                    out.write(chunk)
                    probe.feed(chunk)
                await probe.finish()
        except VacationError as mismatch:  # META.json names another vacation
            zones.discard(temporary, landing)
            uploads_total.labels(tenant.name, "vacation_id_mismatch").inc()
            raise HTTPException(422, f"{filename}: {mismatch}") from None
        except BaseException:
            zones.discard(temporary, landing)
            raise
        sha256 = digest.hexdigest()
        upload_id = uuid.uuid4().hex
        first = uploaded.reserve(tenant.name, filename, sha256, upload_id)
        if first is not None:  # the same vacation again: answer with the first upload
            zones.discard(temporary, landing)
            uploads_total.labels(tenant.name, "duplicate").inc()
            audit.record(tenant.name, "upload", filename, "duplicate",
                         f"sha256 {sha256}, first upload {first}", client_address(request))
            return JSONResponse({"upload_id": first, "sha256": sha256, "duplicate": True}, 200)
        final = commit_landed(temporary, folder, sha256, filename)
        now = datetime.datetime.now(datetime.UTC)
        day = datetime.date.fromisoformat(name.business_date)
        uploaded.record(tenant.name, upload_id, filename, sha256, size, now, day,
                        name.vacation_id, final)
        ledger.receive(name.vacation_id, day, name.slot, sha256, now, final, tenant.name)
        uploads_total.labels(tenant.name, "received").inc()
        upload_bytes.labels(tenant.name).inc(size)
        upload_seconds.observe(time.monotonic() - started)
        _LOG.info("%s uploaded %s (%d bytes, sha256 %s)", tenant.name, filename, size, sha256)
        audit.record(tenant.name, "upload", filename, "accepted",
                     f"upload {upload_id}, {size} bytes, sha256 {sha256}", client_address(request))
        return JSONResponse({"upload_id": upload_id, "sha256": sha256, "bytes": size,
                             "vacation_id": name.vacation_id, "duplicate": False}, 201)

    def view(row: dict) -> dict:
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

    @app.get("/v1/uploads/{upload_id}", dependencies=bearer, responses=_refusals(401, 404))
    def upload_status(upload_id: str, request: Request) -> dict:
        tenant, _ = tenant_of(request)
        row = uploaded.get(tenant.name, upload_id)
        if row is None:  # another tenant's upload is as unknown as a made-up id
            raise HTTPException(404, f"no upload {upload_id}")
        return view(row)

    @app.get("/v1/uploads", dependencies=bearer, responses=_refusals(401))
    def uploads(request: Request, date: Optional[str] = None, file_name: Optional[str] = None,
                sha256: Optional[str] = None) -> list[dict]:
        tenant, _ = tenant_of(request)
        return [view(row) for row in uploaded.of(tenant.name)
                if (date is None or row["business_date"].isoformat() == date)
                and (file_name is None or row["file_name"] == file_name)
                and (sha256 is None or row["sha256"] == sha256)]

    @app.get("/healthz")
    def healthz() -> dict:
        session.execute("SELECT now() FROM system.local")
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return app



def _basic(header: str) -> tuple[str, str]:
    if not header.lower().startswith("basic "):
        raise HTTPException(401, "HTTP Basic credentials are required",
                            headers={"WWW-Authenticate": "Basic"})
    try:
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        raise HTTPException(401, "malformed Basic credentials") from None
    return name, password
