"""What the service answers for the driver's errors: 503 with Retry-After for what a retry may
cure (a timeout, a role lookup timed out), a grant really missing left to the 500 it is."""

from __future__ import annotations

import asyncio
import json

import pytest
from cassandra import ConsistencyLevel, ReadTimeout, Unauthorized
from starlette.requests import Request

from service.unavailable import HANDLERS

_REQUEST = Request({"type": "http", "method": "GET", "path": "/v1/constraints", "headers": [],
                    "query_string": b""})


def _answer(error: Exception):
    handler = next(handler for kind, handler in HANDLERS.items() if isinstance(error, kind))
    return asyncio.run(handler(_REQUEST, error))


@pytest.mark.parametrize("error", [
    ReadTimeout("slow", consistency=ConsistencyLevel.LOCAL_QUORUM, required_responses=2,
                received_responses=1, data_retrieved=False),
    Unauthorized('Error from server: code=2100 [Unauthorized] message="Unable to perform '
                 'authorization of super-user permission: Operation timed out - received only '
                 '1 responses."'),
], ids=["read-timeout", "role-lookup-timed-out"])
def test_what_a_retry_may_cure_is_a_503_naming_no_host(error):
    answer = _answer(error)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "15"
    detail = json.loads(answer.body)["detail"]
    assert "nothing was acknowledged" in detail and "127.0.0" not in detail


def test_a_missing_grant_is_not_answered_as_unavailable():
    denied = Unauthorized('Error from server: code=2100 [Unauthorized] message="User '
                          'cre_service has no SELECT permission on <table cre.ledger>"')
    with pytest.raises(Unauthorized, match="no SELECT permission"):
        _answer(denied)
