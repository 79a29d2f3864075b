"""``cre``: the product's one command, with a subcommand per capability."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from io_connectors.cassandra import CassandraUnavailable
from pipelines import backup_commands, collect_commands, recovery, run_metrics, zone_commands
from pipelines.cassandra_server import DEFAULT_HOME as CASSANDRA_HOME
from pipelines.deliver import DeliveryError
from pipelines.flink_cluster import DEFAULT_HOME as FLINK_HOME
from pipelines.flink_cluster import WORKER_POOL_ENV, FlinkUnavailable, runner_arguments
from pipelines.ledger import LedgerConflict
from pipelines.options import CassandraOptions, IngestOptions, MonitoringOptions
from pipelines.schema_migrations import SchemaOutdated
from transforms import contract

_LOG = logging.getLogger("cre")
# failures of the platform, not of the input: one line, exit 1, no traceback
_PLATFORM_ERRORS = (CassandraUnavailable, LedgerConflict, DeliveryError, FlinkUnavailable,
                    SchemaOutdated)


def _generate(args: argparse.Namespace) -> int:
    from pipelines.generator import generate_vacation

    path = generate_vacation(args.out, args.business_date, args.slot, args.cre_rows,
                             args.gesparam_rows, args.seed, encoding=args.encoding)
    print(path)
    return 0


def _ingest(argv: list[str]) -> int:
    from pipelines.ingest import run_ingest

    usage = argparse.ArgumentParser(prog="cre ingest", description=(
        "Lands a vacation archive, checks and validates it, and publishes the Proxy Producer "
        "zone. Any other option is a Beam pipeline option (--runner, ...). Prints the JSON "
        "summary as the last line; exit 0 accepted or duplicate, 3 rejected, 1 failure."))
    IngestOptions._add_argparse_args(usage)
    CassandraOptions._add_argparse_args(usage)
    MonitoringOptions._add_argparse_args(usage)
    usage.add_argument("--runner", default="DirectRunner", help="The Beam runner.")
    known, _ = usage.parse_known_args(argv)  # exits 2 with a message on bad usage
    missing = [name for name in IngestOptions.REQUIRED if not getattr(known, name)]
    if missing:
        usage.error(f"required: {', '.join('--' + name.replace('_', '-') for name in missing)}")
    try:
        vacation_id = known.input.rpartition("/")[2].removesuffix(".tar.bz2")
        with run_metrics.observed(run_metrics.INGEST, vacation_id,
                                  known.pushgateway) as run:
            outcome = run.summary = run_ingest(runner_arguments(argv))
    except _PLATFORM_ERRORS as error:
        _LOG.error("%s", error)
        print(f"cre ingest: error: {error}", file=sys.stderr)
        return contract.EXIT_PLATFORM_FAILURE
    except Exception as error:
        _LOG.exception("the platform failed while ingesting")
        print(f"cre ingest: error: {_first_line(error)}", file=sys.stderr)
        return contract.EXIT_PLATFORM_FAILURE
    print(json.dumps(outcome, ensure_ascii=False), flush=True)
    return contract.EXIT_CODES[outcome["status"]]


def _without_driver_traceback(record: logging.LogRecord) -> bool:
    """The driver logs a traceback for every refused connection: its message says enough."""
    if record.name.startswith("cassandra"):
        record.exc_info = None
        record.exc_text = None
    return True


def _first_line(error: BaseException) -> str:
    """The root cause's first line: Beam wraps a DoFn's error in its own."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _cassandra(args: argparse.Namespace) -> int:
    from pipelines.cassandra_server import Server

    server = Server(Path(args.home), args.native_port, args.storage_port)
    if args.action == "start":
        server.start()
        print(f"Cassandra answers CQL on 127.0.0.1:{server.native_port}")
    elif args.action == "stop":
        server.stop()
        print("Cassandra stopped")
    else:
        running = server.running()
        print(f"Cassandra {'answers' if running else 'does not answer'} CQL on "
              f"127.0.0.1:{server.native_port} (pid {server.pid() or '-'})")
        return 0 if running else 3
    return 0


def _replay(argv: list[str]) -> int:
    from pipelines.ledger import Ledger
    from pipelines.recovery import RecoveryError, replay_arguments

    usage = argparse.ArgumentParser(prog="cre replay", description=(
        "Ingests a vacation again from its landing copy (after cre rollback, or after a fix), "
        "as cre ingest --replay; takes cre ingest's options."))
    usage.add_argument("vacation_id")
    CassandraOptions._add_argparse_args(usage)
    known, _ = usage.parse_known_args(argv)
    try:
        with zone_commands.zone_session(known) as session:
            row = Ledger(session).get(known.vacation_id)
        rest = list(argv)
        rest.remove(known.vacation_id)
        return _ingest(replay_arguments(row, known.vacation_id, rest))
    except (RecoveryError, *_PLATFORM_ERRORS) as error:
        print(f"cre replay: error: {error}", file=sys.stderr)
        return contract.EXIT_PLATFORM_FAILURE


def _flink(args: argparse.Namespace) -> int:
    from pipelines.flink_cluster import Cluster, job_server_jar

    cluster = Cluster(Path(args.home), args.rest_port, args.rpc_port, args.worker_pool_port)
    if args.action == "start":
        cluster.start()
        print(f"Flink {cluster.overview()['flink-version']} offers {cluster.slots} slots on "
              f"{cluster.master}; Beam workers on 127.0.0.1:{cluster.worker_pool_port}")
        try:
            print(f"Beam's Flink job server: {job_server_jar()}")
        except FlinkUnavailable as error:  # the cluster serves; submitting will say this again
            print(f"cre flink: warning: {error}", file=sys.stderr)
    elif args.action == "stop":
        cluster.stop()
        print("Flink stopped")
    else:
        overview = cluster.overview() or {}
        print(f"Flink on {cluster.master}: {overview.get('taskmanagers', 0)} task manager(s), "
              f"{overview.get('slots-available', 0)}/{overview.get('slots-total', 0)} slots "
              f"free, {overview.get('jobs-running', 0)} job(s) running; Beam worker pool "
              f"{'up' if cluster.running() else 'down'}")
        return 0 if cluster.running() else 3
    return 0


def _template(args: argparse.Namespace) -> int:
    from pipelines import flex_templates

    if args.action == "run":
        parameters = dict(item.split("=", 1) for item in args.param)
        print(flex_templates.run_command(args.pipeline, args.bucket, args.region, parameters))
        return 0
    stale = []
    for pipeline in flex_templates.PIPELINES:
        path, text = flex_templates.metadata_path(pipeline), flex_templates.render(pipeline)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print("\n".join(flex_templates.build_commands(pipeline, args.bucket, args.image)))
    if stale:
        print(f"cre template: {', '.join(stale)} differ from the options: run cre template "
              "build", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cre", description="CRE Integration: Arkea vacations "
                                     "into the MMG dataplatform.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="Write a synthetic vacation archive.")
    generate.add_argument("--out", required=True, help="Folder for the archive.")
    generate.add_argument("--business-date", required=True, help="YYYY-MM-DD")
    generate.add_argument("--slot", type=int, default=1, choices=range(1, 7))
    generate.add_argument("--cre-rows", type=int, default=1000)
    generate.add_argument("--gesparam-rows", type=int, default=100)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--encoding", default=contract.DEFAULT_ENCODING,
                          choices=sorted(contract.ENCODINGS))
    commands.add_parser("ingest", add_help=False, help="Ingest one vacation archive.")
    commands.add_parser("replay", add_help=False, help="Ingest a vacation again from landing.")
    recovery.add_parsers(commands)
    cassandra = commands.add_parser("cassandra", help="A local Cassandra server: start, stop, "
                                    "status.")
    cassandra.add_argument("action", choices=("start", "stop", "status"))
    cassandra.add_argument("--home", default=str(CASSANDRA_HOME), help="Data and logs folder.")
    cassandra.add_argument("--native-port", type=int, default=9042)
    cassandra.add_argument("--storage-port", type=int, default=7000)
    cassandra.set_defaults(handler=_cassandra)
    generate.set_defaults(handler=_generate)
    flink = commands.add_parser("flink", help="A local Flink cluster (2 slots) and its Beam "
                                "worker pool: start, stop, status.")
    flink.add_argument("action", choices=("start", "stop", "status"))
    flink.add_argument("--home", default=str(FLINK_HOME), help="Distribution, logs, pids.")
    flink.add_argument("--rest-port", type=int, default=8081,
                       help="The JobManager's REST port: --flink-master 127.0.0.1:PORT.")
    flink.add_argument("--rpc-port", type=int, default=6123)
    flink.add_argument("--worker-pool-port", type=int, default=50000,
                       help=f"Beam worker pool (pipelines read {WORKER_POOL_ENV}).")
    flink.set_defaults(handler=_flink)
    zone_commands.add_parsers(commands)
    collect_commands.add_parsers(commands)
    backup_commands.add_parsers(commands)
    template = commands.add_parser("template", help="Dataflow Flex Templates: write the "
                                   "metadata and print the gcloud commands.")
    template.add_argument("action", choices=("build", "run"))
    template.add_argument("pipeline", nargs="?", default="ingest", choices=("ingest", "deliver"))
    template.add_argument("--check", action="store_true",
                          help="build: only check the metadata files are up to date.")
    template.add_argument("--bucket", default="BUCKET")
    template.add_argument("--image", default="REGION-docker.pkg.dev/PROJECT/REPO/cre:latest")
    template.add_argument("--region", default="europe-west1")
    template.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    template.set_defaults(handler=_template)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_without_driver_traceback)
    # the driver's warnings matter during a load; a query's failure is said in one line
    logging.getLogger("cassandra").setLevel(
        logging.WARNING if argv[:1] == ["ingest"] else logging.CRITICAL)
    logging.getLogger("cassandra.protocol").setLevel(logging.ERROR)  # the server's advice
    logging.getLogger("apache_beam.typehints").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if argv and argv[0] == "ingest":
        return _ingest(argv[1:])
    if argv and argv[0] == "replay":
        return _replay(argv[1:])
    args, beam_args = _parser().parse_known_args(argv)
    if beam_args and "beam_args" not in vars(args):  # the pipelines' parsers default it
        _parser().parse_args(argv)  # exits 2, naming the unknown arguments
    try:
        args.beam_args = runner_arguments(beam_args)
        return args.handler(args)
    except _PLATFORM_ERRORS as error:
        print(f"cre {args.command}: error: {error}", file=sys.stderr)
        return contract.EXIT_PLATFORM_FAILURE


if __name__ == "__main__":
    sys.exit(main())
