"""``cre fetchdata``'s retries, its waits and its failover between replicas, against scripted
servers (no network)."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable

import httpx
import pytest

from sender.replicas import Replicas
from sender.retrying import request, retry_after


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
        response = request(client, "PUT", "/v1/uploads/a", content=lambda: iter([b"ab", b"c"]))
    assert response.status_code == 201
    assert waits == [0.5, 1.0, 2.0]
    assert bodies == [b"abc"] * 4  # the body streamed again at each attempt
    assert capsys.readouterr().err.splitlines() == [
        "PUT /v1/uploads/a: refused; retrying in 0.5 s",
        "PUT /v1/uploads/a: HTTP 503; retrying in 1 s",
        "PUT /v1/uploads/a: HTTP 429; retrying in 2 s"]


def test_the_last_attempt_is_returned_or_raised(waits):
    with _client([503] * 4, []) as client:
        assert request(client, "GET", "/v1/constraints").status_code == 503
    with _client([httpx.ConnectError("refused")] * 4, []) as client, \
            pytest.raises(httpx.ConnectError):
        request(client, "GET", "/v1/constraints")
    with _client([404], []) as client:  # not transient: answered at once
        assert request(client, "GET", "/v1/constraints").status_code == 404
    assert waits == [0.5, 1.0, 2.0] * 2


def _answer(status: int, retry: str) -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": retry})


def test_retry_after_is_seconds_or_a_date_and_at_most_a_minute():
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    assert retry_after(_answer(503, "15")) == 15
    assert retry_after(_answer(429, " 7 ")) == 7
    assert 25 < retry_after(_answer(503, email.utils.format_datetime(later, usegmt=True))) <= 30
    assert retry_after(_answer(503, "Wed, 21 Oct 2015 07:28:00 GMT")) == 0  # already past
    assert retry_after(_answer(503, "3600")) == 60
    for unusable in ("soon", "-5", "1.5", "", "Wed, 21 Oct 2015 07:28:00"):  # the last: no zone
        assert retry_after(_answer(503, unusable)) is None, unusable
    assert retry_after(_answer(500, "15")) is None  # only a 503 or a 429 asks for a wait
    assert retry_after(httpx.Response(503)) is None


def test_the_wait_a_server_asks_for_is_honoured_within_the_retries(waits):
    script = iter([_answer(503, "15"), _answer(429, "600"), httpx.Response(503),
                   httpx.Response(201)])
    with httpx.Client(transport=httpx.MockTransport(lambda _: next(script))) as client:
        assert request(client, "PUT", "http://server/v1/uploads/a").status_code == 201
    assert waits == [15, 60, 2.0]  # the third asks for nothing: the backoff


def _replicas(script: dict[str, Callable[[httpx.Request], httpx.Response]],
              asked: list[str]) -> Replicas:
    """Replicas of the servers ``a``, ``b``, ``c``, each answering by its ``script``;
    ``asked`` gets each request as ``host method path``."""
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.url.host} {request.method} {request.url.path}")
        return script[request.url.host](request)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return Replicas(client, ["http://a/", "http://b", "http://c"], ("arkea", "secret"))


def _serving(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A server whose logins are good (the token names the server), answering ``status`` to
    the rest, with the token it was called with."""
    def answer(request: httpx.Request) -> httpx.Response:
        if (request.method, request.url.path) == ("POST", "/v1/token"):
            return httpx.Response(200, json={"access_token": f"token-{request.url.host}"})
        return httpx.Response(status, json={"token": request.headers.get("authorization")})
    return answer


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def test_a_failing_server_hands_its_request_to_the_next(waits, capsys):
    asked: list[str] = []
    script = {"a": _down, "b": _serving(200), "c": _serving(200)}
    replicas = _replicas(script, asked)
    answered = replicas.request("GET", "/v1/constraints")
    assert answered.json() == {"token": "Bearer token-b"}  # logged in again at b
    assert asked == ["a POST /v1/token"] * 4 + ["b POST /v1/token", "b GET /v1/constraints"]
    assert "http://a: refused; trying http://b" in capsys.readouterr().err
    asked.clear()
    replicas.request("GET", "/v1/uploads")  # b stays the server, logged in
    assert asked == ["b GET /v1/uploads"] and replicas.server == "http://b"
    asked.clear()
    script["b"] = _serving(503)  # b's database goes away: on to c
    assert replicas.request("PUT", "/v1/uploads/x").json() == {"token": "Bearer token-c"}
    assert asked == ["b PUT /v1/uploads/x"] * 4 + ["c POST /v1/token", "c PUT /v1/uploads/x"]
    asked.clear()
    script.update(a=_serving(200), c=_serving(502))  # round, from c to a
    replicas.request("GET", "/v1/uploads")
    assert asked == ["c GET /v1/uploads"] * 4 + ["a POST /v1/token", "a GET /v1/uploads"]


def test_each_server_is_tried_once_then_the_last_failure_stands(waits):
    asked: list[str] = []
    replicas = _replicas({"a": _down, "b": _serving(503), "c": _down}, asked)
    with pytest.raises(httpx.ConnectError):
        replicas.request("GET", "/v1/constraints")
    assert [line.split()[0] for line in asked] == ["a"] * 4 + ["b"] * 5 + ["c"] * 4
    asked.clear()
    unavailable = _replicas(dict.fromkeys("abc", lambda request: httpx.Response(503)), asked)
    with pytest.raises(ConnectionError, match="login answered HTTP 503"):
        unavailable.request("GET", "/v1/constraints")
    assert asked == [f"{host} POST /v1/token" for host in "abc" for _ in range(4)]
    asked.clear()
    answering = _replicas(dict.fromkeys("abc", _serving(504)), asked)
    assert answering.request("GET", "/v1/constraints").status_code == 504
    assert answering.server == "http://c"


def test_a_refused_login_is_final_and_a_refused_request_is_answered(waits):
    asked: list[str] = []
    refused = _replicas({"a": lambda request: httpx.Response(401, json={"detail": "wrong"})},
                        asked)
    with pytest.raises(PermissionError, match="login refused: wrong"):
        refused.request("GET", "/v1/constraints")
    assert asked == ["a POST /v1/token"]
    asked.clear()
    replicas = _replicas({"a": _serving(413)}, asked)
    assert replicas.request("PUT", "/v1/uploads/x").status_code == 413
    assert asked == ["a POST /v1/token", "a PUT /v1/uploads/x"]


def test_logging_out_tolerates_a_service_without_logout(capsys):
    for status, noted in ((204, False), (404, False), (405, False), (500, True)):
        asked: list[str] = []
        replicas = _replicas({"a": _serving(status)}, asked)
        replicas.log_out()  # not logged in: nothing to end
        assert asked == []
        replicas.request("GET", "/v1/constraints", attempts=1)
        replicas.log_out()
        assert asked == ["a POST /v1/token", "a GET /v1/constraints", "a DELETE /v1/token"]
        assert ("http://a: logout: HTTP 500" in capsys.readouterr().err) == noted
