"""The collection commands of ``cre``: tenants, serve, fetchdata, audit."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import getpass
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from io_connectors.cassandra_client import CassandraConfig
from pipelines import progress, roles
from pipelines.child_runs import ingest_command
from pipelines.commands.common import add_connection_arguments, report, text_table, zone_session
from pipelines.commands.parsing import exit_codes, subcommand
from pipelines.options import (
    LEASE_SECONDS,
    OPERATORS,
    PASSWORD_STDIN,
    RUNNER,
    TENANTS,
    ZONES_ROOT,
    add_flags,
    cassandra_config,
)
from service.audit import (
    ANONYMOUS,
    MAX_TTL_DAYS,
    AuditTrail,
    events_since,
    tenants_since,
)
from transforms.contract import Exit

_LOG = logging.getLogger(__name__)


def _password(args: argparse.Namespace) -> str:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("password: ")


def _accounts(command: str, store, args: argparse.Namespace,
              actions: dict[str, Callable[[], object]], describe: Callable[[Any], str]) -> int:
    """An account file's ``passwd``, ``remove`` and ``list``, and the kind's own ``actions``
    (``add``...); a refused change is exit 2 with the store's reason."""
    try:
        if args.action in actions:
            actions[args.action]()
        elif args.action == "passwd":
            store.passwd(args.name, _password(args))
        elif args.action == "remove":
            store.remove(args.name)
        else:
            for account in store.load().values():
                print(describe(account))
    except ValueError as error:
        print(f"cre {command}: error: {error}", file=sys.stderr)
        return Exit.USAGE
    return Exit.OK


def tenants(args: argparse.Namespace) -> int:
    from service.tenants import TenantStore

    store = TenantStore(Path(args.tenants))

    def add() -> None:
        profile = {"runner": args.runner,
                   **dict(option.split("=", 1) for option in args.pipeline_option)}
        _check_profile(args.command_parser, profile)
        store.add(args.name, _password(args), args.formats, args.max_files, args.max_bytes,
                  profile)

    def describe(tenant) -> str:
        limits = tenant.constraints()
        return (f"{tenant.name}  formats {','.join(tenant.formats)}  max files "
                f"{limits['max_files_per_upload_session']}  max bytes "
                f"{limits['max_bytes_per_file']}")

    return _accounts("tenants", store, args, {"add": add}, describe)


def _check_profile(parser: argparse.ArgumentParser, profile: dict[str, str]) -> None:
    """Refuses (exit 2) a tenant's runner profile its ingests' command line would refuse."""
    from pipelines.commands import cli  # cli assembles this module's commands

    ingest, refused = cli.parser().parse_known_args(
        ingest_command("BAF.tar.bz2", "zones", profile))
    if refused:
        parser.error(f"its ingests would be refused: {ingest.command_parser.unrecognized(refused)}")


def operators(args: argparse.Namespace) -> int:
    """The console's people: ``add NAME [--role]``, ``role NAME --role``, ``passwd``,
    ``remove``, ``list``."""
    from service.console.operators import OperatorStore

    if args.action == "role" and args.role is None:
        args.command_parser.error("role NAME needs --role viewer|operator")
    store = OperatorStore(Path(args.operators))
    return _accounts("operators", store, args, {
        "add": lambda: store.add(args.name, _password(args), args.role or "viewer"),
        "role": lambda: store.set_role(args.name, args.role)},
        lambda operator: f"{operator.name}  {operator.role}")


def _ingest_config(config: CassandraConfig, username: Optional[str]) -> CassandraConfig:
    """The connection of the ingests the manager starts: the service's own, or, for least
    privilege, another role's (``cre_ingest``, its password in ``CRE_INGEST_PASSWORD``)."""
    if username is None:
        return config
    password = os.environ.get(roles.INGEST.password_variable)
    if not password:
        raise SystemExit(f"cre serve: error: --ingest-username needs "
                         f"{roles.INGEST.password_variable}")
    return dataclasses.replace(config, username=username, password=password)


def serve(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from pipelines.ledger import Ledger
    from service.app import create_app
    from service.collect.ingest_manager import IngestManager
    from service.console.actions import ActionRunner
    from service.dependencies import Settings
    from service.serving import Limits, run

    if bool(args.tls_cert) != bool(args.tls_key):
        print("cre serve: error: --tls-cert and --tls-key go together", file=sys.stderr)
        return Exit.USAGE
    if min(args.header_timeout, args.body_timeout, args.tenant_concurrency) <= 0:
        print("cre serve: error: --header-timeout, --body-timeout and --tenant-concurrency "
              "must be positive", file=sys.stderr)
        return Exit.USAGE
    config = cassandra_config(args, required=True)
    session = config.connect(config.keyspace)
    stop = threading.Event()
    audit = AuditTrail(session, f"{socket.gethostname()}:{args.port}", args.audit_ttl_days)
    registry = CollectorRegistry()  # /metrics: the service's and its manager's
    if not args.no_manager:
        manager = IngestManager(
            Ledger(session), _ingest_config(config, args.ingest_username), args.zones_root,
            args.tenants, parallelism=args.parallelism, lease_seconds=args.lease_seconds,
            max_failures=args.max_failures, retry_seconds=args.retry_seconds,
            registry=registry, audit=audit)
        threading.Thread(target=manager.run, args=(stop,), name="ingest-manager",
                         daemon=True).start()
    actions = None if args.no_manager else ActionRunner(
        _ingest_config(config, args.ingest_username), args.zones_root, audit)
    settings = Settings(args.zones_root, args.tenants, args.token_seconds,
                        operators_path=args.operators,
                        tenant_concurrency=args.tenant_concurrency)
    app = create_app(settings, session, audit=audit, registry=registry, actions=actions)
    try:
        run(app, args.host, args.port, Limits(args.header_timeout, args.body_timeout),
            tls_cert=args.tls_cert, tls_key=args.tls_key)
    finally:
        stop.set()
        if actions is not None:
            actions.wait()
        audit.close()
        session.cluster.shutdown()
    return Exit.OK


_DEFAULT_SERVER = "http://127.0.0.1:8080"


def fetchdata_command(args: argparse.Namespace) -> int:
    from sender.fetchdata import check_server, fetchdata

    servers = args.server or [_DEFAULT_SERVER]
    try:
        for server in servers:
            check_server(server, args.insecure)
    except ValueError as error:
        print(f"cre fetchdata: error: {error}", file=sys.stderr)
        return Exit.USAGE
    password = args.password or os.environ.get("CRE_PASSWORD") or getpass.getpass("password: ")
    try:
        with progress.shown():
            outcomes = fetchdata(servers, args.user, password, Path(args.dir), args.ca_file)
    except (PermissionError, OSError) as error:
        print(f"cre fetchdata: error: {error}", file=sys.stderr)
        return Exit.FAILURE
    print("\n".join(text_table([dataclasses.asdict(o) for o in outcomes],
                               ("file", "result", "reason", "upload_id"),
                               ("file", "result", "why", "upload id"))))
    sent = all(outcome.result in ("sent", "skipped") for outcome in outcomes)
    return Exit.OK if sent else Exit.FAILURE


def _ttl_days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to "
                                         f"{MAX_TTL_DAYS}")
    return int(text)


def _since(text: str) -> datetime.datetime:
    """An ISO date (its 00:00) or date and time; UTC unless it names its offset."""
    try:
        since = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date and time") \
            from None
    return since if since.tzinfo else since.replace(tzinfo=datetime.UTC)


def audit(args: argparse.Namespace) -> int:
    """A tenant's audit trail, or every tenant's for the operator; each query names one
    tenant's partitions, so no listing of one tenant shows another's."""
    since = args.since or datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)
    with zone_session(args) as session:
        tenants = [args.tenant] if args.tenant else tenants_since(session, since)
        events = sorted((event for tenant in tenants
                         for event in events_since(session, tenant, since)),
                        key=lambda event: event["at"], reverse=True)
    columns = ("at", *(() if args.tenant else ("tenant",)), "replica", "client", "action",
               "object", "outcome", "detail")
    report(args, events, [*text_table(events, columns),
                          f"{len(events)} events of {args.tenant or 'every tenant'} since "
                          f"{since.isoformat()}"])
    return Exit.OK


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers tenants, operators, serve, audit and fetchdata."""
    _add_account_parsers(commands)
    _add_serve_parser(commands)
    _add_audit_and_fetchdata_parsers(commands)


_ACCOUNT_EXITS = exit_codes(
    "done", failure="the file cannot be read or written", usage="the change is refused (the "
    "reason on stderr: no such name, already there...), or the command line is: nothing done")


def _add_account_parsers(commands: argparse._SubParsersAction) -> None:
    tenant_parser = subcommand(
        commands, "tenants", "The senders allowed to upload.", epilog=_ACCOUNT_EXITS,
        description="The senders allowed to upload, in the tenants file: add one (its password "
        "read from a prompt or --password-stdin), list them, change a password, remove one.")
    tenant_parser.add_argument("action", choices=("add", "list", "passwd", "remove"),
                               help="What to do.")
    tenant_parser.add_argument("name", nargs="?", help="The tenant (all but list).")
    add_flags(tenant_parser, (TENANTS, PASSWORD_STDIN))
    tenant_parser.add_argument("--formats", nargs="+", help="add: the file name endings it may "
                               "send (default: .tar.bz2).")
    tenant_parser.add_argument("--max-files", type=int, default=10,
                               help="add: most files per upload session.")
    tenant_parser.add_argument("--max-bytes", type=int, default=20 << 30,
                               help="add: most bytes per file.")
    RUNNER.but(help="add: the Beam runner of this tenant's ingests.").add_to(tenant_parser)
    tenant_parser.add_argument("--pipeline-option", action="append", default=[],
                               metavar="KEY=VALUE", help="add: a Beam option of its ingests "
                               "(repeatable), e.g. flink_master=host:8081; one cre ingest "
                               "would refuse is refused here.")
    tenant_parser.set_defaults(handler=tenants)

    operator_parser = subcommand(
        commands, "operators", "The people of the operations console (cre serve's /console).",
        epilog=_ACCOUNT_EXITS, description="The people of the operations console, in the "
        "operators file: add one (--role, default viewer), change a role (role NAME --role), "
        "list them, change a password, remove one.")
    operator_parser.add_argument("action", choices=("add", "list", "passwd", "remove", "role"),
                                 help="What to do.")
    operator_parser.add_argument("name", nargs="?", help="The operator (all but list).")
    OPERATORS.add_to(operator_parser)
    # operators.ROLES, spelt out: importing it (argon2) would slow every cre command's start
    operator_parser.add_argument("--role", choices=("viewer", "operator"),
                                 help="viewer reads every page; operator also replays, rolls "
                                 "back, redelivers and recovers (add: default viewer; role: "
                                 "required).")
    PASSWORD_STDIN.add_to(operator_parser)
    operator_parser.set_defaults(handler=operators)


def _add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve_parser = subcommand(
        commands, "serve", "The collection service and its ingest manager.",
        description="Serves the collection API (/v1), the operations console (/console), "
        "/healthz and /metrics, and, unless --no-manager, runs the ingest manager, which "
        "ingests what lands (as cre ingest children).", epilog=exit_codes(
            "stopped (Ctrl-C, SIGTERM)", failure="could not start (Cassandra, the port, "
            "--ingest-username without its password) or the platform failed"))
    serve_parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    serve_parser.add_argument("--port", type=int, default=8080, help="Port to listen on.")
    add_flags(serve_parser, (
        ZONES_ROOT.but(underscored=False, required=True,
                       help="Root of the zones the uploads land in, local or gs://."),
        TENANTS, OPERATORS.but(help="The console's operators file (cre operators add; "
                               "default var/operators.json)."), LEASE_SECONDS))
    serve_parser.add_argument("--token-seconds", type=float, default=900.0,
                              help="Lifetime of a bearer token.")
    serve_parser.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                              help="A connection's TLS handshake, then its request head, must "
                              "each be done within this (a later request's head: from its "
                              "first byte); a slower client is closed, its head answered 408.")
    serve_parser.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                              help="The longest pause within a request body: a longer one "
                              "closes the connection (an upload is discarded).")
    serve_parser.add_argument("--tenant-concurrency", type=int, default=4, metavar="N",
                              help="Most uploads of one tenant in progress at once, counted "
                              "per replica (N replicas allow N times as many): the next is "
                              "answered 429 unread, with Retry-After.")
    serve_parser.add_argument("--parallelism", type=int, default=2,
                              help="Most ingests running at once.")
    serve_parser.add_argument("--no-manager", action="store_true",
                              help="Only collect: ingests run elsewhere.")
    serve_parser.add_argument("--max-failures", type=int, default=3,
                              help="Failed ingests of a vacation (by any replica) after which "
                              "it is left for cre recover.")
    serve_parser.add_argument("--retry-seconds", type=float, default=30.0,
                              help="Pause after a vacation's first failed ingest, doubled "
                              "after each next one.")
    serve_parser.add_argument("--tls-cert", default=os.environ.get("CRE_SERVE_TLS_CERT"),
                              metavar="FILE", help="Serve HTTPS with this PEM certificate "
                              "(chain), with --tls-key; default $CRE_SERVE_TLS_CERT.")
    serve_parser.add_argument("--tls-key", default=os.environ.get("CRE_SERVE_TLS_KEY"),
                              metavar="FILE", help="Its PEM private key; default "
                              "$CRE_SERVE_TLS_KEY.")
    serve_parser.add_argument(
        "--ingest-username", help="The Cassandra role the ingests it starts connect as (e.g. "
        f"{roles.INGEST.name}; its password in ${roles.INGEST.password_variable}); default: the "
        "service's own.")
    serve_parser.add_argument("--audit-ttl-days", type=_ttl_days, default=400,
                              help="How long the audit trail keeps an event, in days.")
    add_connection_arguments(serve_parser, json=False)
    serve_parser.set_defaults(handler=serve)


def _add_audit_and_fetchdata_parsers(commands: argparse._SubParsersAction) -> None:
    audit_parser = subcommand(commands, "audit", "The audit trail, newest first.",
                              epilog=exit_codes("the events on stdout"))
    audit_parser.add_argument("--tenant", help=f"Only this tenant's ({ANONYMOUS}: callers who "
                              "proved none); default: every tenant's.")
    audit_parser.add_argument("--since", type=_since, help="ISO date or date and time, UTC "
                              "unless it says (default: 7 days ago).")
    add_connection_arguments(audit_parser)
    audit_parser.set_defaults(handler=audit)

    fetch = subcommand(
        commands, "fetchdata", "Send a folder of files to the collection service.",
        description="Sends every file of a folder to the collection service (cre serve), "
        "skipping what it already has, and prints a line per file.", epilog=exit_codes(
            "every file sent, or skipped as already there", failure="a file was not sent (its "
            "line says why), or the service could not be reached or refused the login",
            usage="plain http:// to another machine without --insecure, or the command line "
            "is refused: nothing sent"))
    fetch.add_argument("-u", "--user", required=True, help="The tenant to log in as.")
    fetch.add_argument("-p", "--password", help="Prefer the CRE_PASSWORD variable or the "
                       "prompt: a command line shows in the process list.")
    fetch.add_argument("-d", "--dir", default="client-input-dir", help="The folder to send.")
    fetch.add_argument("--server", action="append", metavar="URL",
                       help="The collection service's URL; repeated for its replicas, tried in "
                       "order: the next when one cannot be reached or answers 502, 503 or 504 "
                       f"after its retries (default: {_DEFAULT_SERVER}).")
    fetch.add_argument("--ca-file", type=Path, metavar="FILE", help="Verify the server's "
                       "certificate against these PEM authorities (default: the system's).")
    fetch.add_argument("--insecure", action="store_true", help="Allow plain http:// to "
                       "another machine: the password and the files travel in clear.")
    fetch.set_defaults(handler=fetchdata_command)
