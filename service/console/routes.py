"""The console's routes under ``/console``: login, the pages, the actions.

Who may see a page or post is decided by the dependencies of ``session`` (the session cookie,
the origin and the CSRF token of a POST). Every login, refusal and action is in the audit trail
under the operator's principal.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.access import client_address
from service.audit import ANONYMOUS
from service.console.actions import ACTIONS
from service.console.operators import PRINCIPAL, Operator
from service.console.session import (
    COOKIE,
    Console,
    ConsoleDep,
    LoginRequired,
    OperatorDep,
    PostingOperatorDep,
    Refusal,
    console,
    csrf_token,
)
from service.console.views import LINEAGE_POSITIONS
from service.dependencies import AuditDep, ThrottleDep
from transforms import pivot_package
from transforms.contract import VacationName

_HERE = Path(__file__).resolve().parent
_TEMPLATES = Environment(loader=FileSystemLoader(_HERE / "templates"),
                         autoescape=select_autoescape(default=True), trim_blocks=True,
                         lstrip_blocks=True)
_STYLE = (_HERE / "static" / "console.css").read_bytes()
_HEADERS = {  # nothing but this server's own, no framing, no caching of pages with data
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store"}

router = APIRouter(prefix="/console", include_in_schema=False)


def page(request: Request, template: str, operator: Optional[Operator] = None,
         status: int = 200, **values) -> HTMLResponse:
    token = request.cookies.get(COOKIE, "")
    html = _TEMPLATES.get_template(template).render(
        operator=operator, csrf=csrf_token(token) if operator else "",
        may_act=bool(operator and operator.may_act and console(request).actions), **values)
    return HTMLResponse(html, status, headers=_HEADERS)


@router.get("/static/console.css")
def style() -> Response:
    return Response(_STYLE, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
    return page(request, "login.html", next=_local(next))


@router.post("/login")
async def login(request: Request, found: ConsoleDep, throttle: ThrottleDep,
                audit: AuditDep) -> Response:
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    client = client_address(request)
    known = PRINCIPAL + name if name in found.operators.load() else ANONYMOUS
    if throttle.blocked(PRINCIPAL + name, client):
        audit.record(known, "console login", name, "throttled", "", client)
        return page(request, "login.html", status=429, next=_local(form.get("next")),
                    error="Too many failed logins: try again in a few minutes.")
    operator = await asyncio.to_thread(found.operators.authenticate, name, password)
    if operator is None:
        audit.record(known, "console login", name, "refused", "wrong name or password", client)
        await asyncio.sleep(throttle.failed(PRINCIPAL + name, client))
        return page(request, "login.html", status=401, next=_local(form.get("next")),
                    error="Wrong name or password.")
    audit.record(operator.principal, "console login", name, "ok", operator.role, client)
    response = RedirectResponse(_local(form.get("next")), 303)
    response.set_cookie(COOKIE, found.tokens.issue(operator), max_age=found.tokens.seconds,
                        path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request, operator: PostingOperatorDep, found: ConsoleDep,
                 audit: AuditDep) -> Response:
    found.tokens.revoke(request.cookies[COOKIE])
    audit.record(operator.principal, "console logout", operator.name, "ok", "",
                 client_address(request))
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/")
def home(_operator: OperatorDep) -> Response:
    return RedirectResponse(f"/console/days/{_today().isoformat()}", 303)


@router.get("/days/{day}")
def day(day: str, request: Request, operator: OperatorDep, found: ConsoleDep) -> HTMLResponse:
    business_date = _date(day)
    return page(request, "day.html", operator, now=_now(),
                **found.views.day(business_date, _now()))


@router.get("/vacations/{vacation_id}")
def vacation(vacation_id: str, request: Request, operator: OperatorDep, found: ConsoleDep,
             started: str = "") -> HTMLResponse:
    seen = found.views.vacation(_vacation_id(vacation_id))
    if seen is None:
        raise Refusal(404, f"{vacation_id} is not in the ledger.")
    return page(request, "vacation.html", operator, v=seen, actions=ACTIONS,
                started=ACTIONS.get(started))


@router.get("/vacations/{vacation_id}/package")
def package(vacation_id: str, _operator: OperatorDep, found: ConsoleDep) -> Response:
    delivered = found.views.package(_vacation_id(vacation_id))
    if delivered is None:
        raise Refusal(404, f"{vacation_id} has no delivered package")
    name, data = delivered
    return Response(data, media_type="application/x-bzip2", headers={
        **_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/lineage")
def lineage(request: Request, operator: OperatorDep, found: ConsoleDep, q: str = "",
            cre_id: str = "", account: str = "", date: str = "",
            package: str = "") -> HTMLResponse:
    """Where an event, an account's positions of a business date or a package came from:
    ``cre lineage`` on a page. ``q`` is the search box's text (``lineage_search``)."""
    asked = {"cre_id": cre_id, "account": account, "date": date, "package": package}
    try:
        if q.strip():
            if any(asked.values()):
                raise Refusal(400, "Give the search text q alone.")
            asked.update(lineage_search(q))
        if not any(asked.values()):  # what to search for, no error
            return page(request, "lineage.html", operator, q=q)
        return _lineage(request, operator, found, q=q, **asked)
    except Refusal as error:
        return page(request, "lineage.html", operator, status=error.status, q=q,
                    error=str(error))


def _lineage(request: Request, operator: Operator, found: Console, q: str, cre_id: str,
             account: str, date: str, package: str) -> HTMLResponse:
    """The page for exactly one of ``cre_id``, ``account`` with ``date``, ``package``; 404
    when nothing is found (``cre lineage`` exits 3)."""
    if sum(map(bool, (cre_id, account or date, package))) != 1 or bool(account) != bool(date):
        raise Refusal(400, "Give a cre_id, an account with a business date, or a package.")
    if cre_id:
        versions = found.views.event_lineage(cre_id)
        return page(request, "lineage.html", operator, status=200 if versions else 404, q=q,
                    cre_id=cre_id, versions=versions)
    if package:
        if pivot_package.vacation_of_package(package) is None:
            raise Refusal(400, f"{package!r} is not a package name "
                               "MMG_ABS_<YYYYMMDD>_<NN>.tar.bz2.")
        answer = found.views.package_lineage(package)
        if answer is None:
            raise Refusal(404, f"{package} is not a delivered package.")
        total, positions = answer
    else:
        business_date = _date(date, status=400)
        positions = found.views.position_lineage(account, business_date)
        total = len(positions)
    return page(request, "lineage.html", operator, status=200 if positions else 404, q=q,
                package=package, account=account, date=date, total=total,
                positions=positions[:LINEAGE_POSITIONS])


@router.get("/trends")
def trends(request: Request, operator: OperatorDep, found: ConsoleDep) -> HTMLResponse:
    return page(request, "trends.html", operator, **found.views.trends(_today()))


@router.get("/audit")
def trail(request: Request, operator: OperatorDep, found: ConsoleDep) -> HTMLResponse:
    return page(request, "audit.html", operator,
                events=found.views.operator_events(_now() - datetime.timedelta(days=7)))


@router.get("/actions/{action}/{vacation_id}")
def confirm(action: str, vacation_id: str, request: Request, operator: OperatorDep,
            found: ConsoleDep) -> HTMLResponse:
    chosen = _action(action)
    if not operator.may_act or found.actions is None:
        raise Refusal(403, f"Your role ({operator.role}) does not take actions.")
    return page(request, "confirm.html", operator, action=chosen,
                vacation_id=_vacation_id(vacation_id))


@router.post("/actions/{action}/{vacation_id}")
async def act(action: str, vacation_id: str, request: Request, operator: PostingOperatorDep,
              found: ConsoleDep, audit: AuditDep) -> Response:
    chosen, vacation_id = _action(action), _vacation_id(vacation_id)
    if not operator.may_act or found.actions is None:
        audit.record(operator.principal, action, vacation_id, "refused",
                     f"the role {operator.role} takes no action", client_address(request))
        raise Refusal(403, f"the role {operator.role} takes no action")
    found.actions.start(operator, chosen, vacation_id, client_address(request))
    return RedirectResponse(f"/console/vacations/{vacation_id}?started={chosen.name}", 303)


def _to_login(request: Request, _error: LoginRequired) -> Response:
    """The login page, then back where the browser was, with its question (a lineage's)."""
    query = request.url.query
    back = f"{request.url.path}?{query}" if query else request.url.path
    return RedirectResponse(f"/console/login?next={quote(back)}", 303)


def _refused(_request: Request, error: Refusal) -> HTMLResponse:
    html = _TEMPLATES.get_template("message.html").render(operator=None, message=str(error))
    return HTMLResponse(html, error.status, headers=_HEADERS)


# what the application answers when a dependency or a route raises one of the console's own
HANDLERS = {LoginRequired: _to_login, Refusal: _refused}


def _action(name: str):
    if name not in ACTIONS:
        raise Refusal(404, f"no action {name!r}")
    return ACTIONS[name]


def _vacation_id(text: str) -> str:
    name = VacationName.parse(f"{text}.tar.bz2")
    if name is None:
        raise Refusal(404, f"{text!r} is not a vacation id BAF_<YYYYMMDD>_<NN>")
    return name.vacation_id


def _date(text: str, status: int = 404) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise Refusal(status, f"{text!r} is not a date YYYY-MM-DD") from None


def lineage_search(text: str) -> dict[str, str]:
    """What the search box's text asks the lineage page: a package by its name
    (``MMG_ABS_....tar.bz2``), ``ACCOUNT DATE`` an account's positions of a business date (the
    second word a date, YYYY-MM-DD, or what looks meant as one: a bad one is then refused),
    anything else an event by its cre_id."""
    text = text.strip()
    words = text.split()
    if text.startswith("MMG_ABS_") and text.endswith(".tar.bz2"):
        return {"package": text}
    if len(words) == 2 and re.fullmatch(r"[0-9]+-[0-9]+-[0-9]+", words[1]):
        return {"account": words[0], "date": words[1]}
    return {"cre_id": text}


def _local(target) -> str:
    """Only a path of the console: a login never sends the browser to another site."""
    target = str(target or "")
    return target if target.startswith("/console/") and "//" not in target else "/console/"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _today() -> datetime.date:
    return _now().date()

