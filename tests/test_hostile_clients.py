"""Two ``cre serve`` replicas over TLS against clients that would take them: connections that
say nothing or trickle their head, a body that stalls, an oversized head, a tenant opening
uploads by the dozen, a token reused after its logout, a tenant reading another's uploads,
passwords guessed over both replicas; each gets its answer, and all of them at once leave a
well-behaved tenant's upload its 201. The slow clients are real sockets; the rest is httpx."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import PASSWORDS, Service, add_tenant, incoming_files, run_cre, wait_until

from pipelines.ledger import Ledger
from pipelines.local.certificates import Authority
from pipelines.local.generator import generate_vacation
from service.audit import events_since
from service.console.session import COOKIE, csrf_token

pytestmark = pytest.mark.integration

HEADER_SECONDS, BODY_SECONDS, PER_TENANT = 2, 2, 4
SLACK = 4  # what a busy two-core machine may add to a deadline
CROWD, HOLD = 20, 5  # uploads one tenant opens at once, and how long each insists


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def trusted(authority) -> ssl.SSLContext:
    """What the raw sockets trust: the replicas' authority."""
    return ssl.create_default_context(cafile=authority.path)


@pytest.fixture(scope="module")
def replicas(structured, authority, tmp_path_factory) -> Iterator[list[Service]]:
    folder = tmp_path_factory.mktemp("serve")
    add_tenant(folder / "tenants.json", "arkea", "--max-files", "100")
    add_tenant(folder / "tenants.json", "other", "--max-files", "100")
    certificate = authority.issue("server")
    started: list[Service] = []
    # httpx trusts $SSL_CERT_FILE: the Service helpers' own clients verify the replicas
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(authority.path))
        try:
            for _ in range(2):
                started.append(Service(
                    folder, structured, "--no-manager", "--header-timeout", str(HEADER_SECONDS),
                    "--body-timeout", str(BODY_SECONDS), "--tenant-concurrency",
                    str(PER_TENANT), tls=certificate))
            yield started
        finally:
            for replica in started:
                replica.kill()


def _connect(service: Service, context: ssl.SSLContext | None) -> socket.socket:
    """A socket to ``service``: TLS with ``context``, else TCP that never says hello."""
    raw = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    return context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw


def _answer(sock: socket.socket, within: float) -> bytes:
    """All the service says until it closes ``sock``, which must be ``within`` seconds."""
    answer, deadline = b"", time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not (chunk := sock.recv(65536)):
                return answer
            answer += chunk
    except (ConnectionError, ssl.SSLError):  # reset, or TLS cut short: closed all the same
        return answer
    raise AssertionError(f"still open after {within} s, having said {answer[:200]!r}")


def _silent(service: Service, context: ssl.SSLContext | None) -> tuple[float, bytes]:
    """How long a connection that sends nothing is kept, and what it is told."""
    started = time.monotonic()
    with _connect(service, context) as sock:
        told = _answer(sock, HEADER_SECONDS + SLACK)
    return time.monotonic() - started, told


def _trickle(service: Service, context: ssl.SSLContext) -> tuple[float, bytes]:
    """How long a client sending its head a byte every 0.2 s is kept, and what it is told."""
    head = itertools.chain(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                           itertools.repeat(ord("a")))
    started, told = time.monotonic(), b""
    with _connect(service, context) as sock, \
            contextlib.suppress(ConnectionError, ssl.SSLError):
        while time.monotonic() - started < HEADER_SECONDS + SLACK:
            sock.sendall(bytes([next(head)]))
            sock.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                if told := sock.recv(65536):
                    told += _answer(sock, SLACK)
                break
    return time.monotonic() - started, told


def _head(service: Service, path: str, headers: dict[str, str], method: str = "GET") -> bytes:
    return "".join([f"{method} {path} HTTP/1.1\r\n", f"Host: 127.0.0.1:{service.port}\r\n",
                    *(f"{name}: {value}\r\n" for name, value in headers.items()),
                    "\r\n"]).encode()


def _exchange(service: Service, context: ssl.SSLContext, request: bytes) -> bytes:
    """What the service answers ``request`` (a close after its answer); a request it refuses
    while it is still being sent is answered all the same."""
    with _connect(service, context) as sock:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            sock.sendall(request)
        return _answer(sock, 30)


def _upload_head(service: Service, token: str, archive: Path) -> bytes:
    return _head(service, f"/v1/uploads/{archive.name}", {
        "Authorization": f"Bearer {token}", "Content-Length": str(archive.stat().st_size)},
        method="PUT")


def _stalled_upload(service: Service, context: ssl.SSLContext, token: str,
                    archive: Path) -> bytes:
    """An upload whose body stops after its first 2000 bytes: what it is told until closed."""
    with _connect(service, context) as sock:
        sock.sendall(_upload_head(service, token, archive) + archive.read_bytes()[:2000])
        return _answer(sock, BODY_SECONDS + SLACK)


def _held_upload(service: Service, context: ssl.SSLContext, token: str,
                 archive: Path) -> bytes | None:
    """An upload sending a byte of its body every 0.5 s for ``HOLD`` seconds: what it is told
    then, or None if it goes on unanswered (let in)."""
    body = iter(archive.read_bytes())
    with _connect(service, context) as sock:
        sock.sendall(_upload_head(service, token, archive) + bytes(itertools.islice(body, 100)))
        sock.settimeout(0.5)
        end = time.monotonic() + HOLD
        while time.monotonic() < end:
            try:
                said = sock.recv(65536)
            except TimeoutError:
                sock.sendall(bytes(itertools.islice(body, 1)))
                continue
            if said:
                said += _answer(sock, 30)
            return said
    return None


def _crowd(pool: ThreadPoolExecutor, service: Service, context: ssl.SSLContext, token: str,
           archive: Path) -> list[bytes]:
    """``CROWD`` uploads of one tenant at once, each insisting ``HOLD`` seconds: the answers of
    those refused, all but ``PER_TENANT`` of them (let in, they went on unanswered)."""
    answers = list(pool.map(lambda _: _held_upload(service, context, token, archive),
                            range(CROWD)))
    refused = [answer for answer in answers if answer is not None]
    assert len(refused) == CROWD - PER_TENANT, refused
    return refused


def _events(zone_session, tenant: str, since: datetime.datetime, action: str,
            outcome: str) -> list[dict]:
    return [event for event in events_since(zone_session, tenant, since)
            if event["action"] == action and event["outcome"] == outcome]


def _guess(replicas: list[Service]) -> list[int]:
    """Wrong passwords for ``other``, alternately at each replica, then its right one."""
    wrong = [httpx.post(f"{replica.url}/v1/token", auth=("other", "not its password"),
                        timeout=30).status_code for replica in replicas * 3]
    right = [httpx.post(f"{replica.url}/v1/token", auth=("other", PASSWORDS["other"]),
                        timeout=30).status_code for replica in replicas]
    return wrong + right


def _reuse_after_logout(replicas: list[Service], token: str) -> list[int]:
    """Logs ``token`` out at the first replica: its answer, then the token's at each."""
    a = replicas[0]
    with a.client("arkea", token) as client:
        statuses = [client.delete("/v1/token").status_code]
    for replica in replicas:
        with replica.client("arkea", token) as client:
            statuses.append(client.get("/v1/constraints").status_code)
    return statuses


def _peek(replica: Service, token: str, upload_id: str) -> tuple[int, list]:
    """Another tenant's upload asked for by id, and its day's listing."""
    with replica.client("other", token) as client:
        return (client.get(f"/v1/uploads/{upload_id}").status_code,
                client.get("/v1/uploads", params={"date": "2026-12-01"}).json())


def _upload(replica: Service, token: str, archive: Path) -> dict:
    with replica.client("arkea", token) as client:
        sent = client.put(f"/v1/uploads/{archive.name}", content=archive.read_bytes())
    assert sent.status_code == 201, sent.text
    return sent.json()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)


def test_connections_that_say_nothing_or_trickle_are_closed(replicas, trusted):
    a, b = replicas
    held, told = _silent(a, None)  # no TLS hello: the handshake's deadline
    assert held < HEADER_SECONDS + SLACK and told == b""
    held, told = _silent(b, trusted)  # a handshake, then no request
    assert HEADER_SECONDS - 0.5 < held < HEADER_SECONDS + SLACK
    assert told.startswith(b"HTTP/1.1 408 ")
    held, told = _trickle(a, trusted)
    assert HEADER_SECONDS - 0.5 < held < HEADER_SECONDS + SLACK
    assert told.startswith(b"HTTP/1.1 408 ")


def test_a_stalled_upload_is_cut_discarded_and_audited(replicas, trusted, zone_session,
                                                       tmp_path):
    since, archive = _now(), generate_vacation(tmp_path, "2026-12-02", 1, 200, 2, seed=321)
    assert _stalled_upload(replicas[0], trusted, replicas[0].token("arkea"), archive) == b""
    landing = replicas[0].folder / "zones" / "landing"
    wait_until(lambda: incoming_files(landing), lambda left: left == [], timeout=10,
               interval=0.2, what="the stalled upload's partial file discarded")
    failed = wait_until(lambda: _events(zone_session, "arkea", since, "upload", "failed"),
                        timeout=10, interval=0.2, what="the stalled upload audited")
    assert failed[0]["object"] == archive.name


def test_an_oversized_head_is_refused(replicas, trusted):
    a, b = replicas
    for replica, size, status in ((a, 200_000, (b"400", b"431")), (b, 40_000, (b"200",))):
        answer = _exchange(replica, trusted, _head(replica, "/healthz", {
            "X-Padding": "x" * size, "Connection": "close"}))
        assert answer[9:12] in status, (size, answer[:200])


def test_a_tenant_has_at_most_its_uploads_at_once(replicas, trusted, zone_session,
                                                  tmp_path):
    since, archive = _now(), generate_vacation(tmp_path, "2026-12-03", 1, 50, 1, seed=322)
    a = replicas[0]
    token = a.token("other")
    with ThreadPoolExecutor(max_workers=CROWD) as pool:
        refused = _crowd(pool, a, trusted, token, archive)
    assert all(answer.startswith(b"HTTP/1.1 429 ") and b"retry-after: 10" in answer.lower()
               for answer in refused)
    wait_until(lambda: _events(zone_session, "other", since, "upload", "refused"),
               lambda found: len(found) == CROWD - PER_TENANT, timeout=10, interval=0.2,
               what="the refused uploads audited")
    with a.client("other", token) as client:  # the slots came back with the connections
        sent = wait_until(
            lambda: client.put(f"/v1/uploads/{archive.name}", content=archive.read_bytes()),
            lambda answer: answer.status_code != 429, timeout=10, interval=0.5)
    assert sent.status_code == 201, sent.text


def test_a_token_ends_at_its_logout_at_every_replica(replicas, zone_session):
    since = _now()
    assert _reuse_after_logout(replicas, replicas[1].token("arkea")) == [204, 401, 401]
    wait_until(lambda: _events(zone_session, "arkea", since, "logout", "ok"), timeout=10,
               interval=0.2, what="the logout audited")
    with replicas[0].client("arkea") as client:  # the tenant's other tokens live on
        assert client.get("/v1/constraints").status_code == 200


def test_a_console_session_ends_at_its_logout_at_every_replica(replicas):
    a, b = replicas
    added = run_cre("operators", "add", "olivia", "--operators",
                    str(a.folder / "operators.json"), "--password-stdin",
                    input="operator password 1\n")
    assert added.code == 0, added.stderr
    logged = httpx.post(f"{a.url}/console/login",
                        data={"name": "olivia", "password": "operator password 1"})
    assert logged.status_code == 303, logged.text
    session = logged.cookies[COOKIE]
    cookie = {"Cookie": f"{COOKIE}={session}"}

    def home(replica: Service) -> str:  # where /console/ sends the cookie's holder
        return httpx.get(f"{replica.url}/console/", headers=cookie).headers["location"]

    assert home(b).startswith("/console/days/")
    assert httpx.post(f"{a.url}/console/logout", headers=cookie,
                      data={"csrf": csrf_token(session)}).status_code == 303
    assert [home(replica).split("?")[0] for replica in replicas] == ["/console/login"] * 2


def test_a_tenant_sees_only_its_own_uploads(replicas, tmp_path):
    a, b = replicas
    archive = generate_vacation(tmp_path, "2026-12-01", 1, 50, 1, seed=323)
    mine = _upload(a, a.token("arkea"), archive)
    assert _peek(b, b.token("other"), mine["upload_id"]) == (404, [])


def test_passwords_guessed_over_both_replicas_are_throttled_in_sum(replicas,
                                                                   forget_failed_logins):
    assert _guess(replicas) == [401] * 5 + [429] * 3


def test_all_at_once_a_well_behaved_upload_still_lands(replicas, trusted, zone_session,
                                                       forget_failed_logins, tmp_path):
    a, b = replicas
    honest = generate_vacation(tmp_path, "2026-12-06", 1, 400, 4, seed=324)
    crowded = generate_vacation(tmp_path / "crowd", "2026-12-07", 1, 50, 1, seed=325)
    # every token before the guessing blocks this machine's address from logging in
    arkea, other, leaving = b.token("arkea"), a.token("other"), a.token("arkea")
    mine = _upload(a, arkea, generate_vacation(tmp_path, "2026-12-01", 2, 20, 1, seed=326))
    with ThreadPoolExecutor(max_workers=250) as pool:
        trickling = [pool.submit(_trickle, replicas[n % 2], trusted) for n in range(100)]
        idle = [pool.submit(_silent, replicas[n % 2], trusted if n % 2 else None)
                for n in range(50)]
        crowd = pool.submit(_crowd, pool, a, trusted, other, crowded)
        oversized = pool.submit(_exchange, b, trusted, _head(b, "/healthz", {
            "X-Padding": "x" * 200_000, "Connection": "close"}))
        reused = pool.submit(_reuse_after_logout, replicas, leaving)
        peeked = pool.submit(_peek, b, other, mine["upload_id"])
        guessed = pool.submit(_guess, replicas)
        time.sleep(0.5)
        sent = _upload(b, arkea, honest)
        assert Ledger(zone_session).get(honest.name.removesuffix(".tar.bz2")).sha256 == \
            sent["sha256"]
        for future in trickling:
            held, told = future.result()
            assert held < HEADER_SECONDS + SLACK and told.startswith(b"HTTP/1.1 408 ")
        assert all(future.result()[0] < HEADER_SECONDS + SLACK for future in idle)
        assert all(answer.startswith(b"HTTP/1.1 429 ") for answer in crowd.result())
        assert oversized.result()[9:12] in (b"400", b"431")
        assert reused.result() == [204, 401, 401]
        assert peeked.result() == (404, [])
        assert guessed.result() == [401] * 5 + [429] * 3
