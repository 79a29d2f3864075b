"""Replay and recovery: every vacation run again from its landing copy, never from elsewhere.

The landing zone keeps each archive byte for byte and the ledger knows where, so a replay
(after a rollback, or after a fix) and the recovery of a run that died both come down to
ingesting that copy again with ``--replay``: the claim purges what an earlier run wrote, the
run loads and delivers as any other.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
from typing import Optional

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import zones
from pipelines import run_metrics
from pipelines.ledger import IN_PROGRESS, Ledger, State
from pipelines.options import (
    CassandraOptions,
    MonitoringOptions,
    add_outbound_root,
    as_arguments,
    cassandra_config,
)
from pipelines.structured_zone import StructuredZone
from pipelines.text_table import text_table
from pipelines.zone_commands import add_connection_arguments, report, zone_session

_LOG = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """A vacation cannot be run again from what the platform kept."""


def landed_copy(row: Optional[dict], vacation_id: str) -> str:
    """The landing copy the ledger recorded for the vacation's current content."""
    if row is None:
        raise RecoveryError(f"{vacation_id} is not in the ledger")
    path = row["landed_path"]
    if not path or not FileSystems.exists(path):
        raise RecoveryError(f"{vacation_id}: its landing copy {path or '(none recorded)'} is "
                            "gone; the archive must be sent again")
    return path


def zones_root_of(landed_path: str) -> str:
    """The zones root a landing copy lies under (``<root>/landing/...``)."""
    marker = f"/{zones.LANDING}/"
    if marker not in landed_path:
        raise RecoveryError(f"{landed_path} is not in a landing zone")
    return landed_path[:landed_path.rindex(marker)]


def replay_arguments(row: Optional[dict], vacation_id: str, argv: list[str]) -> list[str]:
    """``cre ingest`` arguments that run the vacation's landing copy again (the claim refuses
    a vacation whose rows are visible)."""
    path = landed_copy(row, vacation_id)
    root = [] if any(arg.startswith(("--zones-root", "--zones_root")) for arg in argv) \
        else ["--zones-root", zones_root_of(path)]
    return [*argv, *root, "--input", path, "--replay"]


@dataclasses.dataclass
class Step:
    """What recovery does (or would do) for one vacation, and how it ended."""

    vacation_id: str
    state: str
    action: str  # replay, deliver, clean or wait
    reason: str
    result: str = ""


def plan(ledger: Ledger, grace: datetime.timedelta,
         now: Optional[datetime.datetime] = None) -> list[Step]:
    """The vacations a crash can leave behind, and what finishes each."""
    now = now or datetime.datetime.now(datetime.UTC)
    steps = []
    for row in ledger.in_state(State.RECEIVED):
        if row["received_at"] and row["received_at"] > now - grace:
            steps.append(Step(row["vacation_id"], State.RECEIVED, "wait",
                              "received moments ago: the ingest manager takes it"))
        else:
            steps.append(Step(row["vacation_id"], State.RECEIVED, "replay", "never ingested"))
    for state in sorted(IN_PROGRESS):
        for row in ledger.in_state(state):
            if Ledger.abandoned(row, now):
                steps.append(Step(row["vacation_id"], state, "replay",
                                  f"its run {row['run_id']} ({row['owner']}) is gone"))
            else:
                steps.append(Step(row["vacation_id"], state, "wait",
                                  f"its run holds it until {row['lease_until']:%H:%M:%SZ}"))
    for state in (State.LOADED, State.REJECTED):
        steps += [Step(row["vacation_id"], state, "deliver", "no package delivered")
                  for row in ledger.in_state(state) if row["delivered_at"] is None]
    return steps


def _carry_out(step: Step, session, args: argparse.Namespace) -> str:
    from pipelines.deliver import deliver
    from pipelines.ingest import run_ingest

    ledger = Ledger(session)
    row = ledger.get(step.vacation_id)
    if row is None or row["state"] != step.state:
        return f"skipped: it is {row['state'] if row else 'gone'} now"
    if step.action == "deliver":
        root = args.zones_root or zones_root_of(landed_copy(row, step.vacation_id))
        with run_metrics.observed(run_metrics.DELIVER, step.vacation_id, args.pushgateway):
            delivery = deliver(session, cassandra_config(args, required=True), step.vacation_id,
                               args.outbound_root or root,
                               pipeline_options=PipelineOptions(args.beam_args))
            run_metrics.record_ledger(session, step.vacation_id)
        return f"delivered {delivery['path']}"
    try:
        landed_copy(row, step.vacation_id)
    except RecoveryError as error:  # nothing to run again: leave no half-written rows
        step.action = "clean"
        if not ledger.transition_any(step.vacation_id, step.state, State.FAILED, str(error)):
            return "skipped: its state changed meanwhile"
        deleted = StructuredZone(session, ledger).purge(step.vacation_id)  # rows now hidden
        return f"FAILED, deleted {deleted}: {error}"
    argv = replay_arguments(row, step.vacation_id, [
        *as_arguments(CassandraOptions, args), *args.beam_args,
        *(["--zones-root", args.zones_root] if args.zones_root else []),
        *(["--outbound-root", args.outbound_root] if args.outbound_root else [])])
    with run_metrics.observed(run_metrics.INGEST, step.vacation_id, args.pushgateway) as run:
        outcome = run.summary = run_ingest(argv)
    return f"{outcome['status']}: {outcome['totals']['loaded']} loaded, " \
           f"{outcome['totals']['rejected']} rejected"


def recover(args: argparse.Namespace) -> int:
    """Finishes what crashed runs left: ingests again, delivers, or cleans; 1 if any failed."""
    failed = False
    with zone_session(args) as session:
        steps = plan(Ledger(session), datetime.timedelta(minutes=args.grace_minutes))
        for step in steps:
            if step.action == "wait" or args.dry_run:
                continue
            try:
                step.result = _carry_out(step, session, args)
            except Exception as error:  # noqa: BLE001 - one vacation must not stop the others
                _LOG.exception("recovery of %s failed", step.vacation_id)
                step.result = f"error: {str(error).splitlines()[0] if str(error) else error!r}"
                failed = True
    found = [dataclasses.asdict(step) for step in steps]
    report(args, found, [*text_table(found, ["vacation_id", "state", "action", "reason",
                                             "result"]),
                         f"{len(steps)} vacation(s) to recover"
                         + (" (dry run: nothing done)" if args.dry_run else "")])
    return 1 if failed else 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers ``cre recover`` (``cre replay`` takes ingest options: see ``cli``)."""
    parser = commands.add_parser(
        "recover", help="Finish what crashed runs left: ingest again from landing, deliver, or "
        "clean. Any other option is a Beam pipeline option.")
    add_connection_arguments(parser)
    parser.add_argument("--zones-root", "--zones_root", dest="zones_root",
                        help="Root of the zones (default: where each vacation landed).")
    add_outbound_root(parser)
    MonitoringOptions._add_argparse_args(parser)
    parser.add_argument("--grace-minutes", type=float, default=10.0,
                        help="A vacation RECEIVED more recently is left to the ingest manager.")
    parser.add_argument("--dry-run", action="store_true", help="Only say what would be done.")
    parser.set_defaults(handler=recover)
