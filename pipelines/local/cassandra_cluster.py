"""A local Cassandra cluster: several nodes of one data centre on the loopback addresses
127.0.0.1, 127.0.0.2, ..., for the faults a cluster has (a node down, two down, a rolling
restart) and what the product promises through them.

Every node listens on the same ports of its own address, keeps its data, log and JMX port apart
(``<home>/node<N>``, JMX on ``jmx_port + N``), and names node 1 as its seed. The cluster is
created empty, so the nodes join at once without streaming. Node administration goes through
Cassandra's own ``nodetool``, from the same jars.

``start`` records the cluster in ``<home>/cluster.json`` (its size, ports, and whether its system
keyspaces are replicated yet), each node its own in ``<home>/node<N>/server.json``; ``launched``
finds what was started from them, so ``cre cassandra status|stop|start`` need no flag again.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import tenacity
from cassandra import Unauthorized

from pipelines.local.cassandra_server import DEFAULT_HOME as SERVER_HOME
from pipelines.local.cassandra_server import (
    DEFAULT_USER,
    PROJECT,
    Server,
    jvm_options,
    stop_servers,
)

DEFAULT_HOME = PROJECT / "var" / "cassandra-cluster"
DATACENTER = "dc1"
# what Cassandra keeps itself and a login needs: replicated like the data, or one node down
# refuses every login whose role lives on it
SYSTEM_KEYSPACES = ("system_auth", "system_distributed", "system_traces")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """``nodes`` local nodes; node ``n`` (from 1) listens on ``127.0.0.<n>``."""

    home: Path = DEFAULT_HOME
    nodes: int = 3
    native_port: int = 9042
    storage_port: int = 7000
    jmx_port: int = 7199  # node n: jmx_port + n
    heap: str = "768m"

    def node(self, number: int) -> Server:
        if not 1 <= number <= self.nodes:
            raise ValueError(f"node must be 1 to {self.nodes}, not {number}")
        return Server(self.home / f"node{number}", self.native_port, self.storage_port,
                      self.heap, address=f"127.0.0.{number}", seed="127.0.0.1",
                      datacenter=DATACENTER, jmx_port=self.jmx_port + number)

    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @classmethod
    def saved(cls, home: Path = DEFAULT_HOME) -> Cluster | None:
        """The cluster ``start`` created in ``home``, with its size and ports."""
        try:
            state = json.loads((home / "cluster.json").read_text())
        except FileNotFoundError:
            return None
        state.pop("replicated", None)
        return cls(home, **state)

    def _replicated(self) -> bool:
        """Whether ``start`` replicated the system keyspaces (a state file older than this flag:
        it did, at the cluster's creation)."""
        try:
            return json.loads(self.state_file.read_text()).get("replicated", True)
        except FileNotFoundError:
            return False

    def save(self, replicated: bool) -> None:
        """Records the cluster in ``state_file`` (``start`` does)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(
            {**{field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name != "home"}, "replicated": replicated}))

    @property
    def numbers(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def hosts(self) -> str:
        """The contact points, as ``CRE_CASSANDRA_HOSTS`` takes them."""
        return ",".join(f"127.0.0.{number}:{self.native_port}" for number in self.numbers)

    def start(self, number: int | None = None, timeout: float = 300.0) -> None:
        """Starts every node that does not run, or only node ``number``; returns once they
        answer CQL and the default superuser's login.

        The seed first, until it answers CQL: a node's first gossip (its shadow round) asks the
        seed, and a node no seed answers within the ring delay exits. Then the others together,
        and only then the logins are waited for: over data, the superuser's login reads
        ``system_auth`` at QUORUM, two of its three replicas, which the seed alone is not. A new
        seed waits for its login first (it creates the superuser), as the others join empty.
        """
        if number is not None:
            self.node(number).start(timeout)
            return
        replicated = self._replicated()
        self.save(replicated)
        seed = self.node(1)
        launched: dict[Server, subprocess.Popen | None] = {}
        if not seed.running():
            new = not (seed.home / "data").exists()
            launched[seed] = None if seed.pid() else seed.launch()
            seed.wait(launched[seed], timeout, login=new)
        for server in map(self.node, self.numbers[1:]):
            if not server.running():
                launched[server] = None if server.pid() else server.launch()
        for server, process in launched.items():
            server.wait(process, timeout)
        if not replicated:
            self._replicate_system_keyspaces()
            self.save(True)

    def stop(self, number: int | None = None) -> None:
        """Stops node ``number``, or every node together; returns once their JVMs exited."""
        stop_servers([self.node(number)] if number else map(self.node, self.numbers))

    def kill(self, number: int) -> None:
        """SIGKILL, as a crash or a lost machine would."""
        self.node(number).kill()

    def running(self) -> list[int]:
        """The nodes that answer CQL."""
        return [number for number in self.numbers if self.node(number).running()]

    def pids(self) -> dict[int, int]:
        """The nodes whose JVM runs, and its pid."""
        return {number: pid for number in self.numbers
                if (pid := self.node(number).pid()) is not None}

    def nodetool(self, *args: str, node: int | None = None) -> str:
        """Cassandra's nodetool against a running node (the first, unless ``node``)."""
        number = node or next(iter(self.running()), 1)
        server = self.node(number)
        completed = subprocess.run(
            ["java", "-Xmx256m", *jvm_options(), "-cp", f"{server.jars()}/*",
             "-Dlogback.configurationFile=logback-tools.xml",
             "org.apache.cassandra.tools.NodeTool", "-h", "127.0.0.1",
             "-p", str(server.jmx_port), *args],
            capture_output=True, text=True, timeout=300)
        if completed.returncode != 0:
            raise RuntimeError(f"nodetool {' '.join(args)} on node {number}: "
                               f"{(completed.stderr or completed.stdout).strip()[:500]}")
        return completed.stdout

    def status(self) -> list[dict]:
        """Each node: address, CQL port, pid, and up or down, load and ownership as ``nodetool
        status`` sees them (up or down as its CQL port answers, when no node's does)."""
        try:
            gossip = self._gossip() if self.running() else {}
        except RuntimeError:  # nodetool: JMX not up yet
            gossip = {}
        rows = []
        for number in self.numbers:
            server = self.node(number)
            seen = gossip.get(number) or {
                "state": "up" if server.running() else "down", "load": None, "owns": None}
            rows.append({"node": number, "address": server.address, "port": server.native_port,
                         "pid": server.pid(), **seen})
        return rows

    def _gossip(self) -> dict[int, dict]:
        """``nodetool status``: each node's state, load and ownership."""
        rows = {}
        for line in self.nodetool("status").splitlines():
            match = re.match(r"^([UD])([NLJM])\s+(\S+)\s+(.+?)\s+\d+\s+(\S+%|\?)\s", line)
            if match:
                address = match.group(3).split(":")[0]
                rows[int(address.rsplit(".", 1)[1])] = {
                    "state": {"U": "up", "D": "down"}[match.group(1)]
                    + ("" if match.group(2) == "N" else f" ({match.group(2)})"),
                    "load": match.group(4), "owns": match.group(5)}
        return rows

    def _replicate_system_keyspaces(self) -> None:
        from io_connectors.cassandra_client import CassandraConfig

        config = CassandraConfig(tuple(f"127.0.0.{n}" for n in self.numbers), "system",
                                 self.native_port, username=DEFAULT_USER, password=DEFAULT_USER,
                                 consistency="ONE")
        session = config.connect()
        # the default superuser's rights reach every node a few seconds after it can log in
        alter = tenacity.retry(retry=tenacity.retry_if_exception_type(Unauthorized),
                               wait=tenacity.wait_fixed(2), stop=tenacity.stop_after_delay(60),
                               reraise=True)(session.execute)
        try:
            factor = min(self.nodes, 3)
            for keyspace in SYSTEM_KEYSPACES:
                alter(f"ALTER KEYSPACE {keyspace} WITH replication = "
                      f"{{'class': 'NetworkTopologyStrategy', '{DATACENTER}': {factor}}}",
                      timeout=120)
        finally:
            session.cluster.shutdown()
        self.nodetool("repair", "--full", "system_auth")


def launched(home: Path | None = None,
             homes: tuple[Path, Path] = (SERVER_HOME, DEFAULT_HOME)) -> Server | Cluster:
    """What ``start`` created in ``home``: its cluster, else its node. Without a home, of the
    default ``homes`` (the single node's, the cluster's) the one whose JVMs run, else the one
    started last, else the single node."""
    if home is not None:
        return Cluster.saved(home) or Server.saved(home) or Server(home)
    single, cluster = Server.saved(homes[0]) or Server(homes[0]), Cluster.saved(homes[1])

    def recency(found: Server | Cluster) -> tuple[bool, float]:
        runs = bool(found.pid() if isinstance(found, Server) else found.pids())
        try:
            return runs, found.state_file.stat().st_mtime
        except FileNotFoundError:
            return runs, 0.0

    return max((single, cluster) if cluster else (single,), key=recency)
