"""What every command shares: connection arguments, the structured-zone session, and printing
(one JSON document with ``--json``, else aligned text tables for people)."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from pipelines.log_levels import quiet_libraries
from pipelines.operations import connected
from pipelines.options import CONNECTION, JSON, Flag, add_flags, cassandra_config
from pipelines.runners import runner_arguments
from transforms import contract


def plain(value: Any) -> Any:
    """Dates as ISO text, decimals as written; what JSON output uses too."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def text_table(rows: Sequence[dict], columns: Sequence[str],
               headers: Optional[Sequence[str]] = None) -> Iterator[str]:
    """A header line, then one line per row, columns two spaces apart; None shows as nothing.

    Plain text unless stdout is a terminal (bold headers there), so scripts can split the lines;
    never wrapped, and cells are shown as written (no rich markup).
    """
    table = Table(*(headers or columns), box=None, pad_edge=False)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(plain(row.get(c))) for c in columns))
    lines = io.StringIO()
    Console(file=lines, force_terminal=sys.stdout.isatty(), width=sys.maxsize, markup=False,
            emoji=False, highlight=False).print(table)
    return (line.rstrip() for line in lines.getvalue().splitlines())


def add_connection_arguments(parser: argparse.ArgumentParser,
                             connection: Sequence[Flag] = CONNECTION, *, json: bool = True) -> None:
    """The structured zone's connection (``connection``: ``CONNECTION`` or a command's own
    help of it) and, where the command reports with ``report``, ``--json``."""
    add_flags(parser, connection, (JSON,) if json else ())


def report(args: argparse.Namespace, document: Any, lines: Iterable[str]) -> None:
    """A command's result: one JSON document with ``--json``, else lines for a person."""
    if args.json:
        print(json.dumps(document, default=plain, ensure_ascii=False))
    else:
        for line in lines:
            print(line)


def zone_session(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """The structured zone's session the command's connection arguments describe."""
    return connected(cassandra_config(args, required=True))


def _without_driver_traceback(record: logging.LogRecord) -> bool:
    """The driver logs a traceback for every refused connection: its message says enough."""
    if record.name.startswith("cassandra"):
        record.exc_info = None
        record.exc_text = None
    return True


def first_line(error: BaseException) -> str:
    """The root cause's first line: Beam wraps a DoFn's error in its own."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def configure_logging(argv: list[str]) -> None:
    """Logs to stderr; the driver's warnings matter during a load, elsewhere a query's failure
    is said in one line."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_without_driver_traceback)
    quiet_libraries(logging.WARNING if argv[:1] == ["ingest"] else logging.CRITICAL)


def dispatch(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Runs the command ``argv`` names once its parser (``parsing.CommandParser``) has read
    all of it: anything neither the command nor, for a Beam run, Beam knows is refused, exit 2,
    before anything is done. Beam's options reach the handler as ``beam_args``."""
    args, rest = parser.parse_known_args(argv)
    command = args.command_parser
    unknown = [*rest, *(() if command.beam else getattr(args, "beam_args", ()))]
    if unknown:
        command.refuse(unknown)
    try:
        if command.beam:
            args.beam_args = runner_arguments(args.beam_args)
        return args.handler(args)
    except contract.PlatformError as error:  # not the input's fault: one line, no traceback
        print(f"cre {args.command}: error: {error}", file=sys.stderr)
        return contract.Exit.FAILURE
