"""Receiving an upload: admitted, landed, recorded and queued, or refused.

An upload is streamed to a temporary name in ``landing/`` while it is checked (format, size,
the vacation its META.json names) and hashed, then renamed under its sha256 (the layout
``cre ingest`` lands to), queued as RECEIVED in the vacation ledger and recorded in the tenant's
own partition of ``uploads``. It reads and writes those tables only through their owners,
``Uploads`` and ``Ledger``.

Nothing acknowledged is lost: the ``uploads`` row, written last, is the acknowledgement. An
upload whose commit failed before it (Cassandra lost: 503; the disk full: 507) is answered
with an error, and the same content sent again completes whatever the first attempt left
undone. A full landing zone keeps no partial file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from io_connectors import zones
from io_connectors.landing import commit_landed
from pipelines.ledger import Ledger
from service.access import Tokens
from service.audit import AuditTrail
from service.collect.meta_probe import MetaProbe
from service.collect.slots import UploadSlots
from service.dependencies import Caller
from service.tenants import Tenant
from service.uploads import Uploads
from transforms.contract import VacationError, VacationName

_LOG = logging.getLogger(__name__)
# how long a tenant at its most uploads at once is asked to wait: about a small upload's time
_BUSY_RETRY_SECONDS = 10


class Metrics:
    """The collection service's metrics, on the registry ``/metrics`` shows."""

    def __init__(self, registry: CollectorRegistry):
        self.uploads = Counter("cre_uploads_total", "Uploads by outcome.", ["tenant", "outcome"],
                               registry=registry)
        self.upload_bytes = Counter("cre_upload_bytes_total", "Bytes received.", ["tenant"],
                                    registry=registry)
        self.logins_failed = Counter("cre_login_failures_total", "Refused logins.",
                                     registry=registry)
        self.upload_seconds = Histogram("cre_upload_seconds", "Upload durations.",
                                        registry=registry)


@dataclasses.dataclass(frozen=True)
class _Landed:
    """An upload streamed to its temporary name, checked and hashed."""

    temporary: str
    folder: str
    sha256: str
    size: int


class Receiving:
    """The upload door of one application: its tables' owners, its metrics, its audit."""

    def __init__(self, uploads: Uploads, ledger: Ledger, zones_root: str, tokens: Tokens,
                 audit: AuditTrail, metrics: Metrics, slots: UploadSlots):
        self._uploads, self._ledger = uploads, ledger
        self._landing = zones.join(zones_root, zones.LANDING)
        self._tokens, self._audit, self.metrics = tokens, audit, metrics
        self._slots = slots

    async def receive(self, filename: str, caller: Caller, content_length: Optional[str],
                      chunks: AsyncIterator[bytes], client: str) -> JSONResponse:
        """An upload of the caller's: refused with an HTTPException (507 when the landing zone
        is full), else landed and queued (201), or the first upload of the same content (200);
        a refusal or a failure is in the audit trail."""
        try:
            with self._slot(caller.tenant.name):
                return await self._receive(filename, caller, content_length, chunks, client)
        except HTTPException as refusal:
            self._audit.record(caller.tenant.name, "upload", filename,
                               "failed" if refusal.status_code >= 500 else "refused",
                               f"{refusal.status_code} {refusal.detail}", client)
            raise
        except Exception as error:
            self._audit.record(caller.tenant.name, "upload", filename, "failed",
                               f"{type(error).__name__}: {error}", client)
            raise

    async def _receive(self, filename: str, caller: Caller, content_length: Optional[str],
                       chunks: AsyncIterator[bytes], client: str) -> JSONResponse:
        started = time.monotonic()
        tenant = caller.tenant
        name = self._admit(filename, caller, content_length)
        try:
            landed = await self._land(filename, tenant, name, chunks)
            return self._commit(filename, tenant.name, name, landed, started, client)
        except OSError as error:
            if not zones.out_of_space(error):
                raise
            _LOG.error("%s's %s: no space left in the landing zone (%s)", tenant.name,
                       filename, error)
            raise self._refuse(tenant.name, "no_space", 507, f"{filename}: no space is left "
                               "in the landing zone; the upload was not acknowledged: send it "
                               "again later") from None

    def _refuse(self, tenant: str, outcome: str, status: int, reason: str,
                **headers: str) -> HTTPException:
        """The HTTPException to raise, counted under ``outcome``."""
        self.metrics.uploads.labels(tenant, outcome).inc()
        return HTTPException(status, reason, headers=headers or None)

    @contextlib.contextmanager
    def _slot(self, tenant: str) -> Iterator[None]:
        """One of the tenant's uploads in progress here, or a 429 that closes the connection
        with the answer, the body unread."""
        if not self._slots.take(tenant):
            raise self._refuse(
                tenant, "too_many_at_once", 429, f"{self._slots.per_tenant} uploads of "
                f"{tenant} already in progress here; try again later",
                **{"Retry-After": str(_BUSY_RETRY_SECONDS), "Connection": "close"})
        try:
            yield
        finally:
            self._slots.give_back(tenant)

    def _admit(self, filename: str, caller: Caller,
               content_length: Optional[str]) -> VacationName:
        """The vacation the upload says it is, if the tenant may send it now."""
        tenant = caller.tenant
        if not filename.endswith(tenant.formats) or "/" in filename:
            raise self._refuse(tenant.name, "bad_format", 415, f"{filename}: allowed formats "
                               f"are {', '.join(tenant.formats)}")
        name = VacationName.parse(filename)
        if name is None:
            raise self._refuse(tenant.name, "bad_name", 422, f"{filename} is not a vacation "
                               "BAF_<YYYYMMDD>_<NN>.tar.bz2")
        declared = int(content_length or 0)
        if declared > tenant.max_bytes:
            raise self._refuse(tenant.name, "too_large", 413, f"{filename}: {declared} bytes, "
                               f"more than the {tenant.max_bytes} allowed")
        if not self._tokens.take_file(caller.grant, tenant.max_files):
            raise self._refuse(tenant.name, "too_many_files", 429, f"at most "
                               f"{tenant.max_files} files per upload session; ask for a new "
                               "token")
        return name

    async def _land(self, filename: str, tenant: Tenant, name: VacationName,
                    chunks: AsyncIterator[bytes]) -> _Landed:
        """The upload streamed to a temporary name in its landing folder, its size and its
        META.json checked on the way; nothing is left there if it is refused or fails."""
        folder = zones.join(self._landing, *filter(None, [tenant.landing_prefix]),
                            name.business_date, name.vacation_id)
        temporary = zones.join(folder, f"_incoming-{uuid.uuid4().hex}")
        zones.ensure_parent(temporary)
        digest, size = hashlib.sha256(), 0
        try:
            with MetaProbe(name) as probe, FileSystems.create(
                    temporary, compression_type=CompressionTypes.UNCOMPRESSED) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > tenant.max_bytes:
                        raise self._refuse(tenant.name, "too_large", 413, f"{filename}: more "
                                           f"than the {tenant.max_bytes} bytes allowed")
                    digest.update(chunk)
                    out.write(chunk)
                    probe.feed(chunk)
                await probe.finish()
        except VacationError as mismatch:  # META.json names another vacation
            zones.discard(temporary, self._landing)
            raise self._refuse(tenant.name, "vacation_id_mismatch", 422,
                               f"{filename}: {mismatch}") from None
        except BaseException:
            zones.discard(temporary, self._landing)
            raise
        return _Landed(temporary, folder, digest.hexdigest(), size)

    def _commit(self, filename: str, tenant: str, name: VacationName, landed: _Landed,
                started: float, client: str) -> JSONResponse:
        """The landed upload renamed under its sha256, queued as RECEIVED and recorded; or,
        the tenant's same vacation again, discarded for the first upload of it.

        The reservation comes first and the ``uploads`` row last, so a reservation without
        its row is an attempt that failed in between: this one completes it under the first
        attempt's upload id, each step idempotent (the file already landed is kept, the
        ledger queues the same content once, the row is written again)."""
        upload_id = uuid.uuid4().hex
        try:
            first = self._uploads.reserve(tenant, filename, landed.sha256, upload_id)
            acknowledged = first is not None and self._uploads.get(tenant, first) is not None
        except BaseException:  # the temporary is not committed yet: it goes
            zones.discard(landed.temporary, self._landing)
            raise
        if acknowledged:
            return self._duplicate(filename, tenant, landed, first, client)
        upload_id = first or upload_id
        final = commit_landed(landed.temporary, landed.folder, landed.sha256, filename)
        now = datetime.datetime.now(datetime.UTC)
        day = datetime.date.fromisoformat(name.business_date)
        self._ledger.receive(name.vacation_id, day, name.slot, landed.sha256, now, final, tenant)
        self._uploads.record(tenant, upload_id, filename, landed.sha256, landed.size, now, day,
                             name.vacation_id, final)
        self.metrics.uploads.labels(tenant, "received").inc()
        self.metrics.upload_bytes.labels(tenant).inc(landed.size)
        self.metrics.upload_seconds.observe(time.monotonic() - started)
        completed = "" if first is None else ", completing an unacknowledged attempt"
        _LOG.info("%s uploaded %s (%d bytes, sha256 %s%s)", tenant, filename, landed.size,
                  landed.sha256, completed)
        self._audit.record(tenant, "upload", filename, "accepted", f"upload {upload_id}, "
                           f"{landed.size} bytes, sha256 {landed.sha256}{completed}", client)
        return JSONResponse({"upload_id": upload_id, "sha256": landed.sha256,
                             "bytes": landed.size, "vacation_id": name.vacation_id,
                             "duplicate": False}, 201)

    def _duplicate(self, filename: str, tenant: str, landed: _Landed, first: str,
                   client: str) -> JSONResponse:
        """The same vacation again, acknowledged before: discarded, answered with the first
        upload."""
        zones.discard(landed.temporary, self._landing)
        self.metrics.uploads.labels(tenant, "duplicate").inc()
        self._audit.record(tenant, "upload", filename, "duplicate",
                           f"sha256 {landed.sha256}, first upload {first}", client)
        return JSONResponse({"upload_id": first, "sha256": landed.sha256, "duplicate": True},
                            200)
