"""The ``cre`` commands a service runs as its children (the ingest manager's ingests, the
console's replays, redeliveries and recoveries): their command line, their environment, their
logs.

A Beam run (a 20 GiB vacation takes a while) is kept apart from the web server as a child
process, which calls the same ``pipelines.operations`` function as an operator's command. Their
argument lists are written here only, one builder each (``ingest_command``...), so that a
change of a command's flags is a change of this module and of the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from io_connectors.cassandra_client import CassandraConfig
from pipelines.options import CONNECTION

_PROJECT = Path(__file__).resolve().parents[1]  # where a child's relative paths start
_SPELT = {flag.dest: flag.spellings[-1] for flag in CONNECTION}  # as Beam and templates spell it


def cassandra_arguments(config: CassandraConfig) -> list[str]:
    """The ``CassandraOptions`` flags that make a child process connect as ``config`` does,
    every one explicit so that nothing comes from the child's environment; never the password,
    which a command line shows to anyone on the machine (pass ``CRE_CASSANDRA_PASSWORD``)."""
    values = {"cassandra_hosts": ",".join(f"{host}:{config.port}" for host in config.hosts),
              "keyspace": config.keyspace, "cassandra_username": config.username,
              "cassandra_consistency": config.consistency,
              "cassandra_local_dc": config.local_dc,
              "cassandra_tls_ca_file": config.tls_ca_file}
    return [f"{_SPELT[name]}={value}" for name, value in values.items() if value is not None]


def cre_child(config: CassandraConfig, *args: str) -> tuple[list[str], dict[str, str]]:
    """A ``cre`` command run by a service (the ingest manager, the console): its command line,
    with the structured zone's flags last so that nothing before them points it elsewhere, and
    its environment, with the password, where ``ps`` does not show it, and no other inherited
    ``CRE_CASSANDRA_*`` variable."""
    argv = [sys.executable, "-m", "pipelines.commands", *args,
            *cassandra_arguments(config)]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CRE_CASSANDRA_")}
    if config.password is not None:
        env["CRE_CASSANDRA_PASSWORD"] = config.password
    return argv, env


def ingest_command(landed_path: str, zones_root: str, profile: Mapping[str, Any],
                   lease_seconds: Optional[float] = None) -> list[str]:
    """``cre ingest`` of a landed archive into ``zones_root``: the tenant's runner profile
    first (its ``runner``, by default DirectRunner, then its Beam options), so that the zones,
    the service's lease and the structured zone given after it win."""
    options = dict(profile)
    lease = [] if lease_seconds is None else [f"--lease-seconds={lease_seconds:g}"]
    return ["ingest", f"--runner={options.pop('runner', 'DirectRunner')}",
            *(f"--{key}={value}" for key, value in options.items()),
            "--input", landed_path, "--zones-root", zones_root, *lease]


def replay_command(vacation_id: str, zones_root: str) -> list[str]:
    """``cre replay``: the vacation ingested again from its landing copy, in ``zones_root``."""
    return ["replay", vacation_id, "--zones-root", zones_root]


def redeliver_command(vacation_id: str, zones_root: str) -> list[str]:
    """``cre deliver --redeliver``: the vacation's package built and sent again; its JSON
    result the log's last line."""
    return ["deliver", "--vacation", vacation_id, "--zones-root", zones_root, "--redeliver",
            "--json"]


def recover_command(zones_root: str) -> list[str]:
    """``cre recover`` of every vacation crashed runs left; its JSON steps the log's last
    line."""
    return ["recover", "--zones-root", zones_root, "--json"]


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
