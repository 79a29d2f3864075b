"""Reconciliation and status, decided from the facts without Beam; the decision as its step."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.vacations import MEMBER_CASES, ingest_steps, valid_members, write_archive
from transforms.facts import (
    BatchCounts,
    Digest,
    FatalError,
    MemberDigest,
    Meta,
    Monitor,
    MonitorLine,
    StagedFile,
    StructuredWrite,
)
from transforms.outcome import (
    CollectFacts,
    DecideVacation,
    RunContext,
    VacationFacts,
    decide,
    judge,
)

CONTEXT = RunContext("BAF_20261122_03", "2026-11-22", 3, "0" * 64, "t0", 0.05)
META = Meta("BAF_20261122_03", "ARKEA-BAF", "2026-11-22", 3, "2026-11-22T10:00:00+01:00", "1.0",
            "UTF-8", (MemberDigest("MONITOR.csv", "MONITOR", 1, Digest(1, "a" * 64)),
                      MemberDigest("CRE_0001.csv", "CRE", 100, Digest(1, "b" * 64))))
STAGED = (StagedFile("CRE", "staging/CRE/part-a.avro", 96),
          StagedFile("REJECT", "staging/REJECT/part-b.avro", 4))


def _facts(loaded: int, rejected: int, monitor_sum: str, declared: int = 100) -> list:
    meta = dataclasses.replace(META, members=(
        META.members[0], MemberDigest("CRE_0001.csv", "CRE", declared, Digest(1, "b" * 64))))
    return [meta,
            Monitor((MonitorLine("CRE_0001.csv", "CRE", declared, Decimal(monitor_sum)),)),
            MemberDigest("CRE_0001.csv", "CRE", loaded + rejected, Digest(1, "x")),
            BatchCounts("CRE_0001.csv", "CRE", loaded, rejected,
                        {"BAD_DATE": rejected} if rejected else {}, Decimal("10.00")),
            *STAGED]


def _collected(facts: list) -> VacationFacts:
    collected = VacationFacts()
    for fact in facts:
        collected.add(fact)
    return collected


def test_accepted_when_counts_and_amounts_agree():
    outcome = decide(_collected(_facts(100, 0, "10.00")), CONTEXT, "t1")
    assert outcome["status"] == "ACCEPTED" and outcome["errors"] == []
    assert outcome["totals"] == {"records": 100, "loaded": 100, "rejected": 0}


def test_amounts_are_only_reconciled_for_members_without_rejects():
    assert decide(_collected(_facts(100, 0, "10.01")), CONTEXT, "t1")["errors"][0]["code"] == \
        "RECON_AMOUNT_MISMATCH"
    outcome = decide(_collected(_facts(96, 4, "99.99")), CONTEXT, "t1")
    assert outcome["status"] == "ACCEPTED_WITH_REJECTS"
    assert outcome["reject_codes"] == {"BAD_DATE": 4}


def test_count_mismatch_and_reject_ratio_reject_the_vacation():
    codes = [error["code"]
             for error in decide(_collected(_facts(90, 0, "10.00")), CONTEXT, "t1")["errors"]]
    assert codes == ["RECON_COUNT_MISMATCH", "RECON_COUNT_MISMATCH"]
    outcome = decide(_collected(_facts(94, 6, "0")), CONTEXT, "t1")
    assert outcome["status"] == "REJECTED"
    assert [error["code"] for error in outcome["errors"]] == ["REJECT_RATIO_EXCEEDED"]


def test_a_fatal_error_rejects_without_reconciling():
    facts = _collected([META, FatalError("MONITOR_MISSING", "the archive has no MONITOR.csv")])
    outcome = decide(facts, CONTEXT, "t1")
    assert outcome["status"] == "REJECTED"
    assert outcome["errors"] == [{"code": "MONITOR_MISSING",
                                  "message": "the archive has no MONITOR.csv"}]


def test_accepted_publishes_all_it_staged_rejected_only_its_rejects():
    accepted = judge(_collected(_facts(96, 4, "0")), CONTEXT, "t1")
    assert accepted.files == STAGED and accepted.meta is not None and not accepted.discarded
    rejected = judge(_collected(_facts(90, 0, "10.00")), CONTEXT, "t1")
    assert rejected.summary["status"] == "REJECTED"
    assert rejected.files == STAGED[1:] and rejected.meta is None and rejected.monitor is None


def test_rows_the_structured_zone_refused_discard_the_run_undecided():
    facts = _collected([*_facts(100, 0, "10.00"), StructuredWrite("cre_events", 90),
                        StructuredWrite("cre_events", 0, 10, "WriteTimeout")])
    decision = judge(facts, CONTEXT, "t1")
    assert decision.summary is None and decision.files == ()
    assert decision.discarded == ("10 rows could not be written to the structured zone "
                                  "(first: cre_events: WriteTimeout)")


def test_facts_pickle_and_the_combiner_refuses_anything_else():
    for fact in _facts(96, 4, "0"):
        assert pickle.loads(pickle.dumps(fact)) == fact
    with pytest.raises(TypeError, match="not a vacation fact"):
        VacationFacts().add({"members": []})


def test_merged_accumulators_decide_as_one():
    combine = CollectFacts()
    parts = [combine.add_input(combine.create_accumulator(), fact)
             for fact in _facts(96, 4, "0")]
    merged = combine.extract_output(combine.merge_accumulators(parts))
    assert decide(merged, CONTEXT, "t1") == decide(_collected(_facts(96, 4, "0")), CONTEXT, "t1")


def test_decide_vacation_is_a_step_of_its_own():
    with test_pipeline.TestPipeline() as pipeline:
        decisions = (pipeline
                     | beam.Create(_facts(96, 4, "0"))
                     | DecideVacation(CONTEXT))
        assert_that(decisions | beam.Map(lambda decision: (decision.summary["status"],
                                                           len(decision.files))),
                    equal_to([("ACCEPTED_WITH_REJECTS", 2)]))


def test_decide_vacation_wants_a_run_context():
    with pytest.raises(TypeError, match="RunContext"):
        DecideVacation("BAF_20261122_03")


@pytest.mark.parametrize("case", ["RECON_COUNT_MISMATCH", "RECON_AMOUNT_MISMATCH",
                                  "REJECT_RATIO_EXCEEDED"])
def test_archives_that_do_not_reconcile_are_rejected(tmp_path, case):
    """MONITOR off by one record or one cent, or too many rejects, in a real archive."""
    ingested = ingest_steps(write_archive(tmp_path, MEMBER_CASES[case](valid_members(tmp_path))))
    assert ingested.summary["status"] == "REJECTED"
    assert ingested.error_codes == [case]
