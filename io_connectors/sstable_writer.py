"""The bulk writer's JVM: Cassandra's own ``CQLSSTableWriter`` and ``SSTableLoader``, one process
per worker, fed Arrow IPC batches over a pipe (``cassandra/sstable-writer``).

Why a JVM: only Cassandra's code writes SSTables that Cassandra reads (the format, the SAI index
components, the streaming protocol). Why one per worker, fed batches: a JVM costs a second and a
few hundred MiB to start, so it lives as long as the worker and serves every bulk write in it
(each on its own channel); a batch crosses the pipe as one Arrow IPC stream, never a row at a
time. Its heap is bounded (``heap``), and so is each writer's buffer.

This module starts and talks to the process; the Beam transform is ``io_connectors.cassandra_bulk``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import threading
from pathlib import Path
from typing import IO, Optional

import pyarrow as pa

from transforms.contract import PlatformError

_LOG = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parents[1]


def build() -> Path:
    """Where the writer's jar and its dependencies (lib/) are: built by `make setup` (mvn
    package of cassandra/sstable-writer) into var/, or ``$CRE_SSTABLE_WRITER`` (an image that
    carries them elsewhere)."""
    return Path(os.environ.get("CRE_SSTABLE_WRITER", PROJECT / "var" / "sstable-writer"))

_HEADER = struct.Struct(">biI")


class BulkLoadFailed(PlatformError):
    """The SSTables of a bulk write could not be written or streamed: the run fails, and the
    vacation stays retryable (a retry writes the same cells again)."""


def unavailable_reason() -> Optional[str]:
    """Why the bulk writer cannot run here (no Java, not built), or None when it can."""
    if shutil.which("java") is None:
        return "no java on the PATH"
    if not (build() / "cre-sstable-writer.jar").is_file():
        return f"the SSTable writer is not built ({build()}: make setup builds it)"
    return None


@dataclasses.dataclass(frozen=True)
class Target:
    """The cluster the SSTables stream to (every replica of each of their ranges)."""

    hosts: list[str]
    native_port: int
    storage_port: int
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    # the SSTable version the servers read: they refuse to start over newer ones
    storage_compatibility_mode: str = "CASSANDRA_4"


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One bulk write of one table: the JVM's ``TableSpec``, field for field (camelCase)."""

    keyspace: str
    table: str
    schema: str  # CREATE TABLE
    indexes: list[str]  # CREATE INDEX: the SSTables carry their SAI components
    insert: str  # INSERT of the columns: the cells a row makes
    write_timestamp: int  # microseconds: one for the whole write
    columns: list[str]
    partition_key: list[str]
    ring: list[int]  # the ring's tokens, ascending
    owners: list[int]  # the replica group of the range ending at each
    tolerated_replica_failures: int  # replicas of a range that may miss it, the load complete
    buffer_mib: int
    target: Target
    directory: str = ""  # where a bundle's SSTables wait for their stream

    def to_json(self) -> bytes:
        return json.dumps(_camel_case(dataclasses.asdict(self))).encode()


def _camel_case(fields: dict) -> dict:
    """Python's field names as the JVM's (``write_timestamp`` -> ``writeTimestamp``)."""
    return {re.sub(r"_(.)", lambda match: match.group(1).upper(), name):
            _camel_case(value) if isinstance(value, dict) else value
            for name, value in fields.items()}


class SSTableWriterProcess:
    """The JVM, its request pipe (one writer at a time) and its replies (a reader thread)."""

    def __init__(self, heap: str):
        reason = unavailable_reason()
        if reason:
            raise BulkLoadFailed(f"bulk load impossible: {reason}")
        self._process = subprocess.Popen(
            ["java", f"-Xmx{heap}", "-XX:+UseParallelGC", "-XX:+ExitOnOutOfMemoryError",
             "-jar", str(build() / "cre-sstable-writer.jar")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._write_lock = threading.Lock()
        self._pending: dict[int, concurrent.futures.Future] = {}
        self._pending_lock = threading.Lock()
        self._channels = itertools.count(1)
        threading.Thread(target=self._read_replies, name="sstable-writer-replies",
                         daemon=True).start()
        threading.Thread(target=self._log_stderr, args=(self._process.stderr,),
                         name="sstable-writer-log", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def open(self, spec: TableSpec) -> int:
        """A new channel writing ``spec``'s table; raises if the JVM refuses it."""
        channel = next(self._channels)
        self._await(self._send(b"O", channel, spec.to_json(), expect_reply=True), spec.table)
        return channel

    def write(self, channel: int, rows: pa.Table) -> None:
        """Sends the rows (columns as the spec's); a data error is reported by ``close``."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as stream:
            stream.write_table(rows)
        self._send(b"D", channel, sink.getvalue())

    def close(self, channel: int, table: str) -> dict:
        """Flushes the channel's last SSTables and waits for all of them to have streamed; the
        JVM's account of it (rows, sstables, bytes, seconds)."""
        return self._await(self._send(b"C", channel, b"", expect_reply=True), table)

    def _send(self, operation: bytes, channel: int, payload, expect_reply: bool = False
              ) -> Optional[concurrent.futures.Future]:
        future = None
        if expect_reply:
            future = concurrent.futures.Future()
            with self._pending_lock:
                self._pending[channel] = future
        with self._write_lock:
            try:
                stdin = self._process.stdin
                stdin.write(_HEADER.pack(operation[0], channel, len(payload)))
                stdin.write(payload)
                stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                raise BulkLoadFailed(f"the SSTable writer (pid {self.pid}) is gone: "
                                     f"exit {self._process.poll()}") from error
        return future

    def _await(self, future: concurrent.futures.Future, table: str) -> dict:
        reply = future.result()
        if not reply.get("ok"):
            raise BulkLoadFailed(f"bulk load of {table}: {reply.get('error')}")
        return reply

    def _read_replies(self) -> None:
        for line in self._process.stdout:
            if not line.startswith(b"{"):  # the JVM's own notices, before main() takes stdout
                _LOG.info("sstable-writer: %s", line.decode(errors="replace").rstrip())
                continue
            reply = json.loads(line)
            with self._pending_lock:
                future = self._pending.pop(reply["channel"], None)
            if future is not None:
                future.set_result(reply)
        with self._pending_lock:  # the JVM ended: nobody waits forever
            for future in self._pending.values():
                future.set_result({"ok": False,
                                   "error": f"the SSTable writer exited ({self._process.wait()})"})
            self._pending.clear()

    @staticmethod
    def _log_stderr(stream: IO[bytes]) -> None:
        for line in stream:
            _LOG.info("sstable-writer: %s", line.decode(errors="replace").rstrip())


class _Processes:
    """One JVM per worker process (and heap), started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: dict[str, SSTableWriterProcess] = {}

    def get(self, heap: str) -> SSTableWriterProcess:
        with self._lock:
            process = self._processes.get(heap)
            if process is None or not process.alive():
                process = self._processes[heap] = SSTableWriterProcess(heap)
            return process


PROCESSES = _Processes()
