"""``cre fetchdata``'s retries, against a scripted server (no network)."""

from __future__ import annotations

import httpx
import pytest

from sender.fetchdata import _request


def _client(answers: list, bodies: list) -> httpx.Client:
    """Answers each request with the next status, or raises the next error."""
    script = iter(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        step = next(script)
        if isinstance(step, Exception):
            raise step
        return httpx.Response(step)

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://server")


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr("time.sleep", waited.append)
    return waited


def test_transient_failures_are_retried_with_backoff(waits, capsys):
    bodies: list[bytes] = []
    with _client([httpx.ConnectError("refused"), 503, 429, 201], bodies) as client:
        response = _request(client, "PUT", "/v1/uploads/a", content=lambda: iter([b"ab", b"c"]))
    assert response.status_code == 201
    assert waits == [0.5, 1.0, 2.0]
    assert bodies == [b"abc"] * 4  # the body streamed again at each attempt
    assert capsys.readouterr().err.splitlines() == [
        "PUT /v1/uploads/a: refused; retrying", "PUT /v1/uploads/a: HTTP 503; retrying",
        "PUT /v1/uploads/a: HTTP 429; retrying"]


def test_the_last_attempt_is_returned_or_raised(waits):
    with _client([503] * 4, []) as client:
        assert _request(client, "GET", "/v1/constraints").status_code == 503
    with _client([httpx.ConnectError("refused")] * 4, []) as client, \
            pytest.raises(httpx.ConnectError):
        _request(client, "GET", "/v1/constraints")
    with _client([404], []) as client:  # not transient: answered at once
        assert _request(client, "GET", "/v1/constraints").status_code == 404
    assert waits == [0.5, 1.0, 2.0] * 2
