"""A local Apache Cassandra 5.0 node, started by the project itself: alone, or one node of a
local cluster (``pipelines.local.cassandra_cluster``).

Maven Central has the ``cassandra-all`` jars but no 5.x binary tarball, so the jars are fetched
with Maven (``cassandra/pom.xml``, cached under the server's home) and
``org.apache.cassandra.service.CassandraDaemon`` runs on the machine's Java 17 with the options
of Cassandra's own ``jvm17-server.options`` and the jamm agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import ssl
import string
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "cassandra"
DEFAULT_HOME = PROJECT / "var" / "cassandra"
JARS = PROJECT / "var" / "cassandra-lib"  # shared by every home: fetched once per machine
DEFAULT_USER = DEFAULT_PASSWORD = "cassandra"  # a local development server's superuser
PROCFS = Path("/proc/self")


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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (an exited child of ours is reaped)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    if not PROCFS.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        state = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited


def _runs_daemon_of(pid: int, home: Path) -> bool:
    """Whether process ``pid`` is the Cassandra daemon of ``home`` (its ``cassandra.logdir``): a
    pid file outlives its process (a crash, a reboot) and its number may since name another."""
    if not _alive(pid):
        return False
    if not PROCFS.exists():  # the number alone
        return True
    proc = Path("/proc", str(pid))
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(proc / "cwd"))
    except OSError:
        return False
    prefix = b"-Dcassandra.logdir="
    return any((cwd / os.fsdecode(arg[len(prefix):])).resolve() == home.resolve()
               for arg in args if arg.startswith(prefix))


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

    def __post_init__(self) -> None:  # the JVM is given file:// URLs and absolute folders
        object.__setattr__(self, "home", Path(self.home).resolve())

    @property
    def pid_file(self) -> Path:
        return self.home / "cassandra.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def state_file(self) -> Path:
        """What ``launch`` started in the home (address, ports, heap, TLS files), for the
        commands that find it there; its time is the last start's."""
        return self.home / "server.json"

    @classmethod
    def saved(cls, home: Path) -> Optional[Server]:
        """The node last launched in ``home``, as its state file has it."""
        try:
            state = json.loads((home / "server.json").read_text())
        except FileNotFoundError:
            return None
        tls = state.pop("tls", None)
        return cls(home, **state, tls=tls and TlsFiles(
            Path(tls["keystore"]), tls["password"], Path(tls["ca_file"])))

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
        """The pid of the home's daemon, None when it does not run."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _runs_daemon_of(pid, self.home) else None

    def running(self) -> bool:
        return cql_answers(self.address, self.native_port,
                           tls_ca_file=self.tls.ca_file if self.tls else None)

    def start(self, timeout: float = 240.0) -> None:
        """Starts the server and returns once CQL answers; harmless when it already runs (or
        its JVM is still starting: then it waits for that one)."""
        if not self.running():
            self.wait(None if self.pid() else self.launch(), timeout)

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
        self.save()
        return process

    def save(self) -> None:
        """Records the node in its home's ``state_file`` (``launch`` does, at every start)."""
        self.state_file.write_text(json.dumps(
            {name: value for name, value in dataclasses.asdict(self).items() if name != "home"},
            default=str))

    def wait(self, process: Optional[subprocess.Popen] = None, timeout: float = 240.0,
             login: bool = True) -> None:
        """Returns once the server answers CQL and, with ``login``, the default superuser's
        login; stops it if it never does. ``process``: what ``launch`` returned, else the home's
        daemon."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None if process else self.pid() is None:
                code = f" with {process.returncode}" if process else ""
                raise RuntimeError(f"Cassandra exited{code}; see {self.log_file}")
            if self.running() and (not login or self._accepts_login()):
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"Cassandra did not answer CQL within {timeout:.0f} s; "
                           f"see {self.log_file}")

    def _accepts_login(self) -> bool:
        """The default superuser exists a moment after CQL first answers."""
        from io_connectors.cassandra_client import CassandraConfig, CassandraUnavailable

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
        stop_servers([self], 0, signal.SIGKILL)

    def stop(self, timeout: float = 60.0) -> None:
        stop_servers([self], timeout)


def stop_servers(servers: Iterable[Server], timeout: float = 60.0,
                 first: signal.Signals = signal.SIGTERM) -> None:
    """Stops the servers' daemons together (SIGTERM: each flushes and leaves gossip), SIGKILL to
    those still there after ``timeout`` seconds; returns once every one has exited."""
    running = {server: pid for server in servers if (pid := server.pid()) is not None}
    for pid in running.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, first)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(_alive, running.values())):
        time.sleep(0.2)
    for pid in running.values():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    while any(map(_alive, running.values())):
        time.sleep(0.1)
    for server in running:
        server.pid_file.unlink(missing_ok=True)
