"""Every option of the pipelines and of the ``cre`` commands, declared once: a ``Flag`` each,
gathered in groups. Beam's options classes, the commands' parsers and the Flex Template
metadata are all built from these declarations."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.avro_blocks import CODECS
from io_connectors.cassandra_client import CassandraConfig
from pipelines import ledger
from transforms import contract, kernels
from transforms.quality import SEVERITIES

_LIMITS = contract.Limits()


def flag(text: str) -> bool:
    """A switch that also takes ``=true``/``=false``, as template launchers pass it."""
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{text!r} is neither true nor false")
    return text.lower() == "true"


FLAG = {"nargs": "?", "const": True, "default": False, "type": flag}


@dataclasses.dataclass(frozen=True)
class Flag:
    """One option: the attribute it sets, ``add_argument``'s other settings (help, type,
    default...) and the variable whose value, when a parser is built, is its default.

    It is spelt ``--dashed-name`` for people and, when its name has an underscore, also
    ``--underscored_name``, as Beam and the Flex Templates pass it (not ``underscored``: the
    commands that never took that spelling)."""

    dest: str
    settings: Mapping[str, Any]
    env: Optional[str] = None
    underscored: bool = True

    @classmethod
    def of(cls, dest: str, *, env: Optional[str] = None, underscored: bool = True,
           **settings: Any) -> Flag:
        return cls(dest, settings, env, underscored)

    def but(self, *, underscored: Optional[bool] = None, **settings: Any) -> Flag:
        """The same flag with a command's own settings (its help, default, ``required``)."""
        return dataclasses.replace(
            self, settings={**self.settings, **settings},
            underscored=self.underscored if underscored is None else underscored)

    @property
    def spellings(self) -> tuple[str, ...]:
        dashed = "--" + self.dest.replace("_", "-")
        return (dashed, f"--{self.dest}") if self.underscored and "_" in self.dest else (dashed,)

    def add_to(self, parser: argparse.ArgumentParser) -> argparse.Action:
        settings = dict(self.settings)
        if self.env is not None:  # read now, not when this module was imported
            settings["default"] = os.environ.get(self.env, settings.get("default"))
        return parser.add_argument(*self.spellings, dest=self.dest, **settings)


# the flags several commands take (each command may give its own help, default or required)
ZONES_ROOT = Flag.of("zones_root", help="Root of the zones, local or gs://.")
OUTBOUND_ROOT = Flag.of("outbound_root", help="Root of outbound/arkea_abs/, local or gs:// "
                        "(default: the zones root).")
AVRO_CODEC = Flag.of("avro_codec", default="snappy", choices=CODECS,
                     help="Codec of the Proxy Producer Avro files.")
RUNNER = Flag.of("runner", default="DirectRunner", help="The Beam runner.")
JSON = Flag.of("json", action="store_true", help="One JSON document on stdout.")
DRY_RUN = Flag.of("dry_run", underscored=False, action="store_true",
                  help="Only say what would be done.")
TENANTS = Flag.of("tenants", default="var/tenants.json",
                  help="The tenants file (default var/tenants.json).")
OPERATORS = Flag.of("operators", default="var/operators.json",
                    help="The operators file (default var/operators.json).")
LEASE_SECONDS = Flag.of(
    "lease_seconds", type=float, default=ledger.LEASE_SECONDS, env="CRE_LEASE_SECONDS",
    help="How long a run's claim on its vacation (and a service replica's hold on one) lasts "
    "unless renewed; the holder renews it every third of that, so a holder that died, on any "
    "host, is taken over once it lapses (default: $CRE_LEASE_SECONDS, else "
    f"{ledger.LEASE_SECONDS:.0f}).")
PASSWORD_STDIN = Flag.of("password_stdin", underscored=False, action="store_true",
                         help="Read the password from standard input.")

LOAD_MODES = ("auto", "cql", "bulk")
QUALITY_HOLDS = ("none", *SEVERITIES)
# below this, the bulk writer's fixed cost (its JVM, a stream per table) outweighs its speed:
# docs/performance.md, "The structured load: CQL and bulk"
BULK_MIN_ROWS = 100_000

# not required=True: Beam parses every options class for every pipeline in the process
INGEST = (
    Flag.of("input", help="The vacation archive BAF_<YYYYMMDD>_<NN>.tar.bz2, local or gs:// "
            "(required)."),
    ZONES_ROOT.but(help="Root of the zones (landing/, proxy_producer/), local or gs:// "
                   "(required)."),
    Flag.of("max_reject_ratio", type=float, default=contract.DEFAULT_MAX_REJECT_RATIO,
            help="Rejected/records above which the vacation is REJECTED."),
    Flag.of("max_members", type=int, default=_LIMITS.max_members,
            help="Most members in an archive."),
    Flag.of("max_uncompressed_bytes", type=int, default=_LIMITS.max_uncompressed_bytes,
            help="Most uncompressed bytes in an archive."),
    Flag.of("max_ratio", type=float, default=_LIMITS.max_ratio,
            help="Highest compression ratio (uncompressed/compressed)."),
    AVRO_CODEC,
    Flag.of("decoder_threads", type=int, default=0, env="CRE_DECODER_THREADS",
            help="Threads decoding the archive's bzip2 blocks in parallel (default: "
            "$CRE_DECODER_THREADS, else 0: one per core of the worker that reads it; 1: "
            "Python's bz2, one stream after the other)."),
    Flag.of("hot_path", choices=kernels.HOT_PATHS, default="native", env="CRE_HOT_PATH",
            help="Where the per-record work runs (default: $CRE_HOT_PATH, else native): "
            "native, the compiled kernels make setup builds from native/ (the GIL released); "
            "python, the numpy and Arrow reference they are tested equal to."),
    Flag.of("spread", choices=("auto", "on", "off"), default="auto",
            help="Redistribute the batches after the archive's one reader so every worker "
            "validates, stages and loads (auto: unless the runner has one worker, the "
            "in-process DirectRunner, where it would only hold the whole vacation in memory)."),
    Flag.of("load_mode", choices=LOAD_MODES, default="auto", env="CRE_LOAD_MODE",
            help="How the structured zone is written (default: $CRE_LOAD_MODE, else auto): "
            "cql (INSERTs through the servers' write path), bulk (SSTables written by the "
            "workers and streamed to the replicas; needs Java and the writer make setup builds) "
            "or auto (bulk when META.json, the first member, declares at least --bulk-min-rows "
            "records and the writer is available here; else cql). docs/operations.md, "
            "\"Loading the structured zone\"."),
    Flag.of("bulk_min_rows", type=int, default=BULK_MIN_ROWS,
            help="The records from which --load-mode auto loads in bulk."),
    OUTBOUND_ROOT,
    LEASE_SECONDS,
    Flag.of("replay", **FLAG, help="Ingest again an archive already ingested (after a rollback "
            "or a fix); cre replay sets it. Never over a LOADED vacation."),
    Flag.of("no_deliver", **FLAG, help="Do not deliver the Arkea ABS package at the end (cre "
            "deliver does it later). Without a structured zone nothing is delivered."),
    Flag.of("quality", choices=("on", "off"), default="on", env="CRE_QUALITY",
            help="Measure the vacation and judge it against its slot's history (default: "
            "$CRE_QUALITY, else on); off: no metrics, no quality in the summary."),
    Flag.of("quality_settings", env="CRE_QUALITY_SETTINGS",
            help="The data-quality settings, a TOML file as monitoring/quality/settings.toml "
            "(default: $CRE_QUALITY_SETTINGS, else the settings that file spells)."),
    Flag.of("quality_hold", choices=QUALITY_HOLDS, default="none", env="CRE_QUALITY_HOLD",
            help="A finding of this severity or above holds the delivery to Arkea ABS until an "
            "operator releases it from the console (default: $CRE_QUALITY_HOLD, else none: a "
            "finding never holds it)."),
)

# the structured zone's connection: every CRE_CASSANDRA_* variable is a default, and a command
# that needs a structured zone (``cassandra_config(required=True)``) falls back to these
DEFAULT_HOSTS, DEFAULT_KEYSPACE = "127.0.0.1", "cre"
CONNECTION = (
    Flag.of("cassandra_hosts", env="CRE_CASSANDRA_HOSTS",
            help="host[:port],... of the structured zone's Cassandra (default: "
            f"$CRE_CASSANDRA_HOSTS, else {DEFAULT_HOSTS}, port 9042)."),
    Flag.of("keyspace", env="CRE_CASSANDRA_KEYSPACE",
            help="Keyspace of the structured zone (default: $CRE_CASSANDRA_KEYSPACE, else "
            f"{DEFAULT_KEYSPACE})."),
    Flag.of("cassandra_username", env="CRE_CASSANDRA_USERNAME",
            help="The Cassandra role to log in as (default: $CRE_CASSANDRA_USERNAME; none: no "
            "authentication)."),
    Flag.of("cassandra_password", env="CRE_CASSANDRA_PASSWORD",
            help="Its password. Prefer the variable $CRE_CASSANDRA_PASSWORD, the default: a "
            "command line shows in the process list."),
    Flag.of("cassandra_consistency", env="CRE_CASSANDRA_CONSISTENCY", default="LOCAL_QUORUM",
            help="Consistency level of reads and writes (default: $CRE_CASSANDRA_CONSISTENCY, "
            "else LOCAL_QUORUM)."),
    Flag.of("cassandra_local_dc", env="CRE_CASSANDRA_LOCAL_DC",
            help="The data centre to prefer (default: $CRE_CASSANDRA_LOCAL_DC, else the contact "
            "point's)."),
    Flag.of("cassandra_tls_ca_file", env="CRE_CASSANDRA_TLS_CA_FILE",
            help="CA certificate file: connect with TLS, verifying the server (default: "
            "$CRE_CASSANDRA_TLS_CA_FILE; none: plain CQL)."),
)

# the writer's settings: only the commands whose pipeline writes through WriteToCassandra
SINK = (
    Flag.of("cassandra_max_in_flight", type=int, default=128,
            help="Most asynchronous writes in flight per writer."),
    Flag.of("cassandra_batch_rows", type=int, default=64,
            help="Most rows per unlogged batch (one replica's rows)."),
)

CASSANDRA = CONNECTION + SINK

# a keyspace's replication, for the commands that create one (db migrate, restore)
REPLICATION = Flag.of(
    "replication", env="CRE_CASSANDRA_REPLICATION", default="SimpleStrategy:1",
    help="Replication of the keyspace when it is created: SimpleStrategy:<rf> or "
    "NetworkTopologyStrategy:<dc>=<rf>,... (default: $CRE_CASSANDRA_REPLICATION, else "
    "SimpleStrategy:1).")


def connection(hosts: Optional[str] = None, keyspace: Optional[str] = None) -> tuple[Flag, ...]:
    """``CONNECTION`` with a command's own help of ``--cassandra-hosts`` and ``--keyspace``."""
    helps = {"cassandra_hosts": hosts, "keyspace": keyspace}
    return tuple(one.but(help=helps[one.dest]) if helps.get(one.dest) else one
                 for one in CONNECTION)


# an ingest writes a structured zone only when one is configured
INGEST_CONNECTION = connection(
    hosts="host[:port],... of the structured zone's Cassandra (default: $CRE_CASSANDRA_HOSTS). "
    "With neither it nor --keyspace (nor their variables) no structured zone is written: no "
    f"ledger, no delivery; with --keyspace alone, {DEFAULT_HOSTS}, port 9042.",
    keyspace="Keyspace of the structured zone (default: $CRE_CASSANDRA_KEYSPACE; with "
    f"--cassandra-hosts alone, {DEFAULT_KEYSPACE}).")

MONITORING = (
    Flag.of("pushgateway", env="CRE_PUSHGATEWAY",
            help="URL of the Prometheus Pushgateway the run pushes its metrics to (default "
            "$CRE_PUSHGATEWAY; none: nothing is pushed)."),
)

# the outbound pipeline: cre deliver and its Flex Template
DELIVER = (
    Flag.of("vacation", required=True, help="The vacation: BAF_<YYYYMMDD>_<NN>."),
    ZONES_ROOT.but(required=True),
    OUTBOUND_ROOT,
    Flag.of("redeliver", **FLAG, help="Deliver again a vacation already delivered."),
    Flag.of("release", **FLAG, help="Release a delivery a data-quality finding held "
            "(--quality-hold), then deliver; the ledger notes who released it."),
)


def add_flags(parser: argparse.ArgumentParser, *groups: Iterable[Flag]) -> None:
    """Declares on ``parser`` the flags of ``groups``, in their order."""
    for group in groups:
        for one in group:
            one.add_to(parser)


def flag_parser(*groups: Iterable[Flag]) -> argparse.ArgumentParser:
    """A parser of the flags of ``groups`` alone, without ``--help``."""
    parser = argparse.ArgumentParser(add_help=False)
    add_flags(parser, *groups)
    return parser


def values(namespace: Any, *groups: Iterable[Flag]) -> dict[str, Any]:
    """What ``namespace`` (a parsed command line) holds for the flags of ``groups``, by name."""
    return {one.dest: getattr(namespace, one.dest) for group in groups for one in group}


class IngestOptions(PipelineOptions):
    """Options of ``cre ingest``: one vacation archive to the zones."""

    FLAGS = INGEST
    REQUIRED = ("input", "zones_root")  # checked by the CLI; argparse cannot (see INGEST)

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        add_flags(parser, cls.FLAGS)

    def limits(self) -> contract.Limits:
        return contract.Limits(self.max_members, self.max_uncompressed_bytes, self.max_ratio)


def ingest_options(given: Mapping[str, Any], beam_args: Sequence[str] = ()) -> IngestOptions:
    """The options of one ingest, typed: ``given`` by option name, as a command parsed or
    decided them, taken as they are; only ``beam_args`` (the runner's flags, and any ingest
    option ``given`` leaves out) are left for Beam to parse."""
    return PipelineOptions(list(beam_args), **given).view_as(IngestOptions)


class CassandraOptions(PipelineOptions):
    """Where the structured zone lives; every ``CRE_CASSANDRA_*`` variable is a default."""

    FLAGS = CASSANDRA

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        add_flags(parser, cls.FLAGS)

    def cassandra_config(self) -> Optional[CassandraConfig]:
        """The structured zone's connection, or None when none is configured."""
        return cassandra_config(self)


def cassandra_config(options: Any, required: bool = False) -> Optional[CassandraConfig]:
    """The connection the ``CassandraOptions`` attributes of ``options`` describe; the local
    default (127.0.0.1, keyspace cre) when ``required`` and nothing is configured."""
    if not options.cassandra_hosts and not options.keyspace and not required:
        return None
    return CassandraConfig.from_hosts(
        options.cassandra_hosts or DEFAULT_HOSTS, options.keyspace or DEFAULT_KEYSPACE,
        username=options.cassandra_username, password=options.cassandra_password,
        consistency=options.cassandra_consistency, local_dc=options.cassandra_local_dc,
        tls_ca_file=options.cassandra_tls_ca_file)


class MonitoringOptions(PipelineOptions):
    """Where a batch run (``cre ingest``, ``cre deliver``) pushes its metrics when it ends."""

    FLAGS = MONITORING

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        add_flags(parser, cls.FLAGS)
