"""Uploads under faults: nothing acknowledged is lost, nothing unacknowledged is kept half.

Cassandra cut off from ``cre serve`` (a proxy between them), a landing zone on a full disk (a
small tmpfs), a replica SIGKILLed while it receives, and a commit interrupted between its
steps: each is answered with an error a sender can act on (503 with Retry-After, 507), and
``cre fetchdata`` (sending again, or to the other replica) ends with every file received once.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import functools
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cassandra import OperationTimedOut
from fastapi import FastAPI
from helpers import PASSWORDS, Service, add_tenant, incoming_files, start_cre, wait_until
from helpers.tcp_proxy import TcpProxy
from vacations import tar_bytes

from io_connectors.cassandra_client import CassandraConfig
from pipelines.ledger import Ledger, State
from pipelines.local.generator import generate_vacation, read_members
from service.app import create_app
from service.audit import AuditTrail
from service.dependencies import Settings
from service.uploads import Uploads

pytestmark = pytest.mark.integration


@pytest.fixture
def tenants(tmp_path) -> Path:
    add_tenant(tmp_path / "tenants.json", "arkea")
    return tmp_path / "tenants.json"


@pytest.fixture
def serve(structured, tenants, tmp_path) -> Iterator[Callable[..., Service]]:
    """Starts ``cre serve --no-manager`` replicas over the test's folder (with ``env`` over
    the structured zone's), each killed after the test."""
    started: list[Service] = []

    def start(**env: str) -> Service:
        started.append(Service(tmp_path, {**structured, **env}, "--no-manager"))
        return started[-1]

    yield start
    for service in started:
        service.kill()


def _archive(folder: Path, business_date: str, slot: int, padding: int = 0) -> Path:
    """A vacation of its own (the tests share a keyspace); ``padding`` incompressible bytes
    in a member of their own make it large quickly (the door reads only META.json, and no
    ingest runs here)."""
    archive = generate_vacation(folder, business_date, slot, 50, 10, seed=slot)
    if padding:
        members = {**read_members(archive),
                   "PADDING.bin": random.Random(slot).randbytes(padding)}
        archive.write_bytes(bz2.compress(tar_bytes(members), compresslevel=1))
    return archive


def _fetchdata(inbox: Path, *services: Service) -> subprocess.Popen:
    return start_cre("fetchdata", "-u", "arkea", "-d", str(inbox),
                     *(option for service in services for option in ("--server", service.url)),
                     env={"CRE_PASSWORD": PASSWORDS["arkea"]})


def _received_once(session, archives: list[Path]) -> None:
    """Each archive is one upload of arkea's, and its vacation RECEIVED with its content."""
    uploads = Uploads(session).of("arkea")
    ledger = Ledger(session)
    for archive in archives:
        vacation_id = archive.name.removesuffix(".tar.bz2")
        [upload] = [row for row in uploads if row["vacation_id"] == vacation_id]
        vacation = ledger.get(vacation_id)
        assert (vacation.state, vacation.sha256) == (State.RECEIVED, upload["sha256"])
        assert upload["bytes"] == archive.stat().st_size


def test_while_cassandra_is_cut_off_uploads_get_503_and_fetchdata_waits(
        structured, zone_session, serve, tmp_path):
    cassandra = CassandraConfig.from_hosts(structured["CRE_CASSANDRA_HOSTS"], "")
    inbox = tmp_path / "inbox"
    archives = [_archive(inbox, "2026-09-01", slot) for slot in (1, 2)]
    with TcpProxy(cassandra.hosts[0], cassandra.port) as proxy:
        service = serve(CRE_CASSANDRA_HOSTS=f"127.0.0.1:{proxy.port}")
        token = service.token("arkea")
        proxy.cut()
        with service.client("arkea", token) as client:
            cut = client.put(f"/v1/uploads/{archives[0].name}",
                             content=archives[0].read_bytes())
        assert cut.status_code == 503, cut.text
        assert cut.headers["retry-after"] == "15" and "try again" in cut.json()["detail"]
        fetch = _fetchdata(inbox, service)
        wait_until(service.log.read_text, lambda log: "POST /v1/token answered 503" in log,
                   timeout=30, interval=0.2, what="cre fetchdata meeting the cut")
        proxy.restore()
        out, err = fetch.communicate(timeout=90)
    assert fetch.returncode == 0, err
    assert "HTTP 503; retrying in 15 s" in err
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["sent", "sent"]
    assert "Traceback" not in service.log.read_text()
    _received_once(zone_session, archives)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted as the zones root of the test's service (we run as root)."""
    zones = tmp_path / "zones"
    zones.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(zones)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"the full disk test mounts a tmpfs (as root), and mount refused: "
                    f"{mounted.stderr.strip()}", pytrace=False)
    try:
        yield zones
    finally:
        subprocess.run(["umount", str(zones)], check=True)


def test_a_full_landing_zone_answers_507_and_keeps_nothing(
        zone_session, small_disk, serve, tmp_path):  # the disk unmounted after the service
    big = _archive(tmp_path / "big", "2026-09-02", 1, padding=3 << 20)
    small = _archive(tmp_path / "small", "2026-09-02", 2)
    service = serve()
    with service.client("arkea") as client:
        full = client.put(f"/v1/uploads/{big.name}", content=big.read_bytes())
        assert full.status_code == 507, full.text
        assert "no space is left in the landing zone" in full.json()["detail"]
        assert incoming_files(small_disk) == []
        disk = os.statvfs(small_disk)
        assert disk.f_bfree * disk.f_frsize > 1.9 * (1 << 20)  # the partial file is gone
        sent = client.put(f"/v1/uploads/{small.name}", content=small.read_bytes())
        assert sent.status_code == 201, sent.text
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'cre_uploads_total{outcome="no_space",tenant="arkea"} 1.0' in metrics
    audited = wait_until(lambda: [tuple(row) for row in zone_session.execute(
        "SELECT object, outcome, detail FROM audit_events WHERE tenant = 'arkea' AND day = "
        "toDate(now())") if row[0] == big.name], timeout=10, interval=0.2,
        what="the 507 in the audit trail")
    assert [(outcome, detail[:4]) for _, outcome, detail in audited] == [("failed", "507 ")]
    _received_once(zone_session, [small])


def test_a_replica_killed_mid_upload_hands_the_file_to_the_other(
        zone_session, serve, tmp_path):
    inbox = tmp_path / "inbox"
    archive = _archive(inbox, "2026-09-03", 1, padding=40 << 20)
    a, b = serve(), serve()
    fetch = _fetchdata(inbox, a, b)

    def receiving() -> bool:  # a's file in landing, growing
        sizes = []
        for path in incoming_files(tmp_path / "zones") or []:
            with contextlib.suppress(FileNotFoundError):  # renamed once received
                sizes.append(path.stat().st_size)
        return any(size > 1 << 20 for size in sizes)

    wait_until(receiving, timeout=60, interval=0.02, what="a receiving the archive")
    a.kill()
    out, err = fetch.communicate(timeout=120)
    assert fetch.returncode == 0, err
    assert f"{a.url}: " in err and f"; trying {b.url}" in err
    assert out.splitlines()[1].split()[:2] == [archive.name, "sent"]
    _received_once(zone_session, [archive])


async def _send_thrice(app: FastAPI, archive: Path) -> list[httpx.Response]:
    """The archive sent to the application (in this process), what its uploads then list,
    and the archive sent twice more."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://service") as client:
        login = await client.post("/v1/token", auth=("arkea", PASSWORDS["arkea"]))
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        send = functools.partial(client.put, f"/v1/uploads/{archive.name}",
                                 content=archive.read_bytes())
        return [await send(), await client.get("/v1/uploads", params={
            "file_name": archive.name}), await send(), await send()]


def _fail_once(monkeypatch, owner: type, method: str, *, after: bool) -> None:
    """``owner.method`` raises a Cassandra timeout at its first call, ``after`` doing its work
    (its answer lost) or before; later calls work."""
    original = getattr(owner, method)
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            return original(self, *args, **kwargs)
        if after:
            original(self, *args, **kwargs)
        raise OperationTimedOut("injected: the answer was lost")

    monkeypatch.setattr(owner, method, failing)


@pytest.mark.parametrize(("owner", "method", "after", "slot"), [
    (Uploads, "reserve", True, 1), (Ledger, "receive", False, 2),
    (Uploads, "record", False, 3)], ids=["reserved", "before-the-ledger", "before-the-row"])
def test_a_resend_completes_a_commit_cut_between_its_steps(
        structured, zone_session, tenants, tmp_path, monkeypatch, owner, method, after, slot):
    archive = _archive(tmp_path, "2026-09-04", slot)
    zones = tmp_path / "zones"
    audit = AuditTrail(zone_session, "test")
    _fail_once(monkeypatch, owner, method, after=after)
    app = create_app(Settings(str(zones), str(tenants)), zone_session, audit=audit)
    interrupted, listed, completed, again = asyncio.run(_send_thrice(app, archive))
    audit.close()
    assert interrupted.status_code == 503 and interrupted.headers["retry-after"] == "15"
    assert listed.json() == []  # not acknowledged: cre fetchdata would send it again
    assert completed.status_code == 201, completed.text
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["upload_id"] == completed.json()["upload_id"]
    _received_once(zone_session, [archive])
    sha256 = completed.json()["sha256"]
    folder = zones / "landing/arkea/2026-09-04" / archive.name.removesuffix(".tar.bz2")
    assert sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")) == [
        sha256, f"{sha256}/{archive.name}", f"{sha256}/{archive.name}.sha256"]
