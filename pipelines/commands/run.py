"""The batch runs of ``cre``: ingest, replay and deliver, each a Beam pipeline.

Each takes, beside its own options, Beam's pipeline options (``--direct_num_workers 2``,
``--flink-master HOST:PORT``...), handed to the runner as given; anything else is refused
(``parsing``).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import logging
import sys

from pipelines import operations, progress
from pipelines.commands.common import (
    add_connection_arguments,
    configure_logging,
    dispatch,
    first_line,
    report,
    zone_session,
)
from pipelines.commands.parsing import CommandParser, exit_codes, subcommand
from pipelines.options import (
    CONNECTION,
    DEFAULT_KEYSPACE,
    DELIVER,
    INGEST,
    INGEST_CONNECTION,
    RUNNER,
    SINK,
    ZONES_ROOT,
    CassandraOptions,
    IngestOptions,
    MonitoringOptions,
    add_flags,
    cassandra_config,
    ingest_options,
    values,
)
from pipelines.runners import runner_arguments
from transforms import contract
from transforms.contract import Exit

_LOG = logging.getLogger("cre")

_INGEST_EXITS = exit_codes(
    "ACCEPTED (with or without rejects) or DUPLICATE: the JSON summary is the last line of "
    "stdout", failure="the platform failed (storage, Cassandra, the runner): one line on "
    "stderr; run the same command again", no="REJECTED: the summary's errors say why")


def ingest(args: argparse.Namespace) -> int:
    """``operations.ingest`` of the archive ``--input`` names."""
    missing = [name for name in IngestOptions.REQUIRED if not getattr(args, name)]
    if missing:
        args.command_parser.error(
            f"required: {', '.join('--' + name.replace('_', '-') for name in missing)}")
    return _ingest(args)


def _options(known: argparse.Namespace) -> IngestOptions:
    """The run's options: what the command parsed, as parsed, beside Beam's own flags."""
    return ingest_options(
        values(known, IngestOptions.FLAGS, CassandraOptions.FLAGS, MonitoringOptions.FLAGS),
        runner_arguments([f"--runner={known.runner}", *known.beam_args]))


def _ingest(known: argparse.Namespace) -> int:
    """Runs the ingest ``known`` describes; prints its summary."""
    try:
        with progress.shown():
            ingested = operations.ingest(_options(known), known.pushgateway)
    except contract.PlatformError as error:
        _LOG.error("%s", error)
        print(f"cre ingest: error: {error}", file=sys.stderr)
        return Exit.FAILURE
    except Exception as error:
        _LOG.exception("the platform failed while ingesting")
        print(f"cre ingest: error: {first_line(error)}", file=sys.stderr)
        return Exit.FAILURE
    print(json.dumps(ingested.summary, ensure_ascii=False), flush=True)
    return contract.EXIT_CODES[ingested.status]


def replay(args: argparse.Namespace) -> int:
    """``operations.replay_input``, then the ingest of what it gives, as ``cre ingest``, into
    the structured zone whose ledger it read."""
    try:
        with zone_session(args) as session:
            vars(args).update(operations.replay_input(session, args.vacation_id,
                                                      args.zones_root))
    except contract.PlatformError as error:
        print(f"cre replay: error: {error}", file=sys.stderr)
        return Exit.FAILURE
    args.keyspace = args.keyspace or DEFAULT_KEYSPACE  # a structured zone, as the session's
    return _ingest(args)


def deliver_command(args: argparse.Namespace) -> int:
    """``operations.deliver``: the package built and sent, unless it already was."""
    with progress.shown():
        done = operations.deliver(cassandra_config(args, required=True), args.vacation,
                                  args.outbound_root or args.zones_root,
                                  redeliver=args.redeliver, beam_args=args.beam_args,
                                  pushgateway=args.pushgateway,
                                  released_by=getpass.getuser() if args.release else None)
    report(args, dataclasses.asdict(done), [done.describe()])
    return Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers the batch runs: ingest, replay, deliver."""
    ingest_parser = subcommand(
        commands, "ingest", "Ingest one vacation archive.", beam=True, epilog=_INGEST_EXITS,
        description="Lands a vacation archive, checks and validates it, publishes the Proxy "
        "Producer zone and, when one is configured, the structured zone, then delivers the Arkea "
        "ABS package. Prints its JSON summary as the last line of stdout (always: there is no "
        "--json).")
    add_flags(ingest_parser, INGEST, INGEST_CONNECTION, SINK, MonitoringOptions.FLAGS, (RUNNER,))
    ingest_parser.set_defaults(handler=ingest)

    replay_parser = subcommand(
        commands, "replay", "Ingest a vacation again from its landing copy.", beam=True,
        epilog=_INGEST_EXITS, description="Ingests a vacation again from the landing copy the "
        "ledger recorded (after cre rollback, or after a fix), as cre ingest --replay, into "
        "the structured zone whose ledger it read; takes cre ingest's options but --input and "
        "--replay.")
    replay_parser.add_argument("vacation_id", help="The vacation: BAF_<YYYYMMDD>_<NN>.")
    add_flags(replay_parser, (ZONES_ROOT.but(help="Root of the zones, local or gs:// (default: "
                                             "the zones the vacation landed in)."),),
              [one for one in INGEST if one.dest not in ("input", "zones_root", "replay")],
              CONNECTION, SINK, MonitoringOptions.FLAGS, (RUNNER,))
    replay_parser.set_defaults(handler=replay)

    deliver_parser = subcommand(
        commands, "deliver", "Build and deliver a vacation's Arkea ABS package (spec 4).",
        beam=True, description="Builds a LOADED or REJECTED vacation's Arkea ABS package from "
        "the structured zone and delivers it, unless it already was (--redeliver: again).",
        epilog=exit_codes("delivered, or already delivered (said so)"))
    add_flags(deliver_parser, DELIVER, MonitoringOptions.FLAGS)
    add_connection_arguments(deliver_parser)
    deliver_parser.set_defaults(handler=deliver_command)


def main(argv: list[str]) -> int:
    """The batch runs alone: what the Dataflow image runs (it holds no other command)."""
    configure_logging(argv)
    parser = CommandParser(prog="cre", description="The batch runs of cre.",
                           epilog="exit codes: each command's --help.")
    add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser, argv)
