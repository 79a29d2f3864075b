"""The fixtures (a Cassandra, a structured zone, the GCS emulator, the ``cre`` command) and the
unit tier's guard; what tests and bench/ share besides is in ``helpers``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
from helpers import BUCKET, config_of, free_port, listening, run_cre, wait_until

from pipelines.local.cassandra_cluster import Cluster
from pipelines.local.cassandra_server import Server

# The unit tier (make check: -m "not integration") reaches no server and runs no cre process;
# the fixtures and helpers that do are for the tests marked integration.
SERVER_FIXTURES = frozenset({"cre", "cassandra_env", "cluster", "structured", "zone_session",
                             "gcs"})


def pytest_runtest_setup(item: pytest.Item) -> None:
    unit = item.get_closest_marker("integration") is None
    helpers.TIER["unit"] = unit  # the helpers that run cre or serve read it
    servers = SERVER_FIXTURES.intersection(item.fixturenames)
    if unit and servers:
        pytest.fail(f"{item.nodeid} uses {', '.join(sorted(servers))}: mark it "
                    "@pytest.mark.integration", pytrace=False)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A three-node cluster on free ports (127.0.0.1-3) for the cluster tier's modules; stopped
    at the end."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), 3, free_port(), free_port(),
                      free_port())
    try:
        cluster.start()
        yield cluster
    finally:  # a start that failed halfway leaves nodes running too
        cluster.stop()


@pytest.fixture
def cre():
    return run_cre


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
    wait_until(lambda: listening(port), timeout=30, interval=0.1,
               what=f"gcp-storage-emulator on port {port}")
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
