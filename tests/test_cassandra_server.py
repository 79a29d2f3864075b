"""The project's own local Cassandra: fetched with Maven, started and stopped by ``cre``, found
again by what its launcher recorded in its home."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port

from io_connectors.cassandra_client import CassandraConfig, CassandraUnavailable
from pipelines.local.cassandra_cluster import Cluster, launched
from pipelines.local.cassandra_server import Server, TlsFiles, cql_answers


def _command_line(pid: int) -> bytes:
    """Empty when no process has that number, or it has exited (a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


@pytest.mark.integration
def test_start_status_stop(cre, tmp_path):
    native, storage = free_port(), free_port()
    home = ["--home", str(tmp_path / "cassandra")]
    args = [*home, "--native-port", str(native), "--storage-port", str(storage)]
    try:
        started = cre("cassandra", "start", *args)
        assert started.code == 0, started.stderr
        assert cql_answers("127.0.0.1", native)
        again = cre("cassandra", "start", *args)  # a second start is harmless
        assert again.code == 0 and cql_answers("127.0.0.1", native)
        status = cre("cassandra", "status", *home)  # the ports start recorded
        assert status.code == 0 and f"answers CQL on 127.0.0.1:{native} (pid " in status.stdout
        pid = int(status.stdout.split("(pid ")[1].rstrip(")\n"))
    finally:
        stopped = cre("cassandra", "stop", *home)
    assert stopped.code == 0 and stopped.stdout == "Cassandra stopped\n"
    assert not _command_line(pid) and not cql_answers("127.0.0.1", native)
    status = cre("cassandra", "status", *home)
    assert status.code == 3
    assert status.stdout == f"Cassandra does not answer CQL on 127.0.0.1:{native} (pid -)\n"
    try:
        restarted = cre("cassandra", "start", *home)  # over its data, on its ports
        assert restarted.code == 0, restarted.stderr
        assert cql_answers("127.0.0.1", native)
    finally:
        assert cre("cassandra", "stop", *home).code == 0


def _stand_in(home: Path) -> subprocess.Popen:
    """A process the launcher takes for the Cassandra daemon of ``home``, as it takes the JVM it
    started: ``-Dcassandra.logdir=<home>`` on its command line, a process group of its own, its
    pid in the home's pid file."""
    home.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                f"-Dcassandra.logdir={home}"], start_new_session=True)
    while not _command_line(process.pid):  # it shows a moment after Popen returns
        time.sleep(0.01)
    (home / "cassandra.pid").write_text(str(process.pid))
    return process


def test_the_launcher_finds_what_it_started(tmp_path):
    single, cluster_home = tmp_path / "single", tmp_path / "cluster"
    homes = (single, cluster_home)
    assert launched(homes=homes) == Server(single)  # nothing started: the single node
    server = Server(single, free_port(), free_port())
    single.mkdir()
    server.save()
    assert launched(single) == server == launched(homes=homes)
    tls = dataclasses.replace(server, home=tmp_path / "tls", tls=TlsFiles(
        tmp_path / "server.p12", "changeit", tmp_path / "ca.pem"))
    tls.home.mkdir()
    tls.save()
    assert Server.saved(tls.home) == tls  # status probes it with TLS
    cluster = Cluster(cluster_home, 3, free_port(), free_port(), free_port())
    cluster.save(replicated=True)
    assert Cluster.saved(cluster_home) == cluster == launched(cluster_home)
    os.utime(server.state_file, (1, 1))
    assert launched(homes=homes) == cluster  # nothing runs: the one started last
    daemon = _stand_in(single)
    stand_ins = [daemon]
    try:
        assert server.pid() == daemon.pid
        assert launched(homes=homes) == server  # what runs comes first
        server.stop()  # SIGTERM to its process group; returns once it has exited
        assert daemon.poll() is not None and server.pid() is None
        server.save()
        node = _stand_in(cluster_home / "node2")
        stand_ins.append(node)
        assert launched(homes=homes) == cluster and cluster.pids() == {2: node.pid}
        assert [(row["node"], row["pid"], row["state"]) for row in cluster.status()] == [
            (1, None, "down"), (2, node.pid, "down"), (3, None, "down")]  # no CQL
        cluster.stop()
        assert node.poll() is not None and not cluster.pids()
    finally:
        for process in stand_ins:
            process.kill()


def test_a_stale_pid_file_names_no_daemon(tmp_path):
    """A pid file outlives its JVM, and its number may since name another process: here this
    test's own, which neither stop nor kill may signal."""
    server = Server(tmp_path)
    server.pid_file.write_text(str(os.getpid()))
    assert server.pid() is None
    server.stop()
    server.kill()


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


@pytest.mark.integration
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
