"""The operations commands of ``cre``: backup, backup verify, restore, landing prune."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pipelines import landing_retention, operations, progress
from pipelines.commands.common import add_connection_arguments, report, zone_session
from pipelines.ledger import Ledger
from pipelines.options import AVRO_CODEC, DRY_RUN, FLAG, ZONES_ROOT, cassandra_config
from transforms.contract import Exit


def backup_command(args: argparse.Namespace) -> int:
    """``operations.backup``. ``cre backup`` takes Beam options, whose values argparse would
    take for an action (``--runner DirectRunner``): so ``verify`` arrives first among them. A
    ``BackupError`` is a ``PlatformError``: ``common.dispatch`` says it in one line, exit 1."""
    if args.beam_args[:1] == ["verify"]:
        args.command = "backup verify"  # the name dispatch gives its one-line error
        return verify_command(args)
    if not args.to:
        print("cre backup: give --to ROOT, or verify --from BACKUP", file=sys.stderr)
        return Exit.USAGE
    with progress.shown():
        done = operations.backup(cassandra_config(args, required=True), args.to,
                                 args.beam_args, args.force, args.avro_codec)
    manifest = done.manifest
    ledger = manifest["ledger"]
    report(args, manifest, [
        *(f"{name:<24} {entry['rows']:>10} rows  {len(entry['files'])} files"
          for name, entry in sorted(manifest["tables"].items())),
        f"{done.path}: {manifest['rows']} rows of {manifest['keyspace']}, "
        f"{len(ledger['vacations'])} vacations, "
        + ("consistent" if done.consistent else
           "NOT consistent: being loaded " + ", ".join(ledger["in_progress"] or ["none"])
           + "; changed during the backup "
           + ", ".join(ledger["changed_during_backup"] or ["none"]))])
    return Exit.OK


def verify_command(args: argparse.Namespace) -> int:
    """``operations.verify_backup``: each damaged file named on stderr, exit 1 if any."""
    if not args.from_ or args.beam_args[1:]:
        print("cre backup verify: give --from BACKUP and nothing else", file=sys.stderr)
        return Exit.USAGE
    with progress.shown():
        verified = operations.verify_backup(args.from_)
    for line in verified.damaged:
        print(f"cre backup verify: damaged: {line}", file=sys.stderr)
    report(args, dataclasses.asdict(verified),
           [f"{args.from_}: {len(verified.damaged)} of {verified.files} files damaged"
            if verified.damaged else
            f"{args.from_}: {verified.files} files, {verified.rows} rows, every sha256 and row "
            "count as in the manifest"])
    return Exit.FAILURE if verified.damaged else Exit.OK


def restore_command(args: argparse.Namespace) -> int:
    """``operations.restore`` into the keyspace named (never the default one)."""
    if not args.keyspace:
        print("cre restore: give --keyspace (or CRE_CASSANDRA_KEYSPACE): the keyspace to "
              "rebuild", file=sys.stderr)
        return Exit.USAGE
    with progress.shown():
        restored = operations.restore(args.from_, cassandra_config(args, required=True),
                                      args.replication, args.beam_args)
    report(args, dataclasses.asdict(restored),
           [*(f"{name:<24} {rows:>10} rows" for name, rows in sorted(restored.rows.items())),
            f"{args.keyspace}: restored {sum(restored.rows.values())} rows from {args.from_}"])
    return Exit.OK


def prune_command(args: argparse.Namespace) -> int:
    with zone_session(args) as session:
        decisions = landing_retention.plan(Ledger(session), args.zones_root, args.older_than)
    for decision in decisions:
        if decision.remove and not args.dry_run:
            landing_retention.remove(decision)
    removed = sum(decision.remove for decision in decisions)
    verb = "would remove" if args.dry_run else "removed"
    report(args, {"dry_run": args.dry_run, "decisions": [dataclasses.asdict(d) for d in decisions]},
           [*(f"{verb if d.remove else 'kept'}  {d.path}  ({d.reason})" for d in decisions),
            f"{verb} {removed}, kept {len(decisions) - removed} of {len(decisions)} files"])
    return Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers backup, restore and landing on ``cre``'s parser."""
    backup = commands.add_parser(
        "backup", help="A logical backup of the structured zone (Avro files and a manifest).",
        usage="cre backup --to ROOT [--force] [--avro-codec C] [options] [Beam options]\n"
              "       cre backup verify --from ROOT/BACKUP_ID",
        description="Any other option is a Beam pipeline option (--runner, ...).")
    backup.add_argument("--to", help="Root of the backups, local or gs://; the backup is the "
                        "folder <keyspace>-<UTC time> under it.")
    backup.add_argument("--from", dest="from_", help="verify: the backup folder.")
    backup.add_argument("--force", **FLAG, help="Back up even while a vacation is being "
                        "loaded (the manifest says the backup is not consistent).")
    AVRO_CODEC.but(underscored=False, default="deflate", help=None).add_to(backup)
    add_connection_arguments(backup)
    backup.set_defaults(handler=backup_command, beam_args=[])

    restore = commands.add_parser(
        "restore", help="Rebuild a keyspace from a backup: migrate, check, load.",
        description="Any other option is a Beam pipeline option (--runner, ...).")
    restore.add_argument("--from", dest="from_", required=True, help="The backup folder.")
    add_connection_arguments(restore)
    restore.set_defaults(handler=restore_command, beam_args=[])

    landing = commands.add_parser("landing", help="The landing zone's retention.")
    actions = landing.add_subparsers(dest="action", required=True)
    prune = actions.add_parser("prune", help="Remove landed archives of DELIVERED or REJECTED "
                               "vacations older than --older-than days.")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    ZONES_ROOT.but(underscored=False, required=True).add_to(prune)
    DRY_RUN.but(help="Say what would go; remove nothing.").add_to(prune)
    add_connection_arguments(prune)
    prune.set_defaults(handler=prune_command)
