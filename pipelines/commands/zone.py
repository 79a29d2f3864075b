"""The structured-zone commands of ``cre``: migrate, roles, query, status, rejects, quality,
lineage, rollback.

Plain text for people by default, ``--json`` for machines; both print the same facts.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import getpass
import os
import sys

from cassandra import Unauthorized

from pipelines import operations, roles
from pipelines.commands.common import (
    add_connection_arguments,
    report,
    text_table,
    zone_session,
)
from pipelines.commands.parsing import exit_codes, group, subcommand
from pipelines.ledger import Ledger
from pipelines.lineage import Lineage
from pipelines.options import REPLICATION, cassandra_config
from pipelines.quality import QualityRecord, QualityStore
from pipelines.schema_migrations import migrate
from pipelines.structured_zone import StructuredZone, slots
from transforms.contract import Exit


def _day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def db_migrate(args: argparse.Namespace) -> int:
    config = cassandra_config(args, required=True)
    applied = migrate(config, args.replication)
    report(args, {"keyspace": config.keyspace, "applied": applied},
           [f"{config.keyspace}: applied {', '.join(applied)}" if applied
            else f"{config.keyspace}: schema up to date"])
    return Exit.OK


def _role_passwords() -> dict[str, str]:
    """Each role's password: its variable, else the next line of standard input (a prompt
    on a terminal), so no password is ever on a command line."""
    def read(role: roles.Role) -> str:
        if sys.stdin.isatty():
            return getpass.getpass(f"password of {role.name}: ")
        return sys.stdin.readline().rstrip("\n")

    return {role.name: os.environ.get(role.password_variable) or read(role)
            for role in roles.ROLES}


def db_roles(args: argparse.Namespace) -> int:
    passwords = _role_passwords()
    with zone_session(args) as session:
        try:
            changes = roles.apply(session, session.keyspace, passwords)
        except (ValueError, Unauthorized) as error:
            print(f"cre db roles: error: {error}", file=sys.stderr)
            return Exit.FAILURE
    report(args, changes, [
        f"{change['role']}: reads {', '.join(change['reads'])}; writes "
        f"{', '.join(change['writes']) or 'nothing'} ({len(change['granted'])} granted, "
        f"{len(change['revoked'])} revoked)" for change in changes])
    return Exit.OK


def query(args: argparse.Namespace) -> int:
    with zone_session(args) as session:
        zone = StructuredZone(session)
        if args.what == "events":
            last = args.to or datetime.date.today()
            first = args.from_ or last - datetime.timedelta(days=366)
            rows = zone.events(args.account, first, last)
            columns = ["value_date", "cre_id", "event_type", "amount", "currency", "event_ts",
                       "vacation_id", "label"]
            report(args, rows, [*text_table(rows, columns),
                                f"{len(rows)} events of {args.account} from {first} to {last}"])
        elif args.what == "position":
            rows = zone.position(args.account, args.date)
            report(args, rows, [*text_table(rows, ["currency", "event_count", "debit_total",
                                                   "credit_total", "net_amount"]),
                                f"position of {args.account} on {args.date}"]
                   if rows else [f"no events of {args.account} on {args.date}"])
        else:
            found = zone.param(args.table, args.key, args.on)
            report(args, found, text_table([found], list(found)) if found else
                   [f"no value of {args.table}/{args.key} in force on {args.on}"])
            return Exit.OK if found else Exit.NO
    return Exit.OK


# what ``cre status`` shows of a ledger row (``VacationRecord.view``)
_STATUS = ("vacation_id", "state", "outcome", "sha256", "records", "loaded", "rejected",
           "received_at", "processed_at", "delivered_at", "run_id", "owner", "visible",
           "state_changed_at", "errors")


def _to_the_second(view: dict) -> dict:
    """A date's row for people: when it came, was processed and delivered, to the second."""
    return {**view, **{key: f"{view[key]:%Y-%m-%d %H:%M:%S}" for key in
                       ("received_at", "processed_at", "delivered_at") if view.get(key)}}


def _vacation_or_date(args: argparse.Namespace, command: str) -> bool:
    """Whether exactly one of VACATION_ID and --date was given; else says so on stderr."""
    if bool(args.vacation_id) != bool(args.date):
        return True
    print(f"cre {command}: give a VACATION_ID or --date YYYY-MM-DD", file=sys.stderr)
    return False


def status(args: argparse.Namespace) -> int:
    if not _vacation_or_date(args, "status"):
        return Exit.USAGE
    with zone_session(args) as session:
        ledger = Ledger(session)
        if args.date:
            views = []
            for slot, vacation_id in enumerate(slots(args.date), start=1):
                row = ledger.get(vacation_id)
                views.append({"slot": slot, "vacation_id": vacation_id, "state": "MISSING"}
                             if row is None else {"slot": slot, **row.view(*_STATUS)})
            missing = [view["slot"] for view in views if view["state"] == "MISSING"]
            report(args, {"business_date": args.date, "vacations": views, "missing_slots": missing},
                   [*text_table([_to_the_second(view) for view in views],
                                ["slot", "vacation_id", "state", "outcome", "records", "loaded",
                                 "rejected", "received_at", "processed_at", "delivered_at"],
                                ["slot", "vacation_id", "state", "outcome", "records", "loaded",
                                 "rejected", "received (UTC)", "processed", "delivered"]),
                    f"missing slots: {', '.join(map(str, missing)) or 'none'}"])
            return Exit.OK
        row = ledger.get(args.vacation_id)
        if row is None:
            report(args, {"vacation_id": args.vacation_id, "state": "UNKNOWN"},
                   [f"{args.vacation_id}: not in the ledger"])
            return Exit.NO
        history = ledger.history(args.vacation_id)
        view = {**row.view(*_STATUS), "history": [dataclasses.asdict(item) for item in history]}
        lines = [f"{row.vacation_id}  {row.state}" + (f" ({row.outcome})" if row.outcome else ""),
                 f"sha256     {row.sha256}",
                 f"records    {row.records}  loaded {row.loaded}  rejected {row.rejected}",
                 *(f"{state:<10} {at:%Y-%m-%d %H:%M:%S}" for state, at in
                   view["state_changed_at"].items()),
                 *(f"error      {error['code']}: {error['message']}" for error in view["errors"]),
                 "history:",
                 *(f"  {item.at:%Y-%m-%d %H:%M:%S}  {item.state:<11} {item.message}"
                   for item in history)]
        report(args, view, lines)
    return Exit.OK


def rejects(args: argparse.Namespace) -> int:
    with zone_session(args) as session:
        zone = StructuredZone(session)
        row = zone.ledger.get(args.vacation_id)
        members = [member.name for member in row.summary.members] if row and row.summary else []
        found = list(zone.rejects(args.vacation_id, members or zone.reject_members(
            args.vacation_id)))
        report(args, found, [*text_table(found, ["member_name", "record_number",
                                                 "line_number", "error_code", "error_message"]),
                             f"{len(found)} rejected records in {args.vacation_id}"])
    return Exit.OK


_FINDING_COLUMNS = ["vacation_id", "severity", "metric", "value", "low", "high", "check"]


def _finding_rows(record: QualityRecord) -> list[dict]:
    return [{"vacation_id": record.vacation_id, **finding, **finding["expected"]}
            for finding in record.findings]


def quality(args: argparse.Namespace) -> int:
    """A vacation's data-quality findings against its slot's history, or a date's."""
    if not _vacation_or_date(args, "quality"):
        return Exit.USAGE
    with zone_session(args) as session:
        store = QualityStore(session)
        if args.date:
            records = store.day(args.date)
            findings = [row for record in records for row in _finding_rows(record)]
            judged = ", ".join(f"{record.slot}" for record in records) or "none"
            report(args, {"business_date": args.date,
                          "vacations": [record.view() for record in records]},
                   [*text_table(findings, _FINDING_COLUMNS),
                    f"{len(findings)} findings on {args.date:%Y-%m-%d}; slots judged: {judged}"])
            return Exit.OK
        record = store.get(args.vacation_id)
    if record is None:
        report(args, {"vacation_id": args.vacation_id, "findings": None},
               [f"{args.vacation_id}: no data-quality record (not ingested, or ingested with "
                "--quality off)"])
        return Exit.NO
    report(args, record.view(),
           [*text_table(_finding_rows(record), _FINDING_COLUMNS),
            f"{len(record.findings)} findings; "
            + (record.note or f"judged against {record.history} earlier vacations of slot "
               f"{record.slot}")])
    return Exit.OK


_VERSION_COLUMNS = ["vacation_id", "state", "account_id", "value_date", "currency",
                    "member_name", "line_number", "packages"]
_EVENT_COLUMNS = ["package", "value_date", "currency", "event_count", "net_amount", "cre_id",
                  "vacation_id", "state", "member_name", "line_number"]
_POSITION_COLUMNS = ["account_id", "value_date", "currency", "event_count", "net_amount",
                     "events", "vacations"]


def _event_lines(positions: list[dict]) -> list[dict]:
    """One line per event version of each position, its figures on the first."""
    lines = []
    for position in positions:
        figures = position["figures"] or {}
        for index, event in enumerate(position["events"]):
            lines.append({**event, "package": position["package"],
                          **({name: figures.get(name) for name in ("event_count", "net_amount")}
                             if index == 0 else {})})
    return lines


def _position_lines(positions: list[dict]) -> list[dict]:
    return [{**position, **(position["figures"] or {}), "events": len(position["events"]),
             "vacations": " ".join(sorted({event["vacation_id"]
                                           for event in position["events"]}))}
            for position in positions]


def lineage(args: argparse.Namespace) -> int:
    """Where an event, an account's position of a business date or a package came from."""
    if (args.account is None) != (args.date is None):
        args.command_parser.error("--account and --date go together")
    with zone_session(args) as session:
        found = Lineage(session)
        if args.cre_id is not None:
            versions = [version.view() for version in found.event(args.cre_id)]
            report(args, {"cre_id": args.cre_id, "versions": versions},
                   [*text_table(versions, _VERSION_COLUMNS),
                    f"{len(versions)} versions of {args.cre_id}, newest vacation first"])
            return Exit.OK if versions else Exit.NO
        if args.package is not None:
            positions = found.package(args.package)
            if positions is None:
                print(f"cre lineage: {args.package} is not a delivered package",
                      file=sys.stderr)
                return Exit.NO
            positions = [position.view() for position in positions]
            report(args, {"package": args.package, "positions": positions},
                   [*text_table(_position_lines(positions), _POSITION_COLUMNS),
                    f"{len(positions)} positions in {args.package}"])
            return Exit.OK if positions else Exit.NO
        positions = [position.view() for position in found.position(args.account, args.date)]
    report(args, {"account_id": args.account, "business_date": args.date.isoformat(),
                  "positions": positions},
           [*text_table(_event_lines(positions), _EVENT_COLUMNS),
            f"{len(positions)} positions of {args.account} in the packages of {args.date}"])
    return Exit.OK if positions else Exit.NO


def rollback(args: argparse.Namespace) -> int:
    """``operations.rollback``: the vacation's rows hidden at once, then deleted."""
    with zone_session(args) as session:
        try:
            done = operations.rollback(session, args.vacation_id)
        except operations.OperationRefused as refused:
            print(f"cre rollback: {refused}", file=sys.stderr)
            return Exit.NO
        except operations.StateChanged as changed:
            print(f"cre rollback: {changed}", file=sys.stderr)
            return Exit.FAILURE
    report(args, dataclasses.asdict(done), [done.describe()])
    return Exit.OK


_ZONE_EXITS = exit_codes("done: its result on stdout (--json: one JSON document)")


def _add_vacation_or_date(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vacation_id", nargs="?", help="The vacation: BAF_<YYYYMMDD>_<NN>.")
    parser.add_argument("--date", type=_day, help="A business date, YYYY-MM-DD.")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers the structured-zone subcommands on ``cre``'s parser."""
    _add_db_parsers(commands)
    _add_query_parsers(commands)
    status_parser = subcommand(
        commands, "status", "A vacation's state, or a date's slots.", epilog=exit_codes(
            "the vacation's state and history, or the date's six slots (MISSING where none "
            "came)", usage="neither or both of VACATION_ID and --date, or the command line "
            "is refused: nothing done", no="the vacation is not in the ledger"),
        description="A vacation's state, counts and history in the ledger; with --date, the "
        "six slots of a business date. Give a VACATION_ID or --date.")
    _add_vacation_or_date(status_parser)
    add_connection_arguments(status_parser)
    status_parser.set_defaults(handler=status)

    quality_parser = subcommand(
        commands, "quality", "A vacation's data-quality findings, or a date's.",
        epilog=exit_codes(
            "the findings (none: an empty list), each with its metric, value, expected range "
            "and severity", usage="neither or both of VACATION_ID and --date, or the command "
            "line is refused: nothing done", no="the vacation has no data-quality record"),
        description="The findings of a vacation's metrics against its slot's history and the "
        "fixed rules (docs/operations.md, \"Data quality\"); with --date, those of the "
        "business date's vacations. Give a VACATION_ID or --date.")
    _add_vacation_or_date(quality_parser)
    add_connection_arguments(quality_parser)
    quality_parser.set_defaults(handler=quality)

    lineage_parser = subcommand(
        commands, "lineage", "Where an event, a position or a package came from.",
        epilog=exit_codes(
            "the answer: event versions, each with its vacation (state, archive sha256, "
            "landing path), member and line, and the packages that counted it",
            usage="not exactly one of --cre-id, --account with --date, --package, or the "
            "command line is refused: nothing done",
            no="nothing found: no version of that event, no position of that account in the "
            "date's delivered packages, or not a delivered package"),
        description="Provenance. --cre-id: every version of a CRE event, newest vacation "
        "first, the member of its vacation's archive and the line its record starts on, and "
        "the packages that counted it. --account with --date: that account's positions in the "
        "packages delivered for the business date's vacations, their figures as delivered, and "
        "every event version each was computed from. --package: every position of a package.")
    chosen = lineage_parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--cre-id", help="The event's cre_id.")
    chosen.add_argument("--account", help="An account_id (with --date).")
    chosen.add_argument("--package", help="A package: MMG_ABS_<YYYYMMDD>_<NN>.tar.bz2.")
    lineage_parser.add_argument("--date", type=_day,
                                help="The business date of the packages, YYYY-MM-DD.")
    add_connection_arguments(lineage_parser)
    lineage_parser.set_defaults(handler=lineage)

    for name, handler, text, epilog in (
            ("rejects", rejects, "A vacation's rejected records.", _ZONE_EXITS),
            ("rollback", rollback, "Remove a loaded vacation's rows from the structured zone; "
             "earlier versions are served again.", exit_codes(
                 "rolled back: the rows hidden at once, then deleted", failure="the vacation's "
                 "state changed meanwhile, or the platform failed", no="refused: the vacation "
                 "is in no state to roll back (the reason on stderr)"))):
        sub = subcommand(commands, name, text, epilog=epilog)
        sub.add_argument("vacation_id", help="The vacation: BAF_<YYYYMMDD>_<NN>.")
        add_connection_arguments(sub)
        sub.set_defaults(handler=handler)


def _add_db_parsers(commands: argparse._SubParsersAction) -> None:
    actions = group(commands, "db", "The structured zone's schema and roles.")
    migrate_parser = subcommand(
        actions, "migrate", "Create the keyspace, apply the pending migrations.",
        epilog=exit_codes("the schema is up to date (the migrations applied, if any, listed)"))
    REPLICATION.add_to(migrate_parser)
    roles_parser = subcommand(
        actions, "roles", "Create or update the roles cre_ingest, cre_service and cre_reader "
        "and their grants (passwords: CRE_INGEST_PASSWORD, CRE_SERVICE_PASSWORD, "
        "CRE_READER_PASSWORD, else one line each on stdin).", epilog=exit_codes(
            "the roles and grants are as they should be", failure="refused (a password "
            "missing, no right to manage roles), or the platform failed"))
    for action, handler in ((migrate_parser, db_migrate), (roles_parser, db_roles)):
        add_connection_arguments(action)
        action.set_defaults(handler=handler)


def _add_query_parsers(commands: argparse._SubParsersAction) -> None:
    kinds = group(commands, "query", "Query the structured zone.", dest="what")
    events = subcommand(kinds, "events", "An account's events, newest first.",
                        epilog=_ZONE_EXITS)
    events.add_argument("--account", required=True, help="The account.")
    events.add_argument("--from", dest="from_", type=_day, metavar="DATE", help="First value date "
                        "(default: a year before --to).")
    events.add_argument("--to", type=_day, metavar="DATE", help="Last value date (default: today).")
    position = subcommand(kinds, "position", "An account's position on a value date.",
                          epilog=_ZONE_EXITS)
    position.add_argument("--account", required=True, help="The account.")
    position.add_argument("--date", required=True, type=_day, help="The value date, "
                          "YYYY-MM-DD.")
    param = subcommand(kinds, "param", "A parameter's value in force on a date.",
                       epilog=exit_codes("the value in force", no="no value is in force on "
                                         "that date"))
    param.add_argument("--table", required=True, help="The GESPARAM table.")
    param.add_argument("--key", required=True, help="The parameter's key in that table.")
    param.add_argument("--on", required=True, type=_day, help="The date, YYYY-MM-DD.")
    for kind in (events, position, param):
        add_connection_arguments(kind)
        kind.set_defaults(handler=query)
