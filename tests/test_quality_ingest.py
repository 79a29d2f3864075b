"""The data-quality checks end to end: ``cre ingest`` measures a vacation against its slot's
history in a real structured zone, says what it found in the summary, the AUDIT member, the
ledger's story and ``cre quality``, and holds the delivery when told to, until it is released.
"""

from __future__ import annotations

import datetime
import getpass
import json
from pathlib import Path

import fastavro
import pytest
from helpers import run_cre
from helpers.feed import Feed

from pipelines import schedule
from pipelines.ledger import Ledger, State
from pipelines.local.generator import Traffic, generate_vacation
from pipelines.quality import QualityStore
from transforms.contract import VacationName
from transforms.quality import Settings

pytestmark = pytest.mark.integration

POOL = Traffic(accounts=100, accounts_seed=3)  # a bank of 100 accounts, every day the same
FIRST = datetime.date(2026, 10, 31)  # the first vacation of slot 3 the platform saw


def _ingest(env: dict, folder: Path, zones: Path, day: datetime.date, slot: int, rows: int,
            *extra: str, traffic: Traffic = POOL):
    archive = generate_vacation(folder, day.isoformat(), slot, rows, 40,
                                seed=day.toordinal() + slot, traffic=traffic)
    return run_cre("ingest", "--input", str(archive), "--zones-root", str(zones), *extra,
                   env=env)


def _audit(zones: Path, vacation_id: str) -> dict:
    record = json.loads((zones / "proxy_producer" / "_vacations" / f"{vacation_id}.json")
                        .read_text())
    [path] = [item["path"] for item in record["files"] if item["type"] == "AUDIT"]
    with open(path, "rb") as handle:
        [audit] = fastavro.reader(handle)
    return audit


@pytest.fixture(scope="module")
def slot3(structured, zone_session, tmp_path_factory) -> dict:
    """A first vacation (slot 4, three weeks earlier: the first of its slot, it brings every
    account), then the 20 days of slot 3 before ``FIRST`` as they would have been judged
    (``helpers.feed``), kept in the structured zone. The tests' ingests arrive weeks after
    their business dates: the days kept say nothing of arrival, which is not judged here."""
    folder = tmp_path_factory.mktemp("quality")
    first = _ingest(structured, folder / "in", folder / "zones",
                    FIRST - datetime.timedelta(days=21), 4, 2000)
    assert first.code == 0, first.stderr
    feed, store = Feed(folder / "feed"), QualityStore(zone_session)
    for back in range(20, 0, -1):
        day = FIRST - datetime.timedelta(days=back)
        outcome = feed.send(day, 3, 2000, 40, day.toordinal(), POOL, schedule.deadline(day, 3))
        del outcome["quality"]["metrics"]["arrival.delay_minutes"]
        store.record(outcome)
    return {"env": structured, "folder": folder, "zones": folder / "zones", "first": first}


def test_the_first_vacations_of_a_slot_are_measured_not_judged(slot3):
    quality = slot3["first"].summary["quality"]
    assert quality["findings"] == []
    assert quality["note"] == ("history too short to judge: 0 earlier vacations of slot 4 in 70 "
                               "days, 14 needed")
    metrics = quality["metrics"]
    assert metrics["records.CRE"] == 2000 and metrics["records.GESPARAM"] == 40
    assert metrics["accounts.new"] == metrics["accounts.distinct"] == 100  # all new: the first
    assert sum(value for name, value in metrics.items()
               if name.startswith("events.") and name.endswith(".count")) == 2000


def test_a_normal_vacation_has_no_finding_everywhere_it_is_told(slot3, zone_session):
    env, zones = slot3["env"], slot3["zones"]
    run = _ingest(env, slot3["folder"] / "in", zones, FIRST, 3, 2000)
    assert run.code == 0, run.stderr
    quality = run.summary["quality"]
    assert (quality["findings"], quality["note"], quality["history"]) == ([], "", 20)
    assert quality["metrics"]["accounts.new"] == 0  # the same 100 accounts as slot 4's
    assert _audit(zones, "BAF_20261031_03")["quality"]["findings"] == []
    asked = run_cre("quality", "BAF_20261031_03", "--json", env=env)
    assert asked.code == 0, asked.stderr
    assert json.loads(asked.stdout)["findings"] == []
    story = [entry.message for entry in Ledger(zone_session).history("BAF_20261031_03")]
    assert "quality: no finding (judged against 20 earlier vacations)" in story
    assert Ledger(zone_session).get("BAF_20261031_03").state == State.DELIVERED


def test_a_finding_is_told_and_holds_the_delivery_until_it_is_released(slot3, zone_session):
    env, zones = slot3["env"], slot3["zones"]
    day = FIRST + datetime.timedelta(days=1)
    run = _ingest(env, slot3["folder"] / "in", zones, day, 3, 800, "--quality-hold", "warning")
    assert run.code == 0, run.stderr
    assert run.summary["status"] == "ACCEPTED"  # a finding never changes the outcome
    [finding] = run.summary["quality"]["findings"]
    assert finding["metric"] == "records.CRE" and finding["value"] == 800
    assert finding["expected"]["low"] > 800 and finding["expected"]["high"] > 2000
    assert _audit(zones, "BAF_20261101_03")["quality"]["findings"] == [
        {**finding, "expected": finding["expected"]}]

    asked = run_cre("quality", "--date", day.isoformat(), "--json", env=env)
    assert asked.code == 0, asked.stderr
    [vacation] = json.loads(asked.stdout)["vacations"]
    assert vacation["findings"] == [finding] and vacation["severity"] == finding["severity"]
    text = run_cre("quality", "BAF_20261101_03", env=env).stdout
    assert "records.CRE" in text and "1 findings" in text

    ledger = Ledger(zone_session)
    row = ledger.get("BAF_20261101_03")
    assert row.state == State.LOADED and row.delivered_at is None
    assert row.delivery_held == f"{finding['severity']} data-quality finding on records.CRE"
    package = zones / "outbound/arkea_abs/2026-11-01/MMG_ABS_20261101_03.tar.bz2"
    assert not package.exists()
    story = [entry.message for entry in ledger.history("BAF_20261101_03")]
    assert any(message.startswith("quality: 1 finding(s): ") for message in story)
    assert any(message.startswith("delivery held: ") for message in story)

    refused = run_cre("deliver", "--vacation", "BAF_20261101_03", "--zones-root", str(zones),
                      env=env)
    assert refused.code == 1 and "its delivery is held" in refused.stderr
    released = run_cre("deliver", "--vacation", "BAF_20261101_03", "--zones-root", str(zones),
                       "--release", env=env)
    assert released.code == 0, released.stderr
    assert package.exists()
    assert ledger.get("BAF_20261101_03").state == State.DELIVERED
    assert any(entry.message.startswith(f"delivery released by {getpass.getuser()}")
               for entry in ledger.history("BAF_20261101_03"))


def test_an_earlier_vacation_ingested_later_is_the_first_to_have_seen_its_accounts(
        slot3, zone_session):
    env, zones = slot3["env"], slot3["zones"]
    earlier = FIRST - datetime.timedelta(days=30)
    vacation_id = f"BAF_{earlier:%Y%m%d}_05"
    run = _ingest(env, slot3["folder"] / "in", zones, earlier, 5, 2000)
    assert run.code == 0, run.stderr
    metrics = run.summary["quality"]["metrics"]
    assert metrics["accounts.new"] == metrics["accounts.distinct"] == 100
    owners = {vacation for (vacation,) in zone_session.execute(
        "SELECT vacation_id FROM accounts_first_seen")}
    assert owners == {vacation_id}
    assert run_cre("rollback", vacation_id, env=env).code == 0
    again = run_cre("replay", vacation_id, env=env)
    assert again.code == 0, again.stderr
    assert again.summary["quality"]["metrics"]["accounts.new"] == 100  # still its own


def test_a_rolled_back_vacation_leaves_the_history(slot3, zone_session):
    env = slot3["env"]
    assert run_cre("rollback", "BAF_20261031_03", env=env).code == 0
    record = QualityStore(zone_session).get("BAF_20261031_03")
    assert record.status == "ROLLED_BACK"
    name = VacationName.parse("BAF_20261105_03.tar.bz2")
    history = QualityStore(zone_session).baseline(name, Settings()).history
    assert len(history) == 21  # the 20 days before and the one held, not the rolled back
    assert FIRST not in [past.business_date for past in history]
