"""``cre``: the product's one command, a subcommand per capability, each group in its module."""

from __future__ import annotations

import sys
from typing import Optional

from pipelines.commands import backup, collect, common, local, recover, run, zone
from pipelines.commands.parsing import CommandParser


def parser() -> CommandParser:
    """``cre``'s parser, every subcommand on it."""
    cre = CommandParser(prog="cre", description="CRE Integration: Arkea vacations into the MMG "
                        "dataplatform. cre COMMAND --help says what a command takes and what "
                        "its exit codes mean.", epilog="exit codes: each command's --help.")
    commands = cre.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (run, zone, backup, recover, collect, local):
        group.add_parsers(commands)
    return cre


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common.configure_logging(argv)
    return common.dispatch(parser(), argv)
