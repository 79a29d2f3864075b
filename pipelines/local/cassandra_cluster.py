"""A local Cassandra cluster: several nodes of one data centre on the loopback addresses
127.0.0.1, 127.0.0.2, ..., for the faults a cluster has (a node down, two down, a rolling
restart) and what the product promises through them.

Every node listens on the same ports of its own address, keeps its data, log and JMX port apart
(``<home>/node<N>``, JMX on ``jmx_port + N``), and names node 1 as its seed. The cluster is
created empty, so the nodes join at once without streaming. Node administration goes through
Cassandra's own ``nodetool``, from the same jars.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import tenacity
from cassandra import Unauthorized

from pipelines.local.cassandra_server import DEFAULT_USER, PROJECT, Server, jvm_options

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

    @classmethod
    def saved(cls, home: Path = DEFAULT_HOME) -> Cluster | None:
        """The cluster ``start`` created in ``home``, with its size and ports."""
        try:
            return cls(home, **json.loads((home / "cluster.json").read_text()))
        except FileNotFoundError:
            return None

    @property
    def numbers(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def hosts(self) -> str:
        """The contact points, as ``CRE_CASSANDRA_HOSTS`` takes them."""
        return ",".join(f"127.0.0.{number}:{self.native_port}" for number in self.numbers)

    def start(self, number: int | None = None, timeout: float = 300.0) -> None:
        """Starts every node that does not run (the seed first, then the others together), or
        only node ``number``; returns once they answer CQL."""
        if number is not None:
            self.node(number).start(timeout)
            return
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "cluster.json").write_text(json.dumps(
            {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
             if field.name != "home"}))
        seed = self.node(1)
        created = not seed.running()
        seed.start(timeout)
        waiting = [(server, server.launch()) for server in map(self.node, self.numbers[1:])
                   if not server.running()]
        for server, process in waiting:
            server.wait(process, timeout)
        if created:
            self._replicate_system_keyspaces()

    def stop(self, number: int | None = None) -> None:
        for server in [self.node(number)] if number else map(self.node, self.numbers):
            server.stop()

    def kill(self, number: int) -> None:
        """SIGKILL, as a crash or a lost machine would."""
        self.node(number).kill()

    def running(self) -> list[int]:
        return [number for number in self.numbers if self.node(number).running()]

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
        """Each node as ``nodetool status`` sees it: address, up or down, load, ownership."""
        if not self.running():
            return [{"node": number, "address": f"127.0.0.{number}", "state": "down",
                     "load": None, "owns": None} for number in self.numbers]
        rows = []
        for line in self.nodetool("status").splitlines():
            match = re.match(r"^([UD])([NLJM])\s+(\S+)\s+(.+?)\s+\d+\s+(\S+%|\?)\s", line)
            if match:
                address = match.group(3).split(":")[0]
                rows.append({"node": int(address.rsplit(".", 1)[1]), "address": address,
                             "state": {"U": "up", "D": "down"}[match.group(1)]
                             + ("" if match.group(2) == "N" else f" ({match.group(2)})"),
                             "load": match.group(4), "owns": match.group(5)})
        return sorted(rows, key=lambda row: row["node"])

    def _replicate_system_keyspaces(self) -> None:
        from io_connectors.cassandra import CassandraConfig

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
