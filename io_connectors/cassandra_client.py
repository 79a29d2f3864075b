"""The product's Cassandra client: where and how to connect, one session per process, and which
of the driver's errors are worth another try.

What belongs here: ``CassandraConfig`` (hosts, keyspace, credentials, TLS, consistency;
picklable, so DoFns carry it to workers), ``SESSIONS`` (one cluster connection per process and
config, shared by all its users, the heap frozen for the garbage collector when it opens), the
driver's errors sorted (``RETRYABLE``, ``TRANSIENT``, ``UNREACHABLE``; ``transient`` and
tenacity's ``retry_if_retryable`` and ``retry_if_transient`` add what the server misnames),
``retry_transient``, ``describe_error`` and ``CassandraUnavailable``: whatever opens a
session, sorts an error or retries a call.

Why apart from the Beam connector (``io_connectors.cassandra``, which builds on this module):
most users of the database are not transforms. The ledger, the schema migrations, the
structured zone, the local cluster tools, the service and the command line need a session and
its retries, not Beam, and this module does not import Beam. Whatever reads or writes
PCollections belongs to the connector.
"""

from __future__ import annotations

import dataclasses
import gc
import ssl
import threading
from typing import Any, Optional

import tenacity
from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    Unauthorized,
    Unavailable,
    WriteFailure,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import tuple_factory

from transforms.contract import PlatformError

__all__ = ["CassandraConfig", "CassandraUnavailable", "RESTART_SECONDS", "RETRYABLE", "SESSIONS",
           "TRANSIENT", "UNREACHABLE", "auth_lookup_failed", "describe_error",
           "retry_if_retryable", "retry_if_transient", "retry_transient", "transient"]

# what a write may be sent again after: the request, not the data, failed
RETRYABLE = (WriteTimeout, Unavailable, OperationTimedOut, OverloadedErrorMessage,
             IsBootstrappingErrorMessage, WriteFailure, ConnectionException, NoHostAvailable)
# what a cluster losing or regaining a node answers for a while: reads too
TRANSIENT = (*RETRYABLE, ReadTimeout, ReadFailure)
# a cluster that cannot be reached at all, rather than one answering slowly
UNREACHABLE = (NoHostAvailable, ConnectionException)


def auth_lookup_failed(error: BaseException) -> bool:
    """A node whose own read of ``system_auth`` (the role's superuser status, its permissions)
    timed out or lacked replicas answers Unauthorized, though it never judged the request: a
    node just lost and not yet known down, whose replica the read still waited for."""
    return isinstance(error, Unauthorized) and "Unable to perform authori" in str(error)


def transient(error: BaseException) -> bool:
    """Whether another try may cure ``error``: a ``TRANSIENT`` type, or a timeout Cassandra
    names Unauthorized (``auth_lookup_failed``)."""
    return isinstance(error, TRANSIENT) or auth_lookup_failed(error)


# tenacity's predicates: writes are sent again after ``RETRYABLE`` errors, and after the
# timeouts Cassandra names Unauthorized; idempotent work after any ``transient`` one
retry_if_retryable = tenacity.retry_if_exception(
    lambda error: isinstance(error, RETRYABLE) or auth_lookup_failed(error))
retry_if_transient = tenacity.retry_if_exception(transient)


# how long a load's requests are sent again through transient errors: longer than a node's
# restart, so that a rolling restart fails no load (the sink's default too)
RESTART_SECONDS = 300.0


def retry_transient(attempts: int = 6, max_wait: float = 30, seconds: Optional[float] = None):
    """A tenacity decorator: the call again, with exponential backoff, on transient errors
    (``retry_if_transient``), ``attempts`` times or, given, for ``seconds``; for idempotent
    work (reads, deletes, conditional writes that check themselves)."""
    return tenacity.retry(retry=retry_if_transient,
                          wait=tenacity.wait_exponential(multiplier=1, max=max_wait),
                          stop=(tenacity.stop_after_attempt(attempts) if seconds is None
                                else tenacity.stop_after_delay(seconds)), reraise=True)


class CassandraUnavailable(PlatformError):
    """The cluster cannot be reached or refuses our credentials: a platform failure."""


@dataclasses.dataclass(frozen=True)
class CassandraConfig:
    """Where and how to connect; picklable, so DoFns carry it to workers."""

    hosts: tuple[str, ...]
    keyspace: str
    port: int = 9042
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    consistency: str = "LOCAL_QUORUM"
    local_dc: Optional[str] = None
    tls_ca_file: Optional[str] = None
    connect_timeout: float = 10.0
    request_timeout: float = 20.0

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("at least one Cassandra host is required")
        if not hasattr(ConsistencyLevel, self.consistency):
            raise ValueError(f"unknown consistency level {self.consistency!r}")

    @classmethod
    def from_hosts(cls, hosts: str, keyspace: str, **kwargs: Any) -> CassandraConfig:
        """Parses ``host[:port],host[:port]``; every host shares one port (a driver rule)."""
        names, ports = [], set()
        for entry in filter(None, (part.strip() for part in hosts.split(","))):
            name, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
            names.append(name)
            if port:
                ports.add(int(port))
        if len(ports) > 1:
            raise ValueError(f"hosts must share one port, got {sorted(ports)}")
        if ports:
            kwargs["port"] = ports.pop()
        return cls(tuple(names), keyspace, **kwargs)

    @property
    def consistency_level(self) -> int:
        return getattr(ConsistencyLevel, self.consistency)

    def describe(self) -> str:
        return f"{','.join(self.hosts)}:{self.port}/{self.keyspace}"

    def cluster(self) -> Cluster:
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=self.local_dc))
        profile = ExecutionProfile(load_balancing_policy=policy,
                                   consistency_level=self.consistency_level,
                                   # the ledger's conditional writes: Paxos among the local
                                   # data centre's replicas, as LOCAL_QUORUM for the others
                                   serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
                                   request_timeout=self.request_timeout,
                                   row_factory=tuple_factory)
        auth = (PlainTextAuthProvider(self.username, self.password or "")
                if self.username else None)
        tls = None
        if self.tls_ca_file:
            tls = ssl.create_default_context(cafile=self.tls_ca_file)
        return Cluster(list(self.hosts), port=self.port, auth_provider=auth, ssl_context=tls,
                       execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                       connect_timeout=self.connect_timeout, protocol_version=5,
                       # a DDL returns once every node up has the new schema: a node just
                       # back in a busy cluster takes longer than the driver's 10 s
                       max_schema_agreement_wait=60)

    def connect(self, keyspace: Optional[str] = None):
        """A session, or ``CassandraUnavailable`` with one line saying why."""
        cluster = self.cluster()
        try:
            return cluster.connect(keyspace)
        except Exception as error:  # the driver raises several types for one cause
            cluster.shutdown()
            raise CassandraUnavailable(
                f"cannot use Cassandra at {self.describe()}: {describe_error(error)}") from error


def describe_error(error: Exception) -> str:
    """One line saying why a request or a connection failed, for logs and dead letters."""
    if isinstance(error, NoHostAvailable) and not isinstance(error.errors, dict):
        return f"{error.args[0]} (does the keyspace exist? cre db migrate creates it)"
    if isinstance(error, NoHostAvailable):
        causes = list(error.errors.values())
        if any(isinstance(cause, AuthenticationFailed) for cause in causes):
            return "authentication failed (check the username and password)"
        if causes:
            return f"no host answered ({describe_error(causes[0])})"
        return "no host answered"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


class _SharedSessions:
    """One cluster connection per process and config, shared by every DoFn that uses it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[CassandraConfig, list] = {}

    def acquire(self, config: CassandraConfig):
        with self._lock:
            entry = self._sessions.get(config)
            if entry is None:
                entry = self._sessions[config] = [config.connect(config.keyspace), 0]
                # every request leaves the driver's future as cyclic garbage (its timer calls
                # back into it), so full collections come often; frozen, the heap so far
                # (modules, Beam's graph, the cluster's metadata) is not walked by each one:
                # 1M-row load, 12.3 -> 1.9 s of full collections, client CPU 64 -> 44 s.
                # Collected first, so a worker reopening sessions never freezes garbage.
                gc.collect()
                gc.freeze()
            entry[1] += 1
            return entry[0]

    def release(self, config: CassandraConfig) -> None:
        with self._lock:
            entry = self._sessions.get(config)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._sessions[config]
                entry[0].cluster.shutdown()


SESSIONS = _SharedSessions()
