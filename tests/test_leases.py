"""A run's claim is a short lease its ingest renews: a live run is never taken over, however
long it stays in one state, and a run that died on any host is taken over once its lease
lapses. The replicas play two hosts (``unshare -u``), so that no pid check on one machine can
be what saves them."""

from __future__ import annotations

import collections
import datetime
import hashlib
import socket
import time

import pytest
from helpers import PASSWORDS, Service, add_tenant, run_cre, wait_until

from pipelines.ledger import IN_PROGRESS, Ledger, LedgerConflict, State
from pipelines.local.generator import generate_vacation
from service.audit import events_since

pytestmark = pytest.mark.integration

LEASE = 3.0  # seconds: the tests' leases, so that "several leases" is a few seconds


def _claim(ledger: Ledger, vacation_id: str) -> str:
    day = datetime.date(2026, 9, 1)
    return ledger.claim(vacation_id, day, 1, hashlib.sha256(vacation_id.encode()).hexdigest(),
                        datetime.datetime.now(datetime.UTC), f"/landing/{vacation_id}").outcome


def test_a_renewed_claim_outlives_its_lease_and_a_dropped_one_is_taken_over(zone_session):
    vacation_id = "BAF_20260901_01"
    running, other = (Ledger(zone_session, lease_seconds=1.5) for _ in range(2))
    assert _claim(running, vacation_id) == "claimed"
    with running.renewing(vacation_id):
        deadline = time.monotonic() + 5  # more than three leases
        while time.monotonic() < deadline:
            with pytest.raises(LedgerConflict, match="being ingested"):
                _claim(other, vacation_id)
            time.sleep(0.5)
    # the renewals stopped (the run died): the claim lapses and another run takes it
    assert wait_until(lambda: _try_claim(other, vacation_id), timeout=5, interval=0.2,
                      what="a takeover of the lapsed claim") == "claimed"
    assert not running.renew(vacation_id)
    with pytest.raises(LedgerConflict, match="no longer owns"):
        running.advance(vacation_id, State.LANDED, State.VALIDATED)


def _try_claim(ledger: Ledger, vacation_id: str) -> str:
    try:
        return _claim(ledger, vacation_id)
    except LedgerConflict:
        return ""


def test_a_run_killed_on_one_host_is_taken_over_by_the_other_and_a_live_one_never(
        structured, zone_session, tmp_path):
    """Replica A (host ``host-a``) ingests a vacation long enough to outlast several leases
    while replica B (this host) watches: B never takes it (A's hold and its run's renewed
    claim both stand in its way; the claim alone is pinned by the test above). Then A and its
    ingest are SIGKILLed: with no pid check across hosts, only the lapse of both lets B take it
    over, within two minutes, and the vacation is loaded and delivered once, every record of
    it."""
    add_tenant(tmp_path / "tenants.json", "arkea")
    # CQL mode: a load slow enough to span several leases; the leases short, for the test
    env = {**structured, "CRE_LEASE_SECONDS": str(LEASE), "CRE_LOAD_MODE": "cql"}
    archive = generate_vacation(tmp_path / "inbox", "2026-09-02", 1, 400_000, 50, seed=31)
    vacation_id = "BAF_20260902_01"
    ledger = Ledger(zone_session)
    since = datetime.datetime.now(datetime.UTC)
    a = Service(tmp_path, env, "--parallelism", "1", host="host-a")
    b = None
    try:
        sent = run_cre("fetchdata", "-u", "arkea", "-d", str(archive.parent), "--server",
                       a.url, env={"CRE_PASSWORD": PASSWORDS["arkea"]})
        assert sent.code == 0, sent.stdout + sent.stderr
        claimed = wait_until(lambda: ledger.get(vacation_id),
                             lambda row: row and row.state in IN_PROGRESS, timeout=60,
                             interval=0.2, what="A's claim")
        assert claimed.owner.startswith("host-a:")
        b = Service(tmp_path, env, "--parallelism", "1")
        time.sleep(4 * LEASE)  # A's run outlasts four leases while B's manager ticks
        live = ledger.get(vacation_id)
        assert live.state in IN_PROGRESS and live.run_id == claimed.run_id, \
            "the load ended before it outlasted its leases: make the vacation larger"
        a.kill()
        killed = time.monotonic()
        taken = wait_until(lambda: ledger.get(vacation_id),
                           lambda row: row.run_id != claimed.run_id, timeout=120, interval=0.5,
                           what="B's takeover", detail=lambda: b.log.read_text()[-3000:])
        takeover = time.monotonic() - killed
        assert not taken.owner.startswith("host-a:")
        done = wait_until(lambda: ledger.get(vacation_id),
                          lambda row: row.state == State.DELIVERED, timeout=300, interval=1,
                          what="the delivery", detail=lambda: b.log.read_text()[-3000:])
    finally:
        for replica in (a, b):
            if replica is not None:
                replica.kill()
    assert takeover < 120
    claims = [entry.message for entry in ledger.history(vacation_id)
              if entry.message.startswith("claimed")]
    assert len(claims) == 2 and any(f"by run {claimed.run_id}" in claim for claim in claims), \
        claims
    assert done.loaded == 400_000 + 50 and done.rejected == 0
    # the module's keyspace holds this vacation's rows only: a plain scan counts them
    loaded = collections.Counter(row[0] for row in zone_session.execute(
        "SELECT vacation_id FROM cre_event_versions", timeout=120))
    assert loaded == {vacation_id: 400_000}
    starts = collections.Counter(
        event["replica"].split(":")[0] for event in events_since(zone_session, "arkea", since)
        if event["action"] == "ingest.start")
    assert starts == {"host-a": 1, socket.gethostname(): 1}
