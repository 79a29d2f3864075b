"""The console's lineage page (issue 35): ``cre lineage`` on a page, reached from a vacation's
page and from the search box every page has. Its parsing and escaping without a server; then a
real ``cre serve`` over three delivered vacations, through HTTP and Debian's Chromium, the page
compared with what ``cre lineage --json`` answers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from helpers import Service, run_cre
from helpers.browser import chromium, log_in
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from vacations import data_records

from pipelines.local.generator import generate_vacation, read_members
from service.console.operators import Operator
from service.console.routes import _TEMPLATES, lineage_search
from service.console.views import LINEAGE_POSITIONS

DATE = "2026-10-14"
V1, V2, V3 = (f"BAF_20261014_0{slot}" for slot in (1, 2, 3))
P1, P2, P3 = (f"MMG_ABS_20261014_0{slot}.tar.bz2" for slot in (1, 2, 3))
PASSWORD = "viewer password 35"


@pytest.mark.parametrize(("text", "asked"), [
    (f" {P1} ", {"package": P1}),
    ("ACC-0042 2026-10-14", {"account": "ACC-0042", "date": "2026-10-14"}),
    ("ACC-0042  2026-13-45", {"account": "ACC-0042", "date": "2026-13-45"}),  # refused later
    ("CRE-20261014-000007", {"cre_id": "CRE-20261014-000007"}),
    ("two words", {"cre_id": "two words"}),
    ("MMG_ABS_20261014_01.tar.gz", {"cre_id": "MMG_ABS_20261014_01.tar.gz"}),
])
def test_the_search_box_reads_a_package_an_account_and_date_or_a_cre_id(text, asked):
    assert lineage_search(text) == asked


def test_the_lineage_page_escapes_what_a_sender_wrote_and_has_the_search_box():
    evil = '<script>alert("x")</script>'
    event = {"cre_id": f"C{evil}&", "vacation_id": V1, "account_id": f"A{evil}",
             "value_date": DATE, "currency": "EUR", "member_name": f"CRE_{evil}.csv",
             "line_number": 12, "state": "DELIVERED", "sha256": "ab" * 32,
             "landed_path": f"/landing/{evil}", "packages": [P1], "rolled_back": False}
    html = _TEMPLATES.get_template("lineage.html").render(
        operator=Operator("victor", "hash", "viewer"), csrf="", may_act=False, q=evil,
        account=event["account_id"], date=DATE, package="", total=1, positions=[{
            "package": P1, "vacation_id": V1, "delivered_at": None,
            "account_id": event["account_id"], "value_date": DATE, "currency": "EUR",
            "figures": None, "events": [event]}])
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 5
    assert '<label for="lineage-search">Lineage</label>' in html
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in html
    assert 'href="/console/lineage?cre_id=C%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%26"' \
        in html
    assert "the delivered package cannot be read back" in html


@pytest.fixture(scope="module")
def console(structured, tmp_path_factory) -> Iterator[dict]:
    """``cre serve --no-manager`` over three delivered vacations of a date: slot 2 corrects an
    event of slot 1, slot 3 adds another of its account and day (so its package counts slot 2's
    version); a viewer, the least role, to read them."""
    folder = tmp_path_factory.mktemp("lineage")
    added = run_cre("operators", "add", "victor", "--role", "viewer", "--operators",
                    str(folder / "operators.json"), "--password-stdin", input=PASSWORD + "\n")
    assert added.code == 0, added.stderr
    first = generate_vacation(folder / "1", DATE, 1, 300, 5, seed=351)
    event = [row for member, raw in read_members(first).items() if member.startswith("CRE_")
             for row in data_records(raw)][9]
    account = event[1]
    archives = [first,
                generate_vacation(folder / "2", DATE, 2, 10, 0, seed=352,
                                  corrections=[[*event[:5], "35.35", *event[6:]]]),
                generate_vacation(folder / "3", DATE, 3, 10, 0, seed=353, corrections=[
                    ["LINEAGE-PAGE-1", account, "FEE", event[3], event[4], "3.50", event[6],
                     "", ""]])]
    for archive in archives:
        ingested = run_cre("ingest", "--input", str(archive), "--zones-root",
                           str(folder / "zones"), env=structured)
        assert ingested.code == 0, ingested.stderr[-3000:]
    service = Service(folder, structured, "--no-manager")
    try:
        yield {"url": service.url, "env": structured, "cre_id": event[0], "account": account}
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    yield from chromium()


def _log_in(browser: webdriver.Chrome, console: dict, path: str) -> None:
    log_in(browser, console["url"], path, "victor", PASSWORD)


@contextlib.contextmanager
def _client(console: dict) -> Iterator[httpx.Client]:
    """An HTTP client logged in as the viewer."""
    with httpx.Client(base_url=console["url"], timeout=60) as client:
        logged = client.post("/console/login", data={"name": "victor", "password": PASSWORD})
        assert logged.status_code == 303, logged.text
        yield client


def _cli(console: dict, *args: str) -> dict:
    run = run_cre("lineage", *args, "--json", env=console["env"])
    assert run.code == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _search(browser: webdriver.Chrome, text: str) -> None:
    """Types ``text`` into the header's search box, found by its label, submits it and waits
    for the answer's page."""
    label = browser.find_element(By.CSS_SELECTOR, 'header form[role="search"] label')
    box = browser.find_element(By.ID, label.get_attribute("for"))
    box.clear()
    box.send_keys(text)
    _follow(browser, browser.find_element(By.ID, "lineage-find"))


def _follow(browser: webdriver.Chrome, element) -> None:
    """Clicks a link or a button, then waits for the page it leads to."""
    left = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(left))


def _cells(row) -> list[str]:
    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


_TABLES = """const cells = row => [...row.cells].map(cell => cell.innerText.trim());
return {versions: [...document.querySelectorAll('#versions tr.version')].map(cells),
        positions: [...document.querySelectorAll('section.position')].map(section => ({
            package: section.dataset.package, value_date: section.dataset.valueDate,
            currency: section.dataset.currency,
            figures: cells(section.querySelectorAll('table.figures tr')[1]),
            events: [...section.querySelectorAll('table.events tr.version')].map(cells)}))}"""


def _versions(browser: webdriver.Chrome) -> list[tuple]:
    """The event page's versions: vacation, state, member, line, packages, rolled back."""
    return [(cells[0], cells[1], cells[2], int(cells[3]) if cells[3] else None,
             cells[6].split(), cells[7] == "rolled back")
            for cells in browser.execute_script(_TABLES)["versions"]]


def _positions(browser: webdriver.Chrome) -> list[dict]:
    """Each position section (read in one script: a package has hundreds): its key, its
    figures and its events' cre_id, vacation, member and line."""
    return [{"package": shown["package"], "value_date": shown["value_date"],
             "currency": shown["currency"], "delivered for": shown["figures"][1],
             "figures": dict(zip(("event_count", "debit_total", "credit_total", "net_amount"),
                                 shown["figures"][3:], strict=True)),
             "events": [(cells[0], cells[1], cells[3], int(cells[4]))
                        for cells in shown["events"]]}
            for shown in browser.execute_script(_TABLES)["positions"]]


def _expected_positions(answer: dict) -> list[dict]:
    return [{"package": position["package"], "value_date": position["value_date"],
             "currency": position["currency"], "delivered for": position["vacation_id"],
             "figures": position["figures"],
             "events": [(event["cre_id"], event["vacation_id"], event["member_name"],
                         event["line_number"]) for event in position["events"]]}
            for position in answer["positions"]]


@pytest.mark.integration
def test_the_vacation_page_links_to_its_packages_lineage(browser, console):
    _log_in(browser, console, f"/console/vacations/{V1}")
    link = browser.find_element(By.ID, "package-lineage")
    assert link.text == "Lineage of its package"
    _follow(browser, link)
    assert browser.current_url.endswith(f"/console/lineage?package={P1}")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Lineage of package {P1}"
    expected = _expected_positions(_cli(console, "--package", P1))
    assert len(expected) > LINEAGE_POSITIONS  # the page shows the first ones, and says so
    assert _positions(browser) == expected[:LINEAGE_POSITIONS]
    assert browser.find_element(By.CSS_SELECTOR, "main > p").text.startswith(
        f"{len(expected)} positions, the first {LINEAGE_POSITIONS} shown")
    # a version's vacation leads back to its page
    _follow(browser, browser.find_element(By.CSS_SELECTOR,
                                          "table.events tr.version td:nth-child(2) a"))
    assert browser.current_url.endswith(f"/console/vacations/{V1}")


@pytest.mark.integration
def test_the_search_box_finds_an_event_with_the_lines_the_cli_gives(browser, console):
    _log_in(browser, console, f"/console/days/{DATE}")
    _search(browser, console["cre_id"])
    assert browser.find_element(By.TAG_NAME, "h1").text == \
        f"Lineage of event {console['cre_id']}"
    cli = _cli(console, "--cre-id", console["cre_id"])["versions"]
    assert _versions(browser) == [
        (v["vacation_id"], v["state"], v["member_name"], v["line_number"], v["packages"],
         v["rolled_back"]) for v in cli]
    assert [(v["vacation_id"], v["packages"]) for v in cli] == [(V2, [P2, P3]), (V1, [P1])]
    assert all(v["member_name"].startswith("CRE_") and v["line_number"] > 1 for v in cli)
    archive = browser.find_element(By.CSS_SELECTOR,
                                   f'#versions tr[data-vacation="{V1}"] td.archive').text
    assert archive.split() == [cli[1]["sha256"], cli[1]["landed_path"]]
    assert browser.find_element(By.ID, "lineage-search").get_attribute("value") == \
        console["cre_id"]
    assert browser.execute_script(  # the table fits the 1280-pixel window: nothing hidden
        "return document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.integration
def test_the_search_box_finds_an_accounts_positions_as_the_cli_does(browser, console):
    _log_in(browser, console, "/console/trends")
    _search(browser, f"{console['account']} {DATE}")
    assert browser.find_element(By.TAG_NAME, "h1").text == \
        f"Positions of account {console['account']} in the packages of {DATE}"
    shown = _positions(browser)
    assert shown == _expected_positions(_cli(console, "--account", console["account"],
                                             "--date", DATE))
    assert {position["package"] for position in shown} == {P1, P2, P3}
    counted = {(cre_id, vacation) for position in shown for cre_id, vacation, *_ in
               position["events"]}
    assert {(console["cre_id"], V1), (console["cre_id"], V2), ("LINEAGE-PAGE-1", V3)} <= counted
    # an event of the table leads to its own lineage
    _follow(browser, browser.find_element(By.LINK_TEXT, "LINEAGE-PAGE-1"))
    assert [version[:1] for version in _versions(browser)] == [(V3,)]


@pytest.mark.integration
def test_bad_input_and_nothing_found_get_clear_answers(console):
    with _client(console) as client:
        for params, status, message in (
                ({"account": console["account"], "date": "2026-13-45"}, 400,
                 "&#39;2026-13-45&#39; is not a date YYYY-MM-DD"),
                ({"q": f"{console['account']} 2026-02-30"}, 400,
                 "&#39;2026-02-30&#39; is not a date YYYY-MM-DD"),
                ({"account": console["account"]}, 400,
                 "Give a cre_id, an account with a business date, or a package."),
                ({"cre_id": "x", "package": P1}, 400,
                 "Give a cre_id, an account with a business date, or a package."),
                ({"q": "x", "cre_id": "x"}, 400, "Give the search text q alone."),
                ({"package": "MMG_ABS_2026.tar.bz2"}, 400, "is not a package name"),
                ({"package": "MMG_ABS_20261014_05.tar.bz2"}, 404,
                 "MMG_ABS_20261014_05.tar.bz2 is not a delivered package."),
                ({"q": "NO-SUCH-EVENT"}, 404, "No version of event NO-SUCH-EVENT"),
                ({"q": f"{console['account']} 2026-10-15"}, 404,
                 f"No position of account {console['account']} in the packages"),
                ({"q": '<script>alert("x")</script>'}, 404,
                 "No version of event &lt;script&gt;"),
                ({}, 200, "Where a number sent to Arkea came from")):
            answer = client.get("/console/lineage", params=params)
            assert answer.status_code == status, (params, answer.text)
            assert message in answer.text, (params, answer.text)
            assert answer.headers["content-type"].startswith("text/html")
            assert "<script>" not in answer.text and "Traceback" not in answer.text
            assert 'id="lineage-search"' in answer.text  # the operator can search again
    anonymous = httpx.get(console["url"] + "/console/lineage", params={"q": "x"})
    assert anonymous.status_code == 303
    # the login then comes back to the same question
    assert anonymous.headers["location"] == "/console/login?next=/console/lineage%3Fq%3Dx"


@pytest.mark.integration
def test_a_rolled_back_version_a_later_package_counted_is_flagged(browser, console):
    """After slot 2's rollback its package no longer counts; slot 3's, delivered before it,
    still does, and the page says that version was rolled back."""
    assert run_cre("rollback", V2, env=console["env"]).code == 0
    _log_in(browser, console, f"/console/lineage?cre_id={console['cre_id']}")
    assert [(v[0], v[4], v[5]) for v in _versions(browser)] == [(V1, [P1], False),
                                                               (V2, [P3], True)]
    browser.get(f"{console['url']}/console/vacations/{V2}")
    assert browser.find_element(By.ID, "package").is_displayed()  # delivered, then rolled back
    assert not browser.find_elements(By.ID, "package-lineage")  # which purged its lineage
    with _client(console) as client:
        purged = client.get("/console/lineage", params={"package": P2})
    assert purged.status_code == 404 and f"{P2} has no position now" in purged.text
    browser.get(f"{console['url']}/console/vacations/{V3}")
    _follow(browser, browser.find_element(By.ID, "package-lineage"))
    flagged = [row for row in browser.find_elements(By.CSS_SELECTOR, "table.events tr.version")
               if row.get_attribute("data-vacation") == V2]
    assert [_cells(row)[-1] for row in flagged] == ["rolled back"]
