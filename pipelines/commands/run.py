"""The batch runs of ``cre``: ingest, replay and deliver, each a Beam pipeline.

``ingest`` and ``replay`` parse their own arguments: everything they do not know is a Beam
pipeline option, handed to the runner as given.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from pipelines.options import (
    DELIVER,
    RUNNER,
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


def _ingest_parser() -> argparse.ArgumentParser:
    """``cre ingest``'s options; never abbreviated, as Beam, which takes the others, does not."""
    usage = argparse.ArgumentParser(prog="cre ingest", allow_abbrev=False, description=(
        "Lands a vacation archive, checks and validates it, and publishes the Proxy Producer "
        "zone. Any other option is a Beam pipeline option (--runner, ...). Prints the JSON "
        "summary as the last line; exit 0 accepted or duplicate, 3 rejected, 1 failure."))
    add_flags(usage, IngestOptions.FLAGS, CassandraOptions.FLAGS, MonitoringOptions.FLAGS,
              (RUNNER,))
    return usage


def ingest(argv: list[str]) -> int:
    usage = _ingest_parser()
    known, beam_args = usage.parse_known_args(argv)  # exits 2 with a message on bad usage
    return _ingest(usage, known, beam_args)


def _options(known: argparse.Namespace, beam_args: list[str]) -> IngestOptions:
    """The run's options: what ``cre ingest`` parsed, as parsed, beside Beam's own flags."""
    return ingest_options(
        values(known, IngestOptions.FLAGS, CassandraOptions.FLAGS, MonitoringOptions.FLAGS),
        runner_arguments([f"--runner={known.runner}", *beam_args]))


def _ingest(usage: argparse.ArgumentParser, known: argparse.Namespace,
            beam_args: list[str]) -> int:
    """Runs the ingest ``known`` describes, parsed by ``usage``; prints its summary."""
    missing = [name for name in IngestOptions.REQUIRED if not getattr(known, name)]
    if missing:
        usage.error(f"required: {', '.join('--' + name.replace('_', '-') for name in missing)}")
    try:
        with progress.shown():
            ingested = operations.ingest(_options(known, beam_args), known.pushgateway)
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


def replay(argv: list[str]) -> int:
    """``operations.replay_input``, then the ingest of what it gives, as ``cre ingest``."""
    usage = argparse.ArgumentParser(prog="cre replay", description=(
        "Ingests a vacation again from its landing copy (after cre rollback, or after a fix), "
        "as cre ingest --replay; takes cre ingest's options."))
    usage.add_argument("vacation_id")
    add_flags(usage, CassandraOptions.FLAGS)
    known, _ = usage.parse_known_args(argv)
    try:
        with zone_session(known) as session:
            rest = list(argv)
            rest.remove(known.vacation_id)
            ingest_usage = _ingest_parser()
            given, beam_args = ingest_usage.parse_known_args(rest)
            vars(given).update(operations.replay_input(session, known.vacation_id,
                                                       given.zones_root))
    except contract.PlatformError as error:
        print(f"cre replay: error: {error}", file=sys.stderr)
        return Exit.FAILURE
    return _ingest(ingest_usage, given, beam_args)


def deliver_command(args: argparse.Namespace) -> int:
    """``operations.deliver``: the package built and sent, unless it already was."""
    with progress.shown():
        done = operations.deliver(cassandra_config(args, required=True), args.vacation,
                                  args.outbound_root or args.zones_root,
                                  redeliver=args.redeliver, beam_args=args.beam_args,
                                  pushgateway=args.pushgateway)
    report(args, dataclasses.asdict(done), [done.describe()])
    return Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers the batch runs; ``ingest`` and ``replay`` are parsed by their own functions."""
    commands.add_parser("ingest", add_help=False, help="Ingest one vacation archive.") \
        .set_defaults(own_parser=ingest)
    commands.add_parser("replay", add_help=False, help="Ingest a vacation again from landing.") \
        .set_defaults(own_parser=replay)
    deliver_parser = commands.add_parser(
        "deliver", help="Build and deliver a vacation's Arkea ABS package (spec 4).",
        description="Any other option is a Beam pipeline option (--runner, ...).")
    add_flags(deliver_parser, DELIVER, MonitoringOptions.FLAGS)
    add_connection_arguments(deliver_parser)
    deliver_parser.set_defaults(handler=deliver_command, beam_args=[])



def main(argv: list[str]) -> int:
    """The batch runs alone: what the Dataflow image runs (it holds no other command)."""
    configure_logging(argv)
    parser = argparse.ArgumentParser(prog="cre")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser, argv)
