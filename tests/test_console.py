"""The console's pure parts: the schedule (the same as the alert rules'), lateness, charts,
operator accounts, CSRF tokens, the login's redirect guard and the templates' escaping."""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path

import pytest
import yaml

from pipelines import schedule
from pipelines.ledger import State, VacationRecord
from service.console import charts
from service.console.actions import ACTIONS
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


def _heights(svg: str, pattern: str) -> tuple[float, ...]:
    return tuple(float(number) for number in re.search(pattern, svg).groups())


def test_a_band_is_drawn_behind_the_lines_and_within_the_y_axis():
    days = [DAY + datetime.timedelta(days=index) for index in range(3)]
    svg = charts.line_chart("events <x>", days, {"m": [1, 2, 3]}, band=(5, 10))
    top, height = _heights(svg, r'<rect x="64" y="([\d.]+)" width="546" height="([\d.]+)" '
                                r'class="band"')
    assert top == 28 and height == 81  # 5 to 10 of a plot of 0 to 10, 162 pixels high
    assert svg.index('class="band"') < svg.index("<polyline")
    assert ">10</text>" in svg and "expected: 5 to 10" in svg
    below = charts.line_chart("m", days, {"m": [-4, 2, 3]}, band=(None, 1))
    top, height = _heights(below, r'y="([\d.]+)" width="546" height="([\d.]+)" class="band"')
    assert top + height == 190 and ">-4</text>" in below  # open below: to the plot's floor
    assert "expected: at most 1" in below
    above = charts.line_chart("m", days, {"m": [1, 2, 3]}, band=(5, None))
    top, height = _heights(above, r'y="([\d.]+)" width="546" height="([\d.]+)" class="band"')
    assert top == 28 and height > 10 and ">5.5</text>" in above  # open above: not a mere line
    assert 'class="band"' not in charts.line_chart("m", days, {"m": [1, 2, 3]},
                                                   band=(None, None))


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


def _vacation_page(may_act: bool = False, **seen) -> str:
    """The vacation page rendered without a server, over ``seen`` (what the view gathers)."""
    return _TEMPLATES.get_template("vacation.html").render(
        operator=None, csrf="", may_act=may_act, actions=ACTIONS, started=None, v={
            "vacation_id": "BAF_20261201_02", "state": "LOADED", "outcome": "ACCEPTED",
            "row": {"business_date": DAY, "slot": 2, "sha256": "ab"}, "tenant": "arkea",
            "received_at": None, "processed_at": None, "delivered_at": None, "errors": [],
            "members": [], "reconciliation": [], "reject_codes": {}, "samples": {},
            "history": [], "delivery": None, "manifest": [], "files": [], "quality": None,
            "delivery_held": None, **seen})


def test_the_pages_escape_what_a_sender_wrote():
    raw = '<script>alert("x")</script>;ZZZ'
    html = _vacation_page(reject_codes={"BAD_CURRENCY": 1}, samples={"BAD_CURRENCY": [
        {"member_name": "CRE_0001.csv", "line_number": 4, "error_message": "ZZZ <unknown>",
         "raw": raw}]})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "ZZZ &lt;unknown&gt;" in html


def test_the_vacation_page_shows_its_findings_escaped():
    finding = {"metric": "events.<b>.EUR.count", "value": 12.0,
               "expected": {"low": 40.5, "high": None}, "severity": "critical",
               "check": "history", "message": 'events <script>alert("x")</script> low'}
    html = _vacation_page(quality={
        "badge": {"severity": "critical", "label": "critical 1", "title": "<i>why</i>"},
        "note": "", "history": 20, "findings": [finding],
        "charts": ["<svg class=\"chart\"></svg>"]})
    assert 'id="quality-findings"' in html and "&ge; 40.5" in html
    assert "judged against 20 earlier vacations of slot 2" in html
    assert "<script>" not in html and "events &lt;script&gt;" in html
    assert "events.&lt;b&gt;.EUR.count" in html and 'title="&lt;i&gt;why&lt;/i&gt;"' in html
    assert '<svg class="chart">' in html  # the chart is the server's own markup
    assert "No data-quality record" in _vacation_page()


def test_the_release_shows_only_for_a_held_delivery():
    shown = _vacation_page(may_act=True)
    assert 'id="action-rollback"' in shown and 'id="action-release"' not in shown
    assert 'id="delivery-held"' not in shown
    held = _vacation_page(may_act=True, delivery_held="critical finding <on> events.x")
    assert 'id="action-release"' in held and 'id="action-rollback"' in held
    assert re.search(r'id="delivery-held">[^<]*critical finding &lt;on&gt; events.x', held)
