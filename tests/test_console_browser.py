"""The operations console in a real browser: Debian's Chromium, headless, through its
chromedriver (``make setup`` installs both), against a real ``cre serve`` over vacations really
ingested. Each page's screenshot is saved under ``var/console-screenshots/``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from helpers import ROOT, Service, add_tenant, run_cre, wait_until
from helpers.browser import chromium, log_in
from selenium import webdriver
from selenium.webdriver.common.by import By
from vacations import break_currencies, data_records, write_archive

from pipelines.ledger import Ledger
from pipelines.local.generator import generate_vacation, read_members
from pipelines.quality import QualityStore

pytestmark = pytest.mark.integration

DATE, MISSING_SLOT = "2026-11-20", 5
FIRST, WITH_REJECTS, CORRECTION, REJECTED = (f"BAF_20261120_0{slot}" for slot in (1, 2, 3, 4))
LAST = "BAF_20261120_06"
PASSWORDS = {"olivia": "operator password 1", "victor": "viewer password 22"}
SCREENSHOTS = ROOT / "var" / "console-screenshots"


@pytest.fixture(scope="module")
def console(structured, tmp_path_factory) -> Iterator[dict]:
    """``cre serve`` with its console, over five of the date's six slots (slot 5 missing):
    one with rejects, one correcting an event of slot 1, one REJECTED for its reject ratio;
    and a tenant's upload of another date."""
    folder = tmp_path_factory.mktemp("console")
    operators = folder / "operators.json"  # where Service points cre serve
    for name, role in (("olivia", "operator"), ("victor", "viewer")):
        added = run_cre("operators", "add", name, "--role", role, "--operators", str(operators),
                        "--password-stdin", input=PASSWORDS[name] + "\n")
        assert added.code == 0, added.stderr
    first = generate_vacation(folder / "1", DATE, 1, 400, 10, seed=91)
    event = next(row for member, raw in read_members(first).items()
                 if member.startswith("CRE_") for row in data_records(raw))
    archives = [
        first,
        write_archive(folder, break_currencies(read_members(
            generate_vacation(folder / "2", DATE, 2, 600, 10, seed=92)), every=97)[0],
            WITH_REJECTS),
        generate_vacation(folder / "3", DATE, 3, 50, 5, seed=93,
                          corrections=[[*event[:5], "4242.42", *event[6:]]]),
        write_archive(folder, break_currencies(read_members(
            generate_vacation(folder / "4", DATE, 4, 200, 5, seed=94)), every=5)[0], REJECTED),
        generate_vacation(folder / "6", DATE, 6, 100, 5, seed=96)]
    for archive in archives:
        ingested = run_cre("ingest", "--input", str(archive), "--zones-root",
                           str(folder / "zones"), env=structured)
        assert ingested.code in (0, 3), ingested.stderr[-3000:]
    add_tenant(folder / "tenants.json", "arkea")
    service = Service(folder, structured)
    try:
        upload = generate_vacation(folder / "upload", "2026-11-21", 2, 30, 2, seed=97)
        with service.client("arkea") as client:  # the trends count the tenant's uploads
            sent = client.put(f"/v1/uploads/{upload.name}", content=upload.read_bytes())
            assert sent.status_code == 201, sent.text
        yield {"url": service.url, "env": structured, "account": event[1],
               "value_date": event[4], "first_amount": event[5]}
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield from chromium()


def _log_in(browser: webdriver.Chrome, console: dict, name: str, path: str) -> None:
    log_in(browser, console["url"], path, name, PASSWORDS[name])


def _shot(browser: webdriver.Chrome, name: str) -> None:
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_the_day_shows_its_six_slots_and_the_missing_one(browser, console):
    browser.get(console["url"] + "/console/")
    _shot(browser, "login")
    _log_in(browser, console, "olivia", f"/console/days/{DATE}")
    slots = {row.get_attribute("data-slot"): row.get_attribute("data-state")
             for row in browser.find_elements(By.CSS_SELECTOR, "tr.slot")}
    assert slots == {"1": "DELIVERED", "2": "DELIVERED", "3": "DELIVERED", "4": "REJECTED",
                     "5": "MISSING", "6": "DELIVERED"}
    missing = browser.find_element(By.CSS_SELECTOR, f'tr.slot[data-slot="{MISSING_SLOT}"]')
    assert "missing: due at 21:00 UTC" in missing.text
    _shot(browser, "day")


def test_a_finding_shows_on_the_day_and_on_its_vacation(browser, console, zone_session):
    """A critical finding written over slot 6's record: its badge on the day (next to the
    others' "ok", judged against too short a history), its table and chart on the vacation."""
    finding = {"metric": "records.CRE", "value": 100.0, "expected": {"low": 300.0, "high": None},
               "severity": "critical", "check": "history",
               "message": "records.CRE is 100, usually 400 (-9.9 robust sd, 20 earlier vacations)"}
    QualityStore(zone_session).record({
        **Ledger(zone_session).get(LAST).summary.document, "quality": {
            "findings": [finding], "history": 20, "note": "", "metrics": {"records.CRE": 100.0}}})
    _log_in(browser, console, "olivia", f"/console/days/{DATE}")
    badges = {row.get_attribute("data-slot"): row.find_elements(By.CSS_SELECTOR, ".dq")
              for row in browser.find_elements(By.CSS_SELECTOR, "tr.slot")}
    assert [badge.text for badge in badges["6"]] == ["critical 1"]
    assert "usually 400" in badges["6"][0].get_attribute("title")
    assert [badge.text for badge in badges["1"]] == ["ok"] and not badges["5"]
    assert "history too short" in badges["1"][0].get_attribute("title")

    browser.find_element(By.LINK_TEXT, LAST).click()
    findings = browser.find_element(By.ID, "quality-findings")
    assert "records.CRE 100 ≥ 300 critical history" in findings.text
    chart = browser.find_element(By.CSS_SELECTOR, 'svg.chart[aria-label="records.CRE"]')
    assert chart.find_elements(By.CSS_SELECTOR, "rect.band")
    assert chart.find_elements(By.CSS_SELECTOR, 'circle[data-series="records.CRE"]')
    assert not browser.find_elements(By.ID, "delivery-held")
    assert not browser.find_elements(By.ID, "action-release")
    _shot(browser, "quality")


_CLIPPED = """return [...document.querySelectorAll('#slots th, #slots td')].filter(cell => {
    const text = document.createRange(), style = getComputedStyle(cell);
    text.selectNodeContents(cell);
    return text.getBoundingClientRect().width > cell.clientWidth
        - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
}).map(cell => cell.textContent.trim())"""


def test_the_day_fits_a_1280_pixel_window_a_slot_a_line(browser, console):
    """No horizontal scroll bar in a window 1280 pixels wide, each slot one line high, and
    nothing of this day cut short (a longer text would end in "…", its tooltip whole)."""
    browser.set_window_size(1280, 1400)
    _log_in(browser, console, "olivia", f"/console/days/{DATE}")
    assert browser.execute_script("return window.innerWidth") <= 1280
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    line = browser.execute_script("return parseFloat(getComputedStyle("
                                  "document.querySelector('tr.slot td')).lineHeight)")
    heights = [row.rect["height"] for row in browser.find_elements(By.CSS_SELECTOR, "tr.slot")]
    assert len(heights) == 6 and max(heights) < 1.6 * line, (heights, line)
    assert browser.execute_script(_CLIPPED) == []
    received = browser.find_element(By.CSS_SELECTOR, 'tr.slot[data-slot="1"] td.when')
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", received.get_attribute("title"))
    _shot(browser, "day")


def test_a_vacation_with_rejects_lists_its_codes_and_sample_lines(browser, console):
    _log_in(browser, console, "olivia", f"/console/vacations/{WITH_REJECTS}")
    assert "BAD_CURRENCY" in browser.find_element(By.ID, "reject-codes").text
    sample = browser.find_element(By.CSS_SELECTOR, 'tr.sample[data-code="BAD_CURRENCY"]')
    line, raw = (sample.find_elements(By.TAG_NAME, "td")[index].text for index in (2, 4))
    assert int(line) > 1 and ";ZZZ;" in raw
    assert "matches" in browser.find_element(By.ID, "reconciliation").text
    assert {"ACK.json", "REJECTS.csv", "POSITIONS.csv"} <= set(
        browser.find_element(By.ID, "manifest").text.split())
    _shot(browser, "vacation")
    browser.get(f"{console['url']}/console/vacations/{REJECTED}")
    assert browser.find_element(By.ID, "state").text == "REJECTED"
    assert "BAD_CURRENCY" in browser.find_element(By.ID, "reject-codes").text


def test_the_trends_draw_their_charts(browser, console):
    _log_in(browser, console, "victor", "/console/trends")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert [chart.get_attribute("aria-label") for chart in charts] == [
        "Records per vacation", "Reject ratio", "Ingest duration", "Uploads per tenant"]
    assert charts[0].find_elements(By.CSS_SELECTOR, "circle, polyline")  # this date's dots
    assert charts[3].find_elements(By.CSS_SELECTOR, 'polyline[data-series="arkea"]')
    assert browser.find_element(By.ID, "uploads").text.splitlines()[1:] == ["arkea 1"]
    _shot(browser, "trends")


def _events(console: dict) -> list[dict]:
    run = run_cre("query", "events", "--account", console["account"], "--from",
                  console["value_date"], "--to", console["value_date"], "--json",
                  env=console["env"])
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)


def _act(browser: webdriver.Chrome, action: str, shot: str = "") -> None:
    """Presses an action's button on the vacation page shown, then confirms it."""
    browser.find_element(By.ID, f"action-{action}").click()
    if shot:
        _shot(browser, shot)
    browser.find_element(By.ID, "confirm").click()
    assert browser.find_element(By.ID, "started").is_displayed()


def _audited(browser: webdriver.Chrome, console: dict, action: str) -> None:
    """Until the audit trail page shows the action ended well."""
    browser.get(console["url"] + "/console/audit")
    wait_until(lambda: browser.refresh() or browser.find_elements(
        By.CSS_SELECTOR, f'tr.event[data-action="{action}"][data-outcome="ok"]'),
        timeout=120, interval=1, what=f"the audit trail's {action} ok",
        detail=lambda: browser.find_element(By.ID, "audit").text)


def _served(console: dict) -> set[str]:
    return {event["vacation_id"] for event in _events(console)}


def test_a_rollback_then_a_replay_from_the_console(browser, console):
    """The rollback serves the earlier version of the corrected event; the replay brings the
    correction back."""
    assert CORRECTION in _served(console)
    _log_in(browser, console, "olivia", f"/console/vacations/{CORRECTION}")
    _act(browser, "rollback", shot="confirm")
    wait_until(lambda: CORRECTION not in _served(console), timeout=120, interval=1,
               what=f"{CORRECTION} no longer served")
    assert Decimal(console["first_amount"]) in {Decimal(str(event["amount"]))
                                                for event in _events(console)}
    _audited(browser, console, "rollback")
    assert "operator:olivia" in browser.find_element(By.ID, "audit").text
    _shot(browser, "audit")

    browser.get(f"{console['url']}/console/vacations/{CORRECTION}")
    assert browser.find_element(By.ID, "state").text == "ROLLED_BACK"
    _act(browser, "replay")
    wait_until(lambda: CORRECTION in _served(console), timeout=180, interval=1,
               what=f"{CORRECTION} served again")
    _audited(browser, console, "replay")


def _deliveries(browser: webdriver.Chrome) -> int:
    return sum("delivered /" in row.text for row in
               browser.find_elements(By.CSS_SELECTOR, "#history tr"))


def test_a_redelivery_and_a_recovery_from_the_console(browser, console):
    _log_in(browser, console, "olivia", f"/console/vacations/{FIRST}")
    assert _deliveries(browser) == 1
    _act(browser, "redeliver")
    _audited(browser, console, "redeliver")
    browser.get(f"{console['url']}/console/vacations/{FIRST}")
    assert _deliveries(browser) == 2  # the ledger's history has the second delivery
    _act(browser, "recover")  # nothing is left unfinished: it ends well, doing nothing
    _audited(browser, console, "recover")
    assert _state(console, FIRST) == "DELIVERED"


def _session(console: dict, name: str) -> tuple[httpx.Client, str]:
    """An HTTP client logged in as ``name``, and the CSRF token its pages carry."""
    client = httpx.Client(base_url=console["url"], timeout=30)
    logged = client.post("/console/login", data={"name": name, "password": PASSWORDS[name]})
    assert logged.status_code == 303, logged.text
    page = client.get(f"/console/days/{DATE}")
    return client, re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)[1]


def test_a_delivery_held_by_a_finding_is_released_from_the_console(browser, console,
                                                                   tmp_path):
    """A vacation ingested with --quality-hold warning and a rule it breaks: LOADED, its
    delivery held; Release (audited) lets the service's ingest manager deliver it."""
    settings = tmp_path / "settings.toml"
    settings.write_text('[[rule]]\nname = "at most 10 events"\nmetric = "records.CRE"\n'
                        'max = 10\nseverity = "warning"\n')
    archive = generate_vacation(tmp_path, "2026-11-23", 1, 40, 2, seed=98)
    held = "BAF_20261123_01"
    ingested = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "zones"),
                       "--quality-settings", str(settings), "--quality-hold", "warning",
                       env=console["env"])
    assert ingested.code == 0, ingested.stderr[-3000:]
    assert _state(console, held) == "LOADED"
    _log_in(browser, console, "olivia", f"/console/vacations/{held}")
    assert "warning data-quality finding on records.CRE" in browser.find_element(
        By.ID, "delivery-held").text
    _act(browser, "release")
    _audited(browser, console, "release")
    wait_until(lambda: _state(console, held), lambda state: state == "DELIVERED", timeout=120,
               interval=1, what=f"{held} delivered by the ingest manager")
    browser.get(f"{console['url']}/console/vacations/{held}")
    assert "delivery released by olivia" in browser.find_element(By.ID, "history").text
    assert not browser.find_elements(By.ID, "action-release")


def test_a_viewer_sees_no_action_and_is_refused_one(browser, console):
    _log_in(browser, console, "victor", f"/console/vacations/{FIRST}")
    assert not browser.find_elements(By.ID, "actions")
    browser.get(f"{console['url']}/console/actions/rollback/{FIRST}")
    assert "does not take actions" in browser.find_element(By.ID, "message").text
    client, csrf = _session(console, "victor")
    refused = client.post(f"/console/actions/rollback/{FIRST}", data={"csrf": csrf})
    assert refused.status_code == 403 and "viewer" in refused.text
    assert _state(console, FIRST) == "DELIVERED"


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(console):
    client, csrf = _session(console, "olivia")
    for data, headers in (({}, {}), ({"csrf": "0" * 64}, {}),
                          ({"csrf": csrf}, {"Origin": "https://evil.example"})):
        refused = client.post(f"/console/actions/rollback/{FIRST}", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers, refused.text)
    assert _state(console, FIRST) == "DELIVERED"
    page = client.get(f"/console/vacations/{FIRST}")
    cookie = page.request.headers["cookie"]
    assert cookie.startswith("cre_console=") and "csrf" not in cookie
    logged_out = client.post("/console/logout", data={"csrf": csrf})
    assert logged_out.status_code == 303
    assert client.get(f"/console/days/{DATE}").headers["location"].startswith("/console/login")


def _state(console: dict, vacation_id: str) -> str:
    run = run_cre("status", vacation_id, "--json", env=console["env"])
    return json.loads(run.stdout)["state"]


def test_the_session_cookie_is_httponly_and_strict(console):
    logged = httpx.post(console["url"] + "/console/login",
                        data={"name": "olivia", "password": PASSWORDS["olivia"]})
    cookie = logged.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # plain http here: a Secure cookie would never come back
    as_tenant = httpx.get(console["url"] + "/v1/constraints", headers={
        "Authorization": f"Bearer {logged.cookies['cre_console']}"})
    assert as_tenant.status_code == 401  # a console session is no tenant's token


def test_wrong_passwords_are_refused_and_audited(console, forget_failed_logins):
    refused = httpx.post(console["url"] + "/console/login",
                         data={"name": "olivia", "password": "not her password"})
    assert refused.status_code == 401 and "Wrong name or password" in refused.text
    audit = run_cre("audit", "--tenant", "operator:olivia", "--json", env=console["env"])
    assert audit.code == 0, audit.stderr
    assert any(event["action"] == "console login" and event["outcome"] == "refused"
               for event in json.loads(audit.stdout))
