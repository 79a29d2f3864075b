"""``cre``: the product's one command, a subcommand per capability, each group in its module."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from pipelines.commands import backup, collect, common, local, recover, run, zone


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cre", description="CRE Integration: Arkea vacations "
                                     "into the MMG dataplatform.")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (run, zone, backup, recover, collect, local):
        group.add_parsers(commands)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common.configure_logging(argv)
    return common.dispatch(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
