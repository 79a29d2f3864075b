"""The project's own local Cassandra: fetched with Maven, started and stopped by ``cre``."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from conftest import free_port

from io_connectors.cassandra import CassandraConfig, CassandraUnavailable
from pipelines.local.cassandra_server import Server, TlsFiles, cql_answers

pytestmark = pytest.mark.integration


def test_start_status_stop(cre, tmp_path):
    native, storage = free_port(), free_port()
    args = ["--home", str(tmp_path / "cassandra"), "--native-port", str(native),
            "--storage-port", str(storage)]
    try:
        started = cre("cassandra", "start", *args)
        assert started.code == 0, started.stderr
        assert cql_answers("127.0.0.1", native)
        again = cre("cassandra", "start", *args)  # a second start is harmless
        assert again.code == 0 and cql_answers("127.0.0.1", native)
        status = cre("cassandra", "status", *args)
        assert status.code == 0 and "answers CQL" in status.stdout
    finally:
        stopped = cre("cassandra", "stop", *args)
    assert stopped.code == 0
    assert not cql_answers("127.0.0.1", native)
    assert cre("cassandra", "status", *args).code == 3


def _certificate(folder: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, made by the JDK's keytool."""
    keystore, ca_file = folder / "server.p12", folder / "ca.pem"
    common = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", "changeit"]
    subprocess.run(["keytool", "-genkeypair", "-alias", "cre", "-keyalg", "RSA", "-keysize",
                    "2048", "-validity", "2", "-dname", "CN=127.0.0.1", "-ext",
                    "SAN=ip:127.0.0.1", "-keypass", "changeit", *common],
                   check=True, capture_output=True)
    subprocess.run(["keytool", "-exportcert", "-rfc", "-alias", "cre", "-file", str(ca_file),
                    *common], check=True, capture_output=True)
    return TlsFiles(keystore, "changeit", ca_file)


def test_clients_connect_with_tls(tmp_path):
    tls = _certificate(tmp_path)
    server = Server(tmp_path / "cassandra", free_port(), free_port(), tls=tls)
    server.start()
    try:
        config = CassandraConfig(("127.0.0.1",), "system", server.native_port,
                                 username="cassandra", password="cassandra", consistency="ONE",
                                 tls_ca_file=str(tls.ca_file))
        session = config.connect()
        assert session.execute("SELECT release_version FROM system.local").one()[0].startswith(
            "5.0")
        session.cluster.shutdown()
        with pytest.raises(CassandraUnavailable, match="no host answered"):
            dataclasses.replace(config, tls_ca_file=None).connect()
    finally:
        server.stop()
