"""The data-quality checks on generated traffic: six weeks of normal days give no finding, and
each anomaly the checks are for is found on its metric and on nothing else (the feed is judged
by the pipeline's own functions: ``helpers.feed``); then the checks case by case.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
from decimal import Decimal

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from helpers import ROOT
from helpers.feed import Feed

from io_connectors.cassandra_client import CassandraConfig
from io_connectors.first_seen import _CountNewAccountsFn
from pipelines import schedule
from pipelines.local.generator import Traffic
from transforms import contract
from transforms.csv_records import REJECT_SCHEMA
from transforms.facts import (
    BatchCounts,
    Digest,
    MemberDigest,
    Meta,
    Monitor,
    MonitorLine,
    StructuredWrite,
)
from transforms.outcome import DecideVacation, RunContext, VacationFacts
from transforms.profile import profile_batch
from transforms.quality import Baseline, Check, Past, Rule, Settings, judge
from transforms.validate import ValidatedBatch

FIRST_DAY = datetime.date(2026, 9, 7)  # a Monday
WEEKS = 6
VOLUME = {1: 700, 2: 1100, 3: 1400, 4: 1100, 5: 900, 6: 600}  # CRE records of a plain day
POOL = Traffic(accounts=2000, accounts_seed=1)


def _send(feed: Feed, day: datetime.date, slot: int, *, volume: float = 1.0,
          gesparam: bool = True, seed: int = 0, **bends) -> dict:
    """One vacation of a plain day (volumes and reject ratio a little different every day,
    received 20 to 40 minutes before the slot's deadline), bent as ``bends`` say."""
    noise = random.Random(day.toordinal() * 10 + slot + seed)
    rows = int(VOLUME[slot] * volume * noise.uniform(0.95, 1.05))
    traffic = dataclasses.replace(POOL, **{"bad_dates": noise.uniform(0.001, 0.003), **bends})
    received = schedule.deadline(day, slot) - datetime.timedelta(minutes=noise.uniform(20, 40))
    return feed.send(day, slot, rows, noise.randint(40, 50) if gesparam else 0,
                     day.toordinal() * 10 + slot + seed, traffic, received)


def _findings(outcome: dict) -> list[tuple[str, str]]:
    return [(finding["metric"], finding["check"]) for finding in outcome["quality"]["findings"]]


@pytest.fixture(scope="module")
def weeks(tmp_path_factory) -> tuple[Feed, list[dict]]:
    """Six weeks of plain traffic, six vacations a day, and their outcomes."""
    feed = Feed(tmp_path_factory.mktemp("feed"))
    outcomes = [_send(feed, FIRST_DAY + datetime.timedelta(days=day), slot)
                for day in range(WEEKS * 7) for slot in range(1, 7)]
    return feed, outcomes


NEXT_DAY = FIRST_DAY + datetime.timedelta(days=WEEKS * 7)


def test_six_weeks_of_normal_traffic_give_no_finding(weeks):
    _, outcomes = weeks
    assert len(outcomes) == WEEKS * 7 * 6
    assert [outcome["vacation_id"] for outcome in outcomes
            if outcome["quality"]["findings"]] == []
    judged = [outcome for outcome in outcomes if not outcome["quality"]["note"]]
    # a slot is judged from its 15th vacation on; before, the quality says why not
    assert len(judged) == (WEEKS * 7 - 14) * 6
    assert all("history too short" in outcome["quality"]["note"]
               for outcome in outcomes if outcome not in judged)
    assert {outcome["status"] for outcome in outcomes} == {
        contract.Outcome.ACCEPTED_WITH_REJECTS, contract.Outcome.ACCEPTED}
    assert judged[-1]["quality"]["history"] == WEEKS * 7 - 1


def test_the_next_normal_day_gives_no_finding_either(weeks):
    feed = weeks[0].copy()
    for slot in range(1, 7):
        assert _findings(_send(feed, NEXT_DAY, slot, seed=99)) == []


@pytest.mark.parametrize("anomaly, traffic, expected", [
    ("slot 3 at 40% of its volume", {"volume": 0.4}, [("records.CRE", "history")]),
    ("the EUR credits ten times their sum", {"amount_factors": {("CREDIT", "EUR"): 10}},
     [("events.CREDIT.EUR.amount", "history")]),
    ("30% of the events on new accounts", {"new_accounts": 0.3},
     [("accounts.new_ratio", "history")]),
    ("GESPARAM empty", {"gesparam": False}, [("records.GESPARAM", "history")]),
], ids=["volume", "amounts", "new accounts", "empty GESPARAM"])
def test_an_anomaly_is_found_on_its_metric_and_nothing_else(weeks, anomaly, traffic, expected):
    feed = weeks[0].copy()
    outcome = _send(feed, NEXT_DAY, 3, **traffic)
    assert _findings(outcome) == expected, anomaly
    [finding] = outcome["quality"]["findings"]
    low, high = finding["expected"]["low"], finding["expected"]["high"]
    assert not (low or float("-inf")) <= finding["value"] <= (high or float("inf"))
    assert finding["message"].startswith(f"{finding['metric']} is ")
    assert outcome["status"] != contract.Outcome.REJECTED  # a finding never rejects


def test_an_empty_gesparam_on_slot_1_also_breaks_the_fixed_rule(weeks):
    feed = weeks[0].copy()
    outcome = _send(feed, NEXT_DAY, 1, gesparam=False)
    assert sorted(_findings(outcome)) == [
        ("records.GESPARAM", "history"),
        ("records.GESPARAM", "rule: GESPARAM is never empty on slot 1")]


def test_a_reject_ratio_creeping_up_over_a_week_is_found_on_that_ratio_alone(weeks):
    feed, _ = weeks
    drifting = feed.copy()
    drifting.history = {slot: [past for past in pasts
                               if past.business_date < NEXT_DAY - datetime.timedelta(days=7)]
                        for slot, pasts in feed.history.items()}
    found = {}
    for day in range(7):
        ratio = 0.002 + 0.04 * (day + 1) / 7  # from 0.2% to 4.2%: under the 5% limit
        date = NEXT_DAY - datetime.timedelta(days=7 - day)
        for slot in range(1, 7):
            outcome = _send(drifting, date, slot, seed=7, bad_dates=ratio)
            assert outcome["status"] == contract.Outcome.ACCEPTED_WITH_REJECTS
            found[date, slot] = _findings(outcome)
    assert {finding for findings in found.values() for finding in findings} == {
        ("reject.ratio", "history")}
    last_day = NEXT_DAY - datetime.timedelta(days=1)
    assert all(found[last_day, slot] for slot in range(1, 7))  # 4.2%: every slot
    assert not any(found[NEXT_DAY - datetime.timedelta(days=7), slot] for slot in range(1, 7))


# --- the checks, case by case ----------------------------------------------------------------


def _past(values: list[float], metric: str = "records.CRE", start=FIRST_DAY) -> tuple[Past, ...]:
    return tuple(Past(start + datetime.timedelta(days=day), {metric: value})
                 for day, value in enumerate(values))


def test_the_settings_file_spells_the_defaults():
    assert Settings.load(ROOT / "monitoring" / "quality" / "settings.toml") == Settings()


@pytest.mark.parametrize("text, error", [
    ("[history]\nwindow = 3\n", "unexpected keyword argument 'window'"),
    ("[[rule]]\nname = 'x'\nmetric = 'records.CRE'\nseverity = 'fatal'\n", "severity 'fatal'"),
    ("[[rule]]\nname = 'x'\nmetric = 'records.CRE'\n", "neither min nor max"),
    ("[[check]]\nmetric = 'x'\ndirection = 'sideways'\n", "direction 'sideways'"),
    ("[thresholds]\nwarning = 9\ncritical = 3\n", "warning <= critical"),
    ("[alerts]\n", "unknown section alerts"),
])
def test_bad_settings_are_refused_naming_the_file(tmp_path, text, error):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error) as refused:
        Settings.load(path)
    assert str(path) in str(refused.value)


def test_a_section_left_out_keeps_its_defaults(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[history]\nmin_history = 3\n")
    assert Settings.load(path) == Settings(min_history=3)


def test_a_short_history_is_not_judged_and_says_so():
    baseline = Baseline(Settings(), _past([100.0] * 13))
    judged = judge({"records.CRE": 5.0}, baseline, FIRST_DAY + datetime.timedelta(days=20), 3)
    assert judged["findings"] == []
    assert judged["note"] == ("history too short to judge: 13 earlier vacations of slot 3 in "
                              "70 days, 14 needed")
    without = judge({"records.CRE": 5.0}, Baseline(Settings(), None), FIRST_DAY, 3)
    assert without["note"] == "not judged against history: no structured zone holds it"


def test_history_outside_the_window_or_after_the_day_does_not_count():
    day = FIRST_DAY + datetime.timedelta(days=100)
    baseline = Baseline(Settings(), _past([100.0] * 30) + _past([100.0] * 5, start=day))
    assert judge({"records.CRE": 100.0}, baseline, day, 3)["note"].startswith(
        "history too short to judge: 0 earlier")


def test_the_same_weekday_is_the_history_once_there_are_enough_of_them():
    """Weekends at half the volume: a Saturday judged against Saturdays is normal, and a
    Saturday at a weekday's volume is not."""
    days = [FIRST_DAY + datetime.timedelta(days=day) for day in range(63)]
    history = tuple(Past(day, {"records.CRE": 500.0 if day.weekday() >= 5 else 1000.0
                               + day.toordinal() % 7}) for day in days)
    saturday = FIRST_DAY + datetime.timedelta(days=68)
    assert saturday.weekday() == 5
    baseline = Baseline(Settings(), history)
    assert judge({"records.CRE": 500.0}, baseline, saturday, 2)["findings"] == []
    [finding] = judge({"records.CRE": 1000.0}, baseline, saturday, 2)["findings"]
    assert finding["expected"] == {"low": 440.0, "high": 560.0}  # 500 +- 6 x (2% of 500)
    few = Baseline(Settings(), history[-30:])  # fewer than 8 Saturdays: every day
    assert judge({"records.CRE": 1000.0}, few, saturday, 2)["findings"] == []


def test_a_robust_spread_is_floored_and_the_range_is_given_in_the_metrics_unit():
    baseline = Baseline(Settings(), tuple(
        Past(FIRST_DAY + datetime.timedelta(days=day),
             {"loaded.CRE": 1000.0, "events.FEE.EUR.count": 100.0}) for day in range(20)))
    day = FIRST_DAY + datetime.timedelta(days=20)
    # half the volume, the same share of fees: nothing on the fees
    assert judge({"loaded.CRE": 500.0, "events.FEE.EUR.count": 50.0}, baseline, day, 4)[
        "findings"] == []
    [finding] = judge({"loaded.CRE": 500.0, "events.FEE.EUR.count": 90.0}, baseline, day,
                      4)["findings"]
    # 0.1 per event, spread floored at 5% of it: 0.1 +- 6 x 0.005, at 500 events
    assert finding["expected"] == {"low": 35.0, "high": 65.0}
    assert finding["severity"] == "critical"  # (0.18 - 0.1) / 0.005 = 16 >= 10


def test_a_metric_that_may_only_rise_has_no_lower_bound():
    baseline = Baseline(Settings(), _past([0.01] * 20, "reject.ratio"))
    day = FIRST_DAY + datetime.timedelta(days=20)
    assert judge({"reject.ratio": 0.0}, baseline, day, 4)["findings"] == []
    [finding] = judge({"reject.ratio": 0.03}, baseline, day, 4)["findings"]
    assert finding["expected"] == {"low": None, "high": 0.025}  # 0.01 + 6 x 0.0025
    assert finding["severity"] == "warning"  # (0.03 - 0.01) / 0.0025 = 8 < 10


def test_a_rule_applies_to_its_slots_only():
    settings = Settings(rules=(Rule("few rejects", "reject.ratio", "warning", (2, 3),
                                    max=0.01),))
    baseline = Baseline(settings, None)
    assert judge({"reject.ratio": 0.02}, baseline, FIRST_DAY, 1)["findings"] == []
    [finding] = judge({"reject.ratio": 0.02}, baseline, FIRST_DAY, 2)["findings"]
    assert finding == {"metric": "reject.ratio", "value": 0.02,
                       "expected": {"low": None, "high": 0.01}, "severity": "warning",
                       "check": "rule: few rejects",
                       "message": "few rejects: reject.ratio is 0.02"}


def test_a_metric_no_check_names_is_kept_but_not_judged():
    settings = Settings(checks=(Check("records.*"),))
    baseline = Baseline(settings, _past([10.0] * 20, "accounts.distinct"))
    judged = judge({"accounts.distinct": 5000.0}, baseline, FIRST_DAY + datetime.timedelta(
        days=20), 4)
    assert judged["findings"] == [] and judged["metrics"] == {"accounts.distinct": 5000.0}


def _validated(accounts: list[str], kinds: list[str]) -> ValidatedBatch:
    records = pa.table({
        "account_id": accounts, "event_type": kinds, "currency": ["EUR"] * len(kinds),
        "amount": pa.array(["1.50"] * len(kinds), pa.string()).cast(pa.decimal128(18, 2)),
        "value_date": pa.array([datetime.date(2026, 11, 20 + day)
                                for day in range(len(kinds))])})
    counts = BatchCounts("CRE_0001.csv", contract.CRE, len(kinds), 0, {},
                         Decimal("1.50") * len(kinds))
    return ValidatedBatch("CRE_0001.csv", contract.CRE, records, REJECT_SCHEMA.empty_table(),
                          counts)


def test_a_batch_profile_counts_its_events_and_accounts():
    profile = profile_batch(_validated(["A", "B", "A"], ["DEBIT", "FEE", "DEBIT"]))
    assert profile.events == {("DEBIT", "EUR"): (2, Decimal("3.00")),
                              ("FEE", "EUR"): (1, Decimal("1.50"))}
    first = datetime.date(2026, 11, 20).toordinal()
    assert (profile.first_value_date, profile.last_value_date) == (first, first + 2)
    assert sorted(profile.accounts.to_pylist()) == ["A", "B"]


def test_the_decision_unites_the_profiles_of_every_batch():
    """Batches profiled apart (on any worker), combined into the vacation's metrics."""
    batches = [_validated(["A", "B"], ["DEBIT", "FEE"]), _validated(["B", "C"], ["DEBIT"] * 2)]
    member = MemberDigest("CRE_0001.csv", contract.CRE, 4, Digest(10, "0" * 64))
    facts = [Meta("BAF_20261120_02", contract.SENDER, "2026-11-20", 2,
                  "2026-11-20T09:00:00+01:00", contract.FORMAT_VERSION, "UTF-8", (member,)),
             Monitor((MonitorLine("CRE_0001.csv", contract.CRE, 4, Decimal("6.00")),)), member,
             *(fact for batch in batches for fact in (batch.counts, profile_batch(batch)))]
    context = RunContext("BAF_20261120_02", "2026-11-20", 2, "0" * 64,
                         "2026-11-20T08:00:00+00:00",
                         quality=Baseline(Settings(), None, schedule.deadline(
                             datetime.date(2026, 11, 20), 2)))
    with TestPipeline() as pipeline:
        decided = (pipeline | beam.Create(facts, reshuffle=False)
                   | DecideVacation(context)
                   | beam.Map(lambda decision: decision.summary["quality"]["metrics"]))
        assert_that(decided | beam.Map(lambda metrics: {
            name: metrics[name] for name in ("accounts.distinct", "events.DEBIT.EUR.count",
                                             "events.DEBIT.EUR.amount", "loaded.CRE",
                                             "value_dates.spread_days",
                                             "arrival.delay_minutes")}),
            equal_to([{"accounts.distinct": 3.0, "events.DEBIT.EUR.count": 3.0,
                       "events.DEBIT.EUR.amount": 4.5, "loaded.CRE": 4.0,
                       "value_dates.spread_days": 1.0, "arrival.delay_minutes": -60.0}]))


def test_a_run_whose_rows_failed_asks_the_structured_zone_nothing():
    """Its vacation is discarded, not judged: no session is opened (two replicas lost, a
    cluster could not even authenticate it), the run fails on its rows."""
    facts = VacationFacts(write_failures=[StructuredWrite("cre_event_versions", 0, 5, "down")])
    counting = _CountNewAccountsFn(CassandraConfig(("127.0.0.1",), "cre"), "BAF_20261120_02",
                                   datetime.date(2026, 11, 20), 2)
    counting.setup()  # as Beam does: no session yet
    assert list(counting.process(facts)) == [facts]
    counting.teardown()
    assert facts.new_accounts is None
