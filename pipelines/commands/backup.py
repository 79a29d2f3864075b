"""The operations commands of ``cre``: backup, backup verify, restore, landing prune."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pipelines import landing_retention, operations, progress
from pipelines.commands.common import add_connection_arguments, report, zone_session
from pipelines.commands.parsing import exit_codes, group, subcommand
from pipelines.ledger import Ledger
from pipelines.options import (
    AVRO_CODEC,
    DRY_RUN,
    FLAG,
    JSON,
    REPLICATION,
    SINK,
    ZONES_ROOT,
    add_flags,
    cassandra_config,
    connection,
)
from transforms.contract import Exit


def backup_command(args: argparse.Namespace) -> int:
    """``operations.backup``. A ``BackupError`` is a ``PlatformError``: ``common.dispatch``
    says it in one line, exit 1."""
    if not args.to:
        args.command_parser.error("give --to ROOT (or: cre backup verify --from BACKUP)")
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
    args.command = "backup verify"  # the name dispatch gives its one-line error
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
                                      args.replication, [*args.beam_args, *_sink(args)])
    report(args, dataclasses.asdict(restored),
           [*(f"{name:<24} {rows:>10} rows" for name, rows in sorted(restored.rows.items())),
            restored.describe()])
    return Exit.OK


def _sink(args: argparse.Namespace) -> list[str]:
    """The writer's settings (``SINK``) as the restore pipeline's options."""
    return [f"{one.spellings[-1]}={getattr(args, one.dest)}" for one in SINK]


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
    """Registers backup (and backup verify), restore and landing on ``cre``'s parser."""
    _add_backup_parsers(commands)
    restore = subcommand(
        commands, "restore", "Rebuild a keyspace from a backup: check, migrate, load.",
        beam=True, description="Rebuilds a new or empty keyspace from a backup: checks every "
        "file, creates the keyspace and migrates it, loads the tables (the ledger last).",
        epilog=exit_codes(
            "restored: the rows per table", failure="refused before anything is created (a "
            "damaged backup, an unknown migration, a replication the cluster cannot hold), the "
            "target holds rows, fewer rows restored than backed up, or the platform failed"))
    restore.add_argument("--from", dest="from_", required=True, metavar="BACKUP",
                         help="The backup folder, ROOT/<backup id>, local or gs://.")
    add_connection_arguments(restore, connection(
        keyspace="The keyspace to rebuild, new or empty: required, here or in "
        "$CRE_CASSANDRA_KEYSPACE (no default: never the structured zone's own)."))
    add_flags(restore, SINK, (REPLICATION.but(default=None, help=(
        "Replication of the restored keyspace: SimpleStrategy:<rf> or "
        "NetworkTopologyStrategy:<dc>=<rf>,... (default: $CRE_CASSANDRA_REPLICATION, else the "
        "backup's source keyspace's replication)")),))
    restore.set_defaults(handler=restore_command)

    actions = group(commands, "landing", "The landing zone's retention.")
    prune = subcommand(actions, "prune", "Remove landed archives of DELIVERED or REJECTED "
                       "vacations older than --older-than days.", epilog=exit_codes(
                           "done: each file removed (or kept, and why) on stdout"))
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="Keep what landed fewer days ago than this.")
    ZONES_ROOT.but(underscored=False, required=True).add_to(prune)
    DRY_RUN.but(help="Say what would go; remove nothing.").add_to(prune)
    add_connection_arguments(prune)
    prune.set_defaults(handler=prune_command)


def _add_backup_parsers(commands: argparse._SubParsersAction) -> None:
    backup = subcommand(
        commands, "backup", "A logical backup of the structured zone (Avro files and a "
        "manifest); backup verify checks one.", beam=True,
        description="Backs the keyspace up to ROOT/<keyspace>-<UTC time>: every table as Avro "
        "files, then manifest.json. Refused while a vacation is being loaded, unless --force. "
        "cre backup verify --from BACKUP checks a backup.", epilog=exit_codes(
            "backed up: the rows per table, and whether the backup is consistent",
            failure="refused (a vacation is being loaded: --force), or the platform failed"))
    backup.add_argument("--to", metavar="ROOT", help="Root of the backups, local or gs://; the "
                        "backup is the folder <keyspace>-<UTC time> under it (required without "
                        "verify).")
    backup.add_argument("--force", **FLAG, help="Back up even while a vacation is being "
                        "loaded (the manifest says the backup is not consistent).")
    AVRO_CODEC.but(underscored=False, default="deflate",
                   help="Codec of the backup's Avro files.").add_to(backup)
    add_connection_arguments(backup, connection(
        keyspace="The keyspace to back up (default: $CRE_CASSANDRA_KEYSPACE, else cre)."))
    backup.set_defaults(handler=backup_command)
    actions = backup.add_subparsers(dest="action", metavar="verify")
    verify = subcommand(
        actions, "verify", "Check a backup: every file's sha256, size and rows against its "
        "manifest.", epilog=exit_codes(
            "every file as the manifest says", failure="a file is damaged or missing (each "
            "named on stderr), or the backup cannot be read"))
    verify.add_argument("--from", dest="from_", required=True, metavar="BACKUP",
                        help="The backup folder, ROOT/<backup id>, local or gs://.")
    JSON.add_to(verify)
    verify.set_defaults(handler=verify_command)
