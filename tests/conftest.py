"""Shared fixtures: generated vacations, archives broken on purpose, and the ``cre`` command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import tenacity

from io_connectors.cassandra import CassandraConfig
from pipelines.ledger import Ledger, State
from pipelines.local.cassandra_server import Server

ROOT = Path(__file__).resolve().parents[1]
CRE = [sys.executable, "-m", "pipelines.commands.cli"]  # the cre command of this checkout
T = TypeVar("T")


class CreRun:
    """A finished ``cre`` process: exit code, the JSON summary (last stdout line) and stderr."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        lines = completed.stdout.strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in self.summary["errors"]]


def cre_environment(env: dict | None) -> dict:
    """The test's environment: a structured zone only where the test gives one."""
    base = {key: value for key, value in os.environ.items()
            if not key.startswith("CRE_CASSANDRA_")}
    return {**base, **(env or {})}


# The unit tier (make check: -m "not integration") reaches no server and runs no cre process;
# the fixtures and helpers that do are for the tests marked integration.
SERVER_FIXTURES = frozenset({"cre", "cassandra_env", "structured", "zone_session", "gcs"})
_TIER = {"unit": False}  # of the running test; read through sys.modules: tests.conftest too


def pytest_runtest_setup(item: pytest.Item) -> None:
    unit = item.get_closest_marker("integration") is None
    _TIER["unit"] = unit
    servers = SERVER_FIXTURES.intersection(item.fixturenames)
    if unit and servers:
        pytest.fail(f"{item.nodeid} uses {', '.join(sorted(servers))}: mark it "
                    "@pytest.mark.integration", pytrace=False)


def _integration_only(what: str) -> None:
    if getattr(sys.modules.get("conftest"), "_TIER", _TIER)["unit"]:
        pytest.fail(f"{what} in a unit test: mark it @pytest.mark.integration", pytrace=False)


def run_cre(*args: str, env: dict | None = None, input: str | None = None) -> CreRun:
    _integration_only(f"cre {' '.join(args)}")
    completed = subprocess.run(
        [*CRE, *args], cwd=ROOT, capture_output=True, text=True, input=input,
        env=cre_environment(env), timeout=600,
    )
    return CreRun(completed)


def start_cre(*args: str, env: dict | None = None) -> subprocess.Popen:
    _integration_only(f"cre {' '.join(args)}")
    return subprocess.Popen([*CRE, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cre_environment(env))


@pytest.fixture
def cre():
    return run_cre


def wait_until(probe: Callable[[], T], done: Callable[[T], bool] = bool, *, timeout: float,
               interval: float) -> T:
    """Asks ``probe`` every ``interval`` seconds until its answer is ``done``, for at most
    ``timeout`` seconds; the last answer, so the caller says what a timeout means."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_not_result(done),
        retry_error_callback=lambda state: state.outcome.result())(probe)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PASSWORDS = {"arkea": "correct horse battery", "other": "another long secret"}


def add_tenant(tenants: Path, name: str, *options: str) -> None:
    """``cre tenants add NAME`` to the file, with its password of ``PASSWORDS``."""
    added = run_cre("tenants", "add", name, "--tenants", str(tenants), "--password-stdin",
                    *options, input=PASSWORDS[name] + "\n")
    assert added.code == 0, added.stderr


class Service:
    """A ``cre serve`` process on a free loopback port, over the folder's ``zones``,
    ``tenants.json`` and ``operators.json`` (its own process group, so its ingests die with
    it); HTTPS with ``tls``, a certificate and its key."""

    def __init__(self, folder: Path, env: dict, *options: str,
                 tls: tuple[Path, Path] | None = None):
        self.folder, self.env = folder, env
        self.options = (*options, *(("--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
                                    if tls else ()))
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        self.start()

    def start(self) -> None:
        _integration_only("cre serve")
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [*CRE, "serve", "--port", str(self.port),
             "--zones-root", str(self.folder / "zones"), "--tenants",
             str(self.folder / "tenants.json"), "--operators",
             str(self.folder / "operators.json"), *self.options], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=cre_environment({**self.env, "CRE_MANAGER_LOG_DIR": str(self.folder)}))
        if not wait_until(self._healthy, timeout=60, interval=0.3):
            raise AssertionError(self.log.read_text()[-3000:])

    def _healthy(self) -> bool:
        try:  # up, whatever its certificate: trusting it is for the tests to check
            return httpx.get(f"{self.url}/healthz", timeout=1, verify=False).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group may have ended already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Stops it as an operator does (SIGTERM): it finishes what it answered for; then
        whatever of its group is left."""
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        finally:
            self.kill()

    def token(self, tenant: str) -> str:
        issued = httpx.post(f"{self.url}/v1/token", auth=(tenant, PASSWORDS[tenant]))
        assert issued.status_code == 200, issued.text
        return issued.json()["access_token"]

    def client(self, tenant: str, token: str | None = None) -> httpx.Client:
        """A client with ``token``, else with a new token of ``tenant``."""
        return httpx.Client(base_url=self.url, timeout=30, headers={
            "Authorization": f"Bearer {token or self.token(tenant)}"})


@pytest.fixture(scope="session")
def cassandra_env(tmp_path_factory) -> Iterator[dict]:
    """The Cassandra of ``CRE_CASSANDRA_HOSTS`` (``make test`` starts one), else one started
    here on free ports and stopped at the end."""
    if os.environ.get("CRE_CASSANDRA_HOSTS"):
        yield {key: value for key, value in os.environ.items()
               if key.startswith("CRE_CASSANDRA_") and key != "CRE_CASSANDRA_KEYSPACE"}
        return
    server = Server(tmp_path_factory.mktemp("cassandra"), free_port(), free_port())
    server.start()
    try:
        yield {"CRE_CASSANDRA_HOSTS": f"127.0.0.1:{server.native_port}",
               "CRE_CASSANDRA_USERNAME": "cassandra", "CRE_CASSANDRA_PASSWORD": "cassandra"}
    finally:
        server.stop()


def config_of(env: dict) -> CassandraConfig:
    return CassandraConfig.from_hosts(
        env["CRE_CASSANDRA_HOSTS"], env.get("CRE_CASSANDRA_KEYSPACE", "cre"),
        username=env.get("CRE_CASSANDRA_USERNAME"), password=env.get("CRE_CASSANDRA_PASSWORD"),
        consistency="ONE")


@pytest.fixture(scope="module")
def structured(cassandra_env) -> Iterator[dict]:
    """A structured zone of the test module's own (a fresh keyspace, migrated by
    ``cre db migrate``): the environment that points ``cre`` at it."""
    env = {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": f"test_{uuid.uuid4().hex[:10]}",
           "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    migrated = run_cre("db", "migrate", env=env)
    assert migrated.code == 0, migrated.stderr
    yield env
    session = config_of(env).connect()
    session.execute(f"DROP KEYSPACE IF EXISTS {env['CRE_CASSANDRA_KEYSPACE']}", timeout=120)
    session.cluster.shutdown()


@pytest.fixture(scope="module")
def zone_session(structured):
    """A driver session on the test keyspace, for assertions."""
    session = config_of(structured).connect(structured["CRE_CASSANDRA_KEYSPACE"])
    yield session
    session.cluster.shutdown()


@pytest.fixture
def forget_failed_logins(zone_session) -> Iterator[None]:
    """For a test that trips the login throttle, which outlives the server (the keyspace keeps
    it): what the test counted is forgotten after it, so the next tests can log in."""
    yield
    zone_session.execute("TRUNCATE login_failures", timeout=60)


def abandon(session, vacation_id: str) -> None:
    """Leaves the vacation as its run does when it dies mid-load and its lease runs out: LANDED,
    by that run's own transition, through a ledger whose leases are over as soon as given."""
    row = Ledger(session).get(vacation_id)
    Ledger(session, row["run_id"], lease_seconds=-1).advance(
        vacation_id, row["state"], State.LANDED, "test: its run died")


BUCKET = "mmg-dataplatform"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def gcs(tmp_path):
    """A gcp-storage-emulator server on a loopback port, with one bucket; stopped after."""
    port = free_port()
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    server = subprocess.Popen(
        [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
         "--default-bucket", BUCKET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"
    wait_until(lambda: _listening(port), timeout=30, interval=0.1)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials())
    try:
        yield host, client.bucket(BUCKET)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
