"""Property-based requests from the collection service's own OpenAPI document (schemathesis)
against a real ``cre serve``: no answer is a server error or undocumented, and nothing but
``POST /v1/token``, ``/healthz`` and ``/metrics`` answers without a bearer token.

Bounded for the integration tier: a few hundred requests in all. The document is the running
server's, so each operation's strategy is run here with hypothesis (schemathesis' pytest loader
from a fixture does not work under this pytest).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from helpers import Service, add_tenant
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.integration


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
        # as documented, not the schema's: a well-formed string may still be refused
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    _each_operation(service, 40, check)


def test_nothing_passes_without_a_token(service):
    def check(case: Case) -> None:
        secured = bool(case.operation.definition.raw.get("security"))
        generated = {name: value for name, value in (case.headers or {}).items()
                     if name.lower() != "authorization"}
        for authorization in (None, "Bearer made-up", "Basic YXJrZWE6Y29ycmVjdCBob3JzZQ=="):
            case.headers = {**generated, **({"Authorization": authorization}
                                            if authorization else {})}
            response = case.call()
            assert response.status_code < 500, response.text
            if secured:
                assert response.status_code == 401, (case.operation.label, response.text)

    _each_operation(service, 15, check)
