"""``cre recover``: finish what crashed runs left, by the plan of ``pipelines.recovery``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime

from pipelines import operations
from pipelines.commands.common import add_connection_arguments, report, text_table
from pipelines.commands.parsing import exit_codes, subcommand
from pipelines.options import (
    DRY_RUN,
    OUTBOUND_ROOT,
    SINK,
    ZONES_ROOT,
    CassandraOptions,
    MonitoringOptions,
    add_flags,
    cassandra_config,
    values,
)
from transforms.contract import Exit


def recover(args: argparse.Namespace) -> int:
    """``operations.recover``: ingests again, delivers, or cleans; 1 if any step failed."""
    done = operations.recover(
        cassandra_config(args, required=True), datetime.timedelta(minutes=args.grace_minutes),
        operations.Runs(values(args, CassandraOptions.FLAGS), args.zones_root,
                        args.outbound_root, tuple(args.beam_args), args.pushgateway),
        args.dry_run)
    found = [dataclasses.asdict(step) for step in done.steps]
    report(args, found, [*text_table(found, ["vacation_id", "state", "action", "reason",
                                             "result"]),
                         f"{len(found)} vacation(s) to recover"
                         + (" (dry run: nothing done)" if done.dry_run else "")])
    return Exit.FAILURE if done.failed else Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers ``cre recover``."""
    parser = subcommand(
        commands, "recover", "Finish what crashed runs left: ingest again from landing, "
        "deliver, or clean.", beam=True,
        description="Finds the vacations crashed runs left (received but never ingested, "
        "held by a run that is gone, loaded or rejected but not delivered) and finishes each: "
        "ingests it again from its landing copy, delivers it, or, when there is nothing to run "
        "again, marks it FAILED and deletes its rows.",
        epilog=exit_codes("every vacation found was finished (or, --dry-run, only listed)",
                          failure="a vacation's step failed (its result says why; the others "
                          "were done), or the platform failed"))
    add_connection_arguments(parser)
    add_flags(parser, SINK, (ZONES_ROOT.but(help="Root of the zones (default: where each "
                                            "vacation landed)."), OUTBOUND_ROOT),
              MonitoringOptions.FLAGS)
    parser.add_argument("--grace-minutes", type=float, default=10.0,
                        help="A vacation RECEIVED more recently is left to the ingest manager.")
    DRY_RUN.add_to(parser)
    parser.set_defaults(handler=recover)
