"""``cre recover``: finish what crashed runs left, by the plan of ``pipelines.recovery``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import run_metrics
from pipelines.commands.common import add_connection_arguments, report, text_table, zone_session
from pipelines.ledger import Ledger, State
from pipelines.options import (
    DRY_RUN,
    OUTBOUND_ROOT,
    ZONES_ROOT,
    CassandraOptions,
    MonitoringOptions,
    add_flags,
    cassandra_config,
    ingest_options,
    values,
)
from pipelines.recovery import (
    RecoveryError,
    Step,
    landed_copy,
    plan,
    replay_values,
    zones_root_of,
)
from pipelines.structured_zone import StructuredZone
from transforms.contract import Exit

_LOG = logging.getLogger(__name__)


def _carry_out(step: Step, session, args: argparse.Namespace) -> str:
    from pipelines.deliver import deliver
    from pipelines.ingest import run_ingest

    ledger = Ledger(session)
    row = ledger.get(step.vacation_id)
    if row is None or row.state != step.state:
        return f"skipped: it is {row.state if row else 'gone'} now"
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
    given = {**values(args, CassandraOptions.FLAGS), "outbound_root": args.outbound_root,
             **replay_values(row, step.vacation_id, args.zones_root)}
    with run_metrics.observed(run_metrics.INGEST, step.vacation_id, args.pushgateway) as run:
        outcome = run.summary = run_ingest(ingest_options(given, args.beam_args))
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
    return Exit.FAILURE if failed else Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers ``cre recover`` (``cre replay`` takes ingest options: see ``cli``)."""
    parser = commands.add_parser(
        "recover", help="Finish what crashed runs left: ingest again from landing, deliver, or "
        "clean. Any other option is a Beam pipeline option.")
    add_connection_arguments(parser)
    add_flags(parser, (ZONES_ROOT.but(help="Root of the zones (default: where each vacation "
                                      "landed)."), OUTBOUND_ROOT), MonitoringOptions.FLAGS)
    parser.add_argument("--grace-minutes", type=float, default=10.0,
                        help="A vacation RECEIVED more recently is left to the ingest manager.")
    DRY_RUN.add_to(parser)
    parser.set_defaults(handler=recover)
