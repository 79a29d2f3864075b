"""The audit trail: the service's events recorded by a real ``cre serve``, read back one tenant
at a time with ``cre audit``, each row expiring after the configured TTL."""

from __future__ import annotations

import datetime
import json
import logging
import socket
from typing import Optional

import httpx
import pytest
from cassandra.util import uuid_from_time
from helpers import Service, add_tenant, run_cre, wait_until

from pipelines.local.generator import generate_vacation
from service.audit import ANONYMOUS, AuditTrail, events_since

DAY = 86_400


def _audit(env: dict, tenant: Optional[str]) -> list[dict]:
    """``cre audit`` of one tenant, or of every tenant (None)."""
    listed = run_cre("audit", *(["--tenant", tenant] if tenant else []), "--since",
                     "2000-01-01", "--json", env=env)
    assert listed.code == 0, listed.stderr
    return json.loads(listed.stdout)


def _ttl(session, tenant: str) -> list[int]:
    today = datetime.datetime.now(datetime.UTC).date()
    return [ttl for (ttl,) in session.execute(
        "SELECT TTL(outcome) FROM audit_events WHERE tenant = %s AND day = %s", (tenant, today))]


class _Unreachable:
    """A session whose every write fails, as the driver reports it: through the future."""

    class Future:
        def add_callbacks(self, callback, errback, callback_args, errback_args) -> None:
            errback(OSError("no host answered"), *errback_args)

        def result(self) -> None:
            raise OSError("no host answered")

    def prepare(self, query: str) -> str:
        return query

    def execute_async(self, statement: str, values: tuple) -> Future:
        return self.Future()


def test_a_lost_write_is_logged_with_its_event(caplog):
    with caplog.at_level(logging.ERROR, "service.audit"):
        trail = AuditTrail(_Unreachable(), "host:8080")
        trail.record("arkea", "login", "arkea", "ok", client="10.0.0.1")
        trail.close()  # nothing left in flight: it returns at once
    [lost] = caplog.records
    assert "NOT RECORDED (OSError: no host answered)" in lost.getMessage()
    assert "'client': '10.0.0.1'" in lost.getMessage()


def test_the_ttl_is_one_day_to_twenty_years():
    for days in (0, 7301):
        with pytest.raises(ValueError, match="1 to 7300 days"):
            AuditTrail(_Unreachable(), "host:8080", days)


@pytest.mark.integration
def test_service_events_are_recorded_per_tenant(structured, zone_session, tmp_path,
                                                 forget_failed_logins):
    tenants = tmp_path / "tenants.json"
    add_tenant(tenants, "arkea", "--max-bytes", "20000")
    add_tenant(tenants, "other")
    archive = generate_vacation(tmp_path / "in", "2026-07-02", 1, 10, 1, seed=74)
    service = Service(tmp_path, structured, "--no-manager", "--audit-ttl-days", "30")
    try:
        url = service.url
        with service.client("other"):
            pass
        with service.client("arkea") as arkea:
            for expected in (201, 200):  # accepted, then the same archive again
                assert arkea.put(f"/v1/uploads/{archive.name}",
                                 content=archive.read_bytes()).status_code == expected
            assert arkea.put("/v1/uploads/BAF_20260702_02.zip", content=b"x").status_code == 415
            assert arkea.put("/v1/uploads/BAF_20260702_03.tar.bz2",
                             content=b"x" * 30_000).status_code == 413
        assert httpx.get(f"{url}/v1/constraints").status_code == 401
        assert httpx.get(f"{url}/v1/constraints", headers={
            "Authorization": "Bearer made-up"}).status_code == 401
        assert httpx.post(f"{url}/v1/token", auth=("nobody", "a guess")).status_code == 401
        statuses = [httpx.post(f"{url}/v1/token", auth=("arkea", "wrong password!"),
                               timeout=30).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 401, 429]  # nobody's failure counts for the address
    finally:
        service.stop()  # SIGTERM: the events it answered for are written before it ends

    def arkea_events() -> list[dict]:
        return _audit(structured, "arkea")

    events = wait_until(arkea_events, lambda found: len(found) == 10, timeout=10, interval=0.5)
    assert [(e["action"], e["outcome"]) for e in reversed(events)] == [
        ("login", "ok"), ("upload", "accepted"), ("upload", "duplicate"),
        ("upload", "refused"), ("upload", "refused"), *[("login", "refused")] * 4,
        ("login", "throttled")]
    assert {e["tenant"] for e in events} == {"arkea"}
    assert {e["client"] for e in events} == {"127.0.0.1"}
    assert {e["replica"] for e in events} == {f"{socket.gethostname()}:{service.port}"}
    by_outcome = {(e["object"], e["outcome"]): e["detail"] for e in events}
    assert by_outcome[("BAF_20260702_02.zip", "refused")].startswith("415 ")
    assert by_outcome[("BAF_20260702_03.tar.bz2", "refused")].startswith("413 ")
    upload_id = by_outcome[(archive.name, "accepted")].split(",")[0].removeprefix("upload ")
    assert by_outcome[(archive.name, "duplicate")].endswith(f"first upload {upload_id}")
    assert [(e["action"], e["outcome"]) for e in _audit(structured, "other")] == [
        ("login", "ok")]
    anonymous = _audit(structured, ANONYMOUS)
    assert [(e["action"], e["outcome"], e["object"], e["detail"]) for e in anonymous] == [
        ("login", "refused", "nobody", "as 'nobody'"),
        *[("token", "refused", "/v1/constraints", "no valid bearer token")] * 2]
    assert all(29 * DAY < ttl <= 30 * DAY for ttl in _ttl(zone_session, "arkea"))
    everyone = _audit(structured, None)  # the operator's listing: every trail, newest first
    assert sorted(map(json.dumps, everyone)) == sorted(
        map(json.dumps, [*events, *_audit(structured, "other"), *anonymous]))
    assert [e["at"] for e in everyone] == sorted((e["at"] for e in everyone), reverse=True)


@pytest.mark.integration
def test_reads_name_one_tenant_and_start_at_since(zone_session):
    trail = AuditTrail(zone_session, "test:1")
    now = datetime.datetime.now(datetime.UTC)
    yesterday = now - datetime.timedelta(days=1)
    zone_session.execute(  # a day's partition of its own, as the day before would have left
        "INSERT INTO audit_events (tenant, day, at, replica, client, action, object, outcome, "
        "detail) VALUES ('reader-a', %s, %s, 'test:0', '', 'login', 'reader-a', 'ok', '')",
        (yesterday.date(), uuid_from_time(yesterday)))
    for tenant in ("reader-a", "reader-b"):
        trail.record(tenant, "login", tenant, "ok", client="10.0.0.2")

    def of_a() -> list[dict]:
        return events_since(zone_session, "reader-a", now - datetime.timedelta(days=2))

    found = wait_until(of_a, lambda events: len(events) == 2, timeout=10, interval=0.2)
    assert [e["replica"] for e in found] == ["test:1", "test:0"]  # newest first, over days
    assert {e["tenant"] for e in found} == {"reader-a"}
    assert [e["replica"] for e in events_since(zone_session, "reader-a", now)] == ["test:1"]
    assert all(399 * DAY < ttl <= 400 * DAY for ttl in _ttl(zone_session, "reader-b"))
