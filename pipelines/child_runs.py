"""The ``cre`` commands a service runs as its children (the ingest manager's ingests, the
console's actions): their command line, their environment, their logs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from io_connectors.cassandra_client import CassandraConfig
from pipelines.options import CASSANDRA

_PROJECT = Path(__file__).resolve().parents[1]  # where a child's relative paths start
_SPELT = {flag.dest: flag.spellings[-1] for flag in CASSANDRA}  # as Beam and templates spell it


def cassandra_arguments(config: CassandraConfig, replication: str) -> list[str]:
    """The ``CassandraOptions`` flags that make a child process connect as ``config`` does,
    every one explicit so that nothing comes from the child's environment; never the password,
    which a command line shows to anyone on the machine (pass ``CRE_CASSANDRA_PASSWORD``)."""
    values = {"cassandra_hosts": ",".join(f"{host}:{config.port}" for host in config.hosts),
              "keyspace": config.keyspace, "cassandra_username": config.username,
              "cassandra_consistency": config.consistency,
              "cassandra_local_dc": config.local_dc,
              "cassandra_tls_ca_file": config.tls_ca_file, "replication": replication}
    return [f"{_SPELT[name]}={value}" for name, value in values.items() if value is not None]


def cre_child(config: CassandraConfig, replication: str,
              *args: str) -> tuple[list[str], dict[str, str]]:
    """A ``cre`` command run by a service (the ingest manager, the console): its command line,
    with the structured zone's flags last so that nothing before them points it elsewhere, and
    its environment, with the password, where ``ps`` does not show it, and no other inherited
    ``CRE_CASSANDRA_*`` variable."""
    argv = [sys.executable, "-m", "pipelines.commands.cli", *args,
            *cassandra_arguments(config, replication)]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CRE_CASSANDRA_")}
    if config.password is not None:
        env["CRE_CASSANDRA_PASSWORD"] = config.password
    return argv, env


def child_log_dir() -> Path:
    """Where a service's ``cre`` children write their logs: ``$CRE_MANAGER_LOG_DIR``, else the
    temporary folder."""
    return Path(os.environ.get("CRE_MANAGER_LOG_DIR", tempfile.gettempdir()))


def launch_child(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Starts a ``cre_child`` command from the project's folder, its output appended to
    ``log``."""
    with open(log, "ab") as out:  # the child keeps it open
        return subprocess.Popen(argv, cwd=_PROJECT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
