"""Property-based requests from the collection service's own OpenAPI document (schemathesis)
against a real ``cre serve``: no answer is a server error or undocumented. And, from the
application's route table rather than from what it documents: nothing but an explicit list of
public routes answers a request without a token or a session.

Bounded for the integration tier: a few hundred requests in all. The document is the running
server's, so each operation's strategy is run here with hypothesis (schemathesis' pytest loader
from a fixture does not work under this pytest).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
import schemathesis
from fastapi.routing import iter_route_contexts
from helpers import Service, add_tenant
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.app import create_app
from service.audit import AuditTrail
from service.console.session import COOKIE
from service.dependencies import Settings

pytestmark = pytest.mark.integration

# what answers without a token or a session, on purpose: each side's login (and the style sheet
# of the console's login page), the probes, and the API's own description
PUBLIC = {("POST", "/v1/token"), ("GET", "/healthz"), ("GET", "/metrics"),
          ("GET", "/openapi.json"), ("GET", "/console/login"), ("POST", "/console/login"),
          ("GET", "/console/static/console.css")}
# a value each path parameter would accept, so that only the missing token can refuse
PARAMETERS = {"filename": "BAF_20260701_01.tar.bz2", "upload_id": str(uuid.uuid4()),
              "day": "2026-07-01", "vacation_id": "BAF_20260701_01", "action": "rollback"}


@pytest.fixture
def service(structured, tmp_path, forget_failed_logins):
    # the fuzzed logins trip the throttle: forget_failed_logins clears it after the test
    add_tenant(tmp_path / "tenants.json", "arkea")
    running = Service(tmp_path, structured, "--token-seconds", "600", "--no-manager")
    yield running
    running.kill()


def _each_operation(service: Service, examples: int, check: Callable[[Case], None]) -> None:
    """Runs ``check`` on ``examples`` generated requests of every operation of the document."""
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7, [operation.label for operation in operations]
    bounded = settings(max_examples=examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))
    for operation in operations:
        bounded(given(case=operation.as_strategy())(lambda case: check(case)))()


def test_every_answer_is_documented(service):
    headers = {"Authorization": f"Bearer {service.token('arkea')}"}

    def check(case: Case) -> None:
        # which strings are vacations' file names is the contract's rule, answered 415 or 422
        # as documented, not the schema's: a well-formed string may still be refused; a logout
        # ends a token of its own, not the one the other operations go on with
        logout = (case.method, case.path) == ("DELETE", "/v1/token")
        case.call_and_validate(
            headers={"Authorization": f"Bearer {service.token('arkea')}"} if logout else headers,
            excluded_checks=[positive_data_acceptance])

    _each_operation(service, 40, check)


class _Sample(dict):
    def __missing__(self, name: str) -> str:  # a parameter of a new route
        return "x"


def _routes(session, tmp_path) -> set[tuple[str, str]]:
    """Every (method, path template) of the application ``cre serve`` builds, its console
    included (HEAD: the GET route's)."""
    app = create_app(Settings(str(tmp_path / "zones"), str(tmp_path / "tenants.json"),
                              operators_path=str(tmp_path / "operators.json")),
                     session, audit=AuditTrail(session, "test:routes"))
    return {(method, route.path_format) for route in iter_route_contexts(app.routes)
            for method in route.methods or {"GET"} if method != "HEAD"}


def _refuses(path: str, response: httpx.Response) -> bool:
    """The API's 401; the console's way to the login page, or its refusal."""
    if not path.startswith("/console/"):
        return response.status_code == 401
    return response.status_code in (401, 403) or response.status_code == 303 and \
        response.headers["location"].startswith("/console/login")


def test_nothing_passes_without_a_token(service, zone_session, tmp_path):
    routes = _routes(zone_session, tmp_path)
    assert PUBLIC <= routes, f"a public route is gone: {PUBLIC - routes}"
    documented = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    assert {(method.upper(), path) for path, operations in documented.items()
            for method in operations} <= routes  # the table walked is the server's
    guarded = sorted(routes - PUBLIC)
    assert len(guarded) >= 13, guarded  # a walk that misses routes checks nothing
    let_through = []
    for method, path in guarded:
        url = service.url + path.format_map(_Sample(PARAMETERS))
        for credentials in ({}, {"headers": {"Authorization": "Bearer made-up"}},
                            {"headers": {"Authorization": "Basic YXJrZWE6Y29ycmVjdCBob3JzZQ=="}},
                            {"cookies": {COOKIE: "made-up"}}):
            with httpx.Client(timeout=30, **credentials) as client:
                response = client.request(method, url, content=b"x" * 10 if method in (
                    "POST", "PUT") else None)
            if not _refuses(path, response):
                let_through.append((method, path, credentials, response.status_code,
                                    response.text[:200]))
    assert not let_through, let_through
