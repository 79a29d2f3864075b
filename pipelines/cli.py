"""``cre``: the product's one command, with a subcommand per capability."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from pipelines.cassandra_server import DEFAULT_HOME
from pipelines.options import IngestOptions
from transforms import contract


def _generate(args: argparse.Namespace) -> int:
    from pipelines.generator import generate_vacation

    path = generate_vacation(args.out, args.business_date, args.slot, args.cre_rows,
                             args.gesparam_rows, args.seed, encoding=args.encoding)
    print(path)
    return 0


def _ingest(argv: list[str]) -> int:
    from pipelines.ingest import run_ingest

    usage = argparse.ArgumentParser(prog="cre ingest", description=(
        "Lands a vacation archive, checks and validates it, and publishes the Proxy Producer "
        "zone. Any other option is a Beam pipeline option (--runner, ...). Prints the JSON "
        "summary as the last line; exit 0 accepted or duplicate, 3 rejected, 1 failure."))
    IngestOptions._add_argparse_args(usage)
    usage.add_argument("--runner", default="DirectRunner", help="The Beam runner.")
    usage.parse_known_args(argv)  # exits 2 with a message on bad usage
    try:
        outcome = run_ingest(argv)
    except Exception:
        logging.getLogger("cre").exception("the platform failed while ingesting")
        return contract.EXIT_PLATFORM_FAILURE
    print(json.dumps(outcome, ensure_ascii=False), flush=True)
    return contract.EXIT_CODES[outcome["status"]]


def _cassandra(args: argparse.Namespace) -> int:
    from pipelines.cassandra_server import Server

    server = Server(Path(args.home), args.native_port, args.storage_port)
    if args.action == "start":
        server.start()
        print(f"Cassandra answers CQL on 127.0.0.1:{server.native_port}")
    elif args.action == "stop":
        server.stop()
        print("Cassandra stopped")
    else:
        running = server.running()
        print(f"Cassandra {'answers' if running else 'does not answer'} CQL on "
              f"127.0.0.1:{server.native_port} (pid {server.pid() or '-'})")
        return 0 if running else 3
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cre", description="CRE Integration: Arkea vacations "
                                     "into the MMG dataplatform.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="Write a synthetic vacation archive.")
    generate.add_argument("--out", required=True, help="Folder for the archive.")
    generate.add_argument("--business-date", required=True, help="YYYY-MM-DD")
    generate.add_argument("--slot", type=int, default=1, choices=range(1, 7))
    generate.add_argument("--cre-rows", type=int, default=1000)
    generate.add_argument("--gesparam-rows", type=int, default=100)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--encoding", default=contract.DEFAULT_ENCODING,
                          choices=sorted(contract.ENCODINGS))
    commands.add_parser("ingest", add_help=False, help="Ingest one vacation archive.")
    cassandra = commands.add_parser("cassandra", help="A local Cassandra server: start, stop, "
                                    "status.")
    cassandra.add_argument("action", choices=("start", "stop", "status"))
    cassandra.add_argument("--home", default=str(DEFAULT_HOME), help="Data and logs folder.")
    cassandra.add_argument("--native-port", type=int, default=9042)
    cassandra.add_argument("--storage-port", type=int, default=7000)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv and argv[0] == "ingest":
        return _ingest(argv[1:])
    args = _parser().parse_args(argv)
    return {"generate": _generate, "cassandra": _cassandra}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
