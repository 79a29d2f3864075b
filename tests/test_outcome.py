"""Reconciliation and status, decided from the facts without Beam."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.vacations import MEMBER_CASES, ingest_steps, valid_members, write_archive
from transforms.outcome import RunContext, VacationFacts, decide
from transforms.vacation_reader import MemberFacts, MonitorLine
from transforms.validate import BatchCounts

CONTEXT = RunContext("BAF_20261122_03", "2026-11-22", 3, "0" * 64, "t0", 0.05)


def _facts(loaded: int, rejected: int, monitor_sum: str, declared: int = 100) -> VacationFacts:
    facts = VacationFacts()
    facts.add({"members": [{"name": "MONITOR.csv", "type": "MONITOR", "records": 1},
                           {"name": "CRE_0001.csv", "type": "CRE", "records": declared}]})
    facts.add([MonitorLine("CRE_0001.csv", "CRE", declared, Decimal(monitor_sum))])
    facts.add(MemberFacts("CRE_0001.csv", "CRE", loaded + rejected, 1, "x"))
    facts.add(BatchCounts("CRE_0001.csv", "CRE", loaded, rejected,
                          {"BAD_DATE": rejected} if rejected else {}, Decimal("10.00")))
    return facts


def test_accepted_when_counts_and_amounts_agree():
    outcome = decide(_facts(100, 0, "10.00"), CONTEXT, "t1")
    assert outcome["status"] == "ACCEPTED" and outcome["errors"] == []
    assert outcome["totals"] == {"records": 100, "loaded": 100, "rejected": 0}


def test_amounts_are_only_reconciled_for_members_without_rejects():
    assert decide(_facts(100, 0, "10.01"), CONTEXT, "t1")["errors"][0]["code"] == \
        "RECON_AMOUNT_MISMATCH"
    outcome = decide(_facts(96, 4, "99.99"), CONTEXT, "t1")
    assert outcome["status"] == "ACCEPTED_WITH_REJECTS"
    assert outcome["reject_codes"] == {"BAD_DATE": 4}


def test_count_mismatch_and_reject_ratio_reject_the_vacation():
    codes = [error["code"] for error in decide(_facts(90, 0, "10.00"), CONTEXT, "t1")["errors"]]
    assert codes == ["RECON_COUNT_MISMATCH", "RECON_COUNT_MISMATCH"]
    outcome = decide(_facts(94, 6, "0"), CONTEXT, "t1")
    assert outcome["status"] == "REJECTED"
    assert [error["code"] for error in outcome["errors"]] == ["REJECT_RATIO_EXCEEDED"]


@pytest.mark.parametrize("case", ["RECON_COUNT_MISMATCH", "RECON_AMOUNT_MISMATCH",
                                  "REJECT_RATIO_EXCEEDED"])
def test_archives_that_do_not_reconcile_are_rejected(tmp_path, case):
    """MONITOR off by one record or one cent, or too many rejects, in a real archive."""
    ingested = ingest_steps(write_archive(tmp_path, MEMBER_CASES[case](valid_members(tmp_path))))
    assert ingested.summary["status"] == "REJECTED"
    assert ingested.error_codes == [case]
