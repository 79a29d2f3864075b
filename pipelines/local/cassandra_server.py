"""A local Apache Cassandra 5.0 node, started by the project itself: alone, or one node of a
local cluster (``pipelines.local.cassandra_cluster``).

Maven Central has the ``cassandra-all`` jars but no 5.x binary tarball, so the jars are fetched
with Maven (``cassandra/pom.xml``, cached under the server's home) and
``org.apache.cassandra.service.CassandraDaemon`` runs on the machine's Java 17 with the options
of Cassandra's own ``jvm17-server.options`` and the jamm agent.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import ssl
import string
import subprocess
import time
from pathlib import Path
from typing import Optional

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "cassandra"
DEFAULT_HOME = PROJECT / "var" / "cassandra"
JARS = PROJECT / "var" / "cassandra-lib"  # shared by every home: fetched once per machine
DEFAULT_USER = DEFAULT_PASSWORD = "cassandra"  # a local development server's superuser


def cql_answers(host: str, port: int, timeout: float = 2.0,
                tls_ca_file: Optional[Path] = None) -> bool:
    """Whether a CQL server answers an OPTIONS request (protocol v4) with SUPPORTED."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            connection = raw
            if tls_ca_file:
                context = ssl.create_default_context(cafile=str(tls_ca_file))
                connection = context.wrap_socket(raw, server_hostname=host)
            connection.sendall(bytes([0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]))
            header = connection.recv(9)
    except OSError:
        return False
    return len(header) == 9 and header[0] == 0x84 and header[4] == 0x06


def jvm_options() -> list[str]:
    """Cassandra's own options for Java 17 (``jvm17-server.options``): its daemon and its tools
    (nodetool) need the same module exports."""
    return [line for line in (TEMPLATES / "jvm17.options").read_text().splitlines()
            if line and not line.startswith("#")]


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The server's PKCS12 keystore, and the CA certificate (PEM) clients verify it with."""

    keystore: Path
    password: str
    ca_file: Path


@dataclasses.dataclass(frozen=True)
class Server:
    """A local node's home folder, address and ports.

    Alone it is its own seed with SimpleSnitch; a node of a cluster names the cluster's seed and
    its data centre (GossipingPropertyFileSnitch, one rack) and has a JMX port of its own, for
    nodetool.
    """

    home: Path = DEFAULT_HOME
    native_port: int = 9042
    storage_port: int = 7000
    heap: str = "1g"
    tls: Optional[TlsFiles] = None  # clients must then connect with TLS
    address: str = "127.0.0.1"
    seed: Optional[str] = None  # the seed's address; None: this node
    datacenter: Optional[str] = None  # None: SimpleSnitch's datacenter1
    jmx_port: int = 0  # 0: none

    @property
    def pid_file(self) -> Path:
        return self.home / "cassandra.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def jars(self) -> Path:
        """The server's jars, fetched once with Maven."""
        lib = JARS
        marker = lib / ".complete"
        if not marker.exists():
            lib.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["mvn", "-q", "-B", "-f", str(TEMPLATES / "pom.xml"),
                 "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
                check=True)
            marker.touch()
        return lib

    def pid(self) -> Optional[int]:
        try:
            pid = int(self.pid_file.read_text())
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it if it is our own child and has exited
            except ChildProcessError:
                pass
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return cql_answers(self.address, self.native_port,
                           tls_ca_file=self.tls.ca_file if self.tls else None)

    def start(self, timeout: float = 240.0) -> None:
        """Starts the server and returns once CQL answers; harmless when it already runs."""
        if not self.running():
            self.wait(self.launch(), timeout)

    def launch(self) -> subprocess.Popen:
        """Starts the server's process, without waiting for it (a cluster starts several)."""
        lib = self.jars()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.home / "cassandra.yaml"
        snitch = "SimpleSnitch"
        if self.datacenter:
            snitch = "GossipingPropertyFileSnitch"
            (self.home / "cassandra-rackdc.properties").write_text(
                f"dc={self.datacenter}\nrack=rack1\n")
        text = string.Template((TEMPLATES / "cassandra.yaml").read_text()).substitute(
            data=data, storage_port=self.storage_port, native_port=self.native_port,
            address=self.address, seed=self.seed or self.address, snitch=snitch)
        if self.tls:
            text += ("client_encryption_options:\n  enabled: true\n  optional: false\n"
                     f"  keystore: {self.tls.keystore}\n"
                     f"  keystore_password: {self.tls.password}\n  store_type: PKCS12\n")
        config.write_text(text)
        jamm = next(lib.glob("jamm-*.jar"))
        options = jvm_options()
        command = [
            "java", f"-Xms{self.heap}", f"-Xmx{self.heap}", f"-javaagent:{jamm}", *options,
            f"-Dcassandra.config=file://{config}", "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={data}", f"-Dcassandra.logdir={self.home}",
            f"-Dcassandra.jmx.local.port={self.jmx_port}",
            "-Dcassandra.superuser_setup_delay_ms=0",
            # a new local cluster: the nodes join at once, with no data to stream
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.consistent.rangemovement=false",
            "-cp", f"{self.home}:{lib}/*",  # the home: cassandra-rackdc.properties
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(process.pid))
        return process

    def wait(self, process: subprocess.Popen, timeout: float = 240.0) -> None:
        """Returns once the launched server answers CQL and logins; stops it if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Cassandra exited with {process.returncode}; "
                                   f"see {self.log_file}")
            if self.running() and self._accepts_login():
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"Cassandra did not answer CQL within {timeout:.0f} s; "
                           f"see {self.log_file}")

    def _accepts_login(self) -> bool:
        """The default superuser exists a moment after CQL first answers."""
        from io_connectors.cassandra import CassandraConfig, CassandraUnavailable

        config = CassandraConfig((self.address,), "system", self.native_port,
                                 username=DEFAULT_USER, password=DEFAULT_PASSWORD,
                                 consistency="ONE",
                                 tls_ca_file=str(self.tls.ca_file) if self.tls else None)
        try:
            config.connect().cluster.shutdown()
        except CassandraUnavailable:
            return False
        return True

    def kill(self) -> None:
        """Stops the server abruptly, as a crash would (tests of recovery use it)."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
            self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 60.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.5)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
