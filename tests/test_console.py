"""The console's pure parts: the schedule (the same as the alert rules'), lateness, charts,
operator accounts, CSRF tokens, the login's redirect guard and the templates' escaping."""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path

import pytest
import yaml

from pipelines.ledger import State, VacationRecord
from service.console import charts, schedule
from service.console.operators import OperatorStore
from service.console.routes import _TEMPLATES, _local, csrf_token

RULES = Path(__file__).resolve().parents[1] / "monitoring" / "prometheus" / "rules.yml"
UTC = datetime.UTC
DAY = datetime.date(2026, 12, 1)


def test_the_slot_deadlines_are_the_alert_rules():
    group = next(group for group in yaml.safe_load(RULES.read_text())["groups"]
                 if group["name"] == "cre_schedule")
    in_rules = {int(rule["labels"]["slot"]): _seconds(rule["expr"]) for rule in group["rules"]
                if rule["record"] == "cre:slot_deadline_seconds"}
    assert in_rules == schedule.SLOT_DEADLINES


def _seconds(expr: str) -> int:
    """``vector(23 * 3600 + 30 * 60)``: a sum of products of integers."""
    terms = re.fullmatch(r"vector\(([\d\s*+]+)\)", expr)[1].split("+")
    return sum(math.prod(int(factor) for factor in term.split("*")) for term in terms)


def _at(hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 12, 1, hour, minute, tzinfo=UTC)


def _row(state: State, received_at: datetime.datetime, **fields) -> VacationRecord:
    return VacationRecord("BAF_20261201_01", state, received_at=received_at, **fields)


@pytest.mark.parametrize(("row", "now", "expected"), [
    (None, _at(4, 59), None),
    (None, _at(5, 1), "missing: due at 05:00 UTC"),
    (_row(State.DELIVERED, _at(4)), _at(23), None),
    (_row(State.DELIVERED, _at(6, 15)), _at(23), "received 1 h 15 min after 05:00 UTC"),
    (_row(State.LOADED, _at(4), state_changed_at={State.LOADED: _at(4, 10)}), _at(4, 39), None),
    (_row(State.LOADED, _at(4), state_changed_at={State.LOADED: _at(4, 10)}), _at(4, 55),
     "not delivered 45 min after it loaded"),
    (_row(State.DELIVERED, _at(5) + datetime.timedelta(days=3, hours=2)),
     _at(23) + datetime.timedelta(days=4), "received 3 d 2 h after 05:00 UTC"),
])
def test_lateness_says_what_the_alerts_would(row, now, expected):
    assert schedule.lateness(row, DAY, 1, now) == expected


def test_a_chart_draws_one_line_per_stretch_and_escapes_its_labels():
    days = [DAY + datetime.timedelta(days=index) for index in range(6)]
    svg = charts.line_chart("Records <per> vacation", days, {
        "slot 1": [1, 2, None, 4, 5, 6], "<b>": [None, None, 3, None, None, None]})
    assert svg.count("<polyline") == 2  # slot 1 breaks at its gap
    assert svg.count("<circle") == 1  # a lone value is a dot
    assert "Records &lt;per&gt; vacation" in svg and "&lt;b&gt;" in svg and "<b>" not in svg
    assert svg.count('data-series="slot 1"') == 2


def test_an_empty_chart_still_draws():
    svg = charts.line_chart("Nothing", [DAY], {"slot 1": [None]})
    assert svg.startswith("<svg") and "<polyline" not in svg


def test_operators_have_a_role_and_an_argon2_password(tmp_path):
    store = OperatorStore(tmp_path / "operators.json")
    store.add("alice", "a long password here", "operator")
    store.add("victor", "another long password")
    assert store.authenticate("alice", "a long password here").may_act
    assert not store.authenticate("victor", "another long password").may_act
    assert store.authenticate("alice", "wrong password here") is None
    assert store.authenticate("nobody", "a long password here") is None
    assert "a long password" not in (tmp_path / "operators.json").read_text()
    store.set_role("victor", "operator")
    assert store.load()["victor"].may_act
    assert store.load()["alice"].principal == "operator:alice"
    for bad, message in ((lambda: store.add("eve", "a long password here", "admin"), "role"),
                         (lambda: store.add("Eve!", "a long password here"), "name"),
                         (lambda: store.add("eve", "short"), "12 characters"),
                         (lambda: store.add("alice", "a long password here"), "exists"),
                         (lambda: store.set_role("nobody", "viewer"), "no operator")):
        with pytest.raises(ValueError, match=message):
            bad()


def test_the_csrf_token_is_the_sessions_own():
    assert csrf_token("session-a") == csrf_token("session-a")
    assert csrf_token("session-a") != csrf_token("session-b")
    assert "session-a" not in csrf_token("session-a")


@pytest.mark.parametrize(("target", "expected"), [
    ("/console/days/2026-12-01", "/console/days/2026-12-01"), (None, "/console/"),
    ("https://evil.example/console/", "/console/"), ("//evil.example/console/", "/console/"),
    ("/console//evil.example", "/console/"), ("/metrics", "/console/")])
def test_a_login_only_sends_the_browser_back_into_the_console(target, expected):
    assert _local(target) == expected


def test_the_pages_escape_what_a_sender_wrote():
    raw = '<script>alert("x")</script>;ZZZ'
    html = _TEMPLATES.get_template("vacation.html").render(
        operator=None, csrf="", may_act=False, actions={}, started=None, v={
            "vacation_id": "BAF_20261201_02", "state": "LOADED", "outcome": "ACCEPTED",
            "row": {"business_date": DAY, "slot": 2, "sha256": "ab"}, "tenant": "arkea",
            "received_at": None, "processed_at": None, "delivered_at": None, "errors": [],
            "members": [], "reconciliation": [], "reject_codes": {"BAD_CURRENCY": 1},
            "samples": {"BAD_CURRENCY": [{"member_name": "CRE_0001.csv", "line_number": 4,
                                          "error_message": "ZZZ <unknown>", "raw": raw}]},
            "history": [], "delivery": None, "manifest": [], "files": []})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "ZZZ &lt;unknown&gt;" in html
