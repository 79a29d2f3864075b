"""Every option of the pipelines, defined once: the command line, Beam and the Flex Template
metadata all read these definitions."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.avro_blocks import CODECS
from io_connectors.cassandra import CassandraConfig
from transforms import contract

_PROJECT = Path(__file__).resolve().parents[1]  # where a child's relative paths start

_LIMITS = contract.Limits()


class IngestOptions(PipelineOptions):
    """Options of ``cre ingest``: one vacation archive to the zones."""

    REQUIRED = ("input", "zones_root")  # checked by the CLI; argparse cannot (see below)

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        # not required=True: Beam parses every options class for every pipeline in the process
        parser.add_argument("--input",
                            help="The vacation archive BAF_<YYYYMMDD>_<NN>.tar.bz2, local or gs://.")
        parser.add_argument("--zones-root", "--zones_root", dest="zones_root",
                            help="Root of the zones (landing/, proxy_producer/), local or gs://.")
        parser.add_argument("--max-reject-ratio", "--max_reject_ratio", dest="max_reject_ratio",
                            type=float, default=contract.DEFAULT_MAX_REJECT_RATIO,
                            help="Rejected/records above which the vacation is REJECTED.")
        parser.add_argument("--max-members", "--max_members", dest="max_members", type=int,
                            default=_LIMITS.max_members, help="Most members in an archive.")
        parser.add_argument("--max-uncompressed-bytes", "--max_uncompressed_bytes",
                            dest="max_uncompressed_bytes", type=int,
                            default=_LIMITS.max_uncompressed_bytes,
                            help="Most uncompressed bytes in an archive.")
        parser.add_argument("--max-ratio", "--max_ratio", dest="max_ratio", type=float,
                            default=_LIMITS.max_ratio,
                            help="Highest compression ratio (uncompressed/compressed).")
        parser.add_argument("--avro-codec", "--avro_codec", dest="avro_codec", default="snappy",
                            choices=CODECS, help="Codec of the Proxy Producer Avro files.")
        parser.add_argument("--spread", choices=("auto", "on", "off"), default="auto",
                            help="Redistribute the batches after the archive's one reader so "
                            "every worker validates, stages and loads (auto: unless the runner "
                            "has one worker, the in-process DirectRunner, where it would only "
                            "hold the whole vacation in memory).")
        add_outbound_root(parser)
        parser.add_argument("--replay", **FLAG,
                            help="Ingest again an archive already ingested (after a rollback or "
                            "a fix); cre replay sets it. Never over a LOADED vacation.")
        parser.add_argument("--no-deliver", "--no_deliver", dest="no_deliver",
                            **FLAG,
                            help="Do not deliver the Arkea ABS package at the end (cre deliver "
                            "does it later). Without a structured zone nothing is delivered.")

    def limits(self) -> contract.Limits:
        return contract.Limits(self.max_members, self.max_uncompressed_bytes, self.max_ratio)


def flag(text: str) -> bool:
    """A switch that also takes ``=true``/``=false``, as template launchers pass it."""
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{text!r} is neither true nor false")
    return text.lower() == "true"


FLAG = {"nargs": "?", "const": True, "default": False, "type": flag}


def add_outbound_root(parser) -> None:
    parser.add_argument("--outbound-root", "--outbound_root", dest="outbound_root",
                        help="Root of outbound/arkea_abs/, local or gs:// (default: the zones "
                        "root).")


def add_deliver_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the outbound pipeline (``cre deliver`` and its Flex Template)."""
    parser.add_argument("--vacation", required=True, help="The vacation: BAF_<YYYYMMDD>_<NN>.")
    parser.add_argument("--zones-root", "--zones_root", dest="zones_root", required=True,
                        help="Root of the zones, local or gs://.")
    add_outbound_root(parser)
    parser.add_argument("--redeliver", **FLAG,
                        help="Deliver again a vacation already delivered.")


def _flag(name: str) -> tuple[str, str]:
    """``--dashed-name`` for people, ``--underscored_name`` for Beam and templates."""
    return f"--{name.replace('_', '-')}", f"--{name}"


class CassandraOptions(PipelineOptions):
    """Where the structured zone lives; every ``CRE_CASSANDRA_*`` variable is a default."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        env = os.environ.get
        parser.add_argument(*_flag("cassandra_hosts"), dest="cassandra_hosts",
                            default=env("CRE_CASSANDRA_HOSTS"),
                            help="host[:port],... of the structured zone's Cassandra; without "
                            "it (and without --keyspace) no structured zone is written.")
        parser.add_argument("--keyspace", default=env("CRE_CASSANDRA_KEYSPACE"),
                            help="Keyspace of the structured zone (default cre).")
        parser.add_argument(*_flag("cassandra_username"), dest="cassandra_username",
                            default=env("CRE_CASSANDRA_USERNAME"))
        parser.add_argument(*_flag("cassandra_password"), dest="cassandra_password",
                            default=env("CRE_CASSANDRA_PASSWORD"),
                            help="Prefer the CRE_CASSANDRA_PASSWORD variable to this option.")
        parser.add_argument(*_flag("cassandra_consistency"), dest="cassandra_consistency",
                            default=env("CRE_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM"),
                            help="Consistency level of reads and writes.")
        parser.add_argument(*_flag("cassandra_local_dc"), dest="cassandra_local_dc",
                            default=env("CRE_CASSANDRA_LOCAL_DC"),
                            help="The data centre to prefer (default: the contact point's).")
        parser.add_argument(*_flag("cassandra_tls_ca_file"), dest="cassandra_tls_ca_file",
                            default=env("CRE_CASSANDRA_TLS_CA_FILE"),
                            help="CA certificate file: connect with TLS, verifying the server.")
        parser.add_argument(*_flag("cassandra_max_in_flight"), dest="cassandra_max_in_flight",
                            type=int, default=128,
                            help="Most asynchronous writes in flight per writer.")
        parser.add_argument(*_flag("cassandra_batch_rows"), dest="cassandra_batch_rows",
                            type=int, default=64,
                            help="Most rows per unlogged batch (one replica's rows).")
        parser.add_argument("--replication",
                            default=env("CRE_CASSANDRA_REPLICATION", "SimpleStrategy:1"),
                            help="Keyspace replication for `cre db migrate`: SimpleStrategy:<rf> "
                            "or NetworkTopologyStrategy:<dc>=<rf>,...")

    def cassandra_config(self) -> Optional[CassandraConfig]:
        """The structured zone's connection, or None when none is configured."""
        return cassandra_config(self)


def as_arguments(options_class: type[PipelineOptions], namespace: Any) -> list[str]:
    """The options of ``options_class`` set in ``namespace``, as flags again: what a command
    parsed for itself, handed on to the pipeline it runs."""
    parser = argparse.ArgumentParser(add_help=False)
    options_class._add_argparse_args(parser)
    defaults = vars(parser.parse_args([]))
    return [f"--{name}={getattr(namespace, name)}" for name, default in defaults.items()
            if getattr(namespace, name, default) not in (None, default)]


def cassandra_config(options: Any, required: bool = False) -> Optional[CassandraConfig]:
    """The connection the ``CassandraOptions`` attributes of ``options`` describe; the local
    default (127.0.0.1, keyspace cre) when ``required`` and nothing is configured."""
    if not options.cassandra_hosts and not options.keyspace and not required:
        return None
    return CassandraConfig.from_hosts(
        options.cassandra_hosts or "127.0.0.1", options.keyspace or "cre",
        username=options.cassandra_username, password=options.cassandra_password,
        consistency=options.cassandra_consistency, local_dc=options.cassandra_local_dc,
        tls_ca_file=options.cassandra_tls_ca_file)


def cassandra_arguments(config: CassandraConfig, replication: str) -> list[str]:
    """The ``CassandraOptions`` flags that make a child process connect as ``config`` does,
    every one explicit so that nothing comes from the child's environment; never the password,
    which a command line shows to anyone on the machine (pass ``CRE_CASSANDRA_PASSWORD``)."""
    values = {"cassandra_hosts": ",".join(f"{host}:{config.port}" for host in config.hosts),
              "keyspace": config.keyspace, "cassandra_username": config.username,
              "cassandra_consistency": config.consistency,
              "cassandra_local_dc": config.local_dc,
              "cassandra_tls_ca_file": config.tls_ca_file, "replication": replication}
    return [f"--{name}={value}" for name, value in values.items() if value is not None]


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


class MonitoringOptions(PipelineOptions):
    """Where a batch run (``cre ingest``, ``cre deliver``) pushes its metrics when it ends."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--pushgateway", default=os.environ.get("CRE_PUSHGATEWAY"),
                            help="URL of the Prometheus Pushgateway the run pushes its metrics "
                            "to (default $CRE_PUSHGATEWAY; none: nothing is pushed).")
