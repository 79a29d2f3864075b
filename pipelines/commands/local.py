"""The local commands of ``cre``: servers for one machine (Cassandra, Flink), the sender
simulator (``generate``) and the Dataflow Flex Template files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipelines.commands.common import text_table
from pipelines.commands.parsing import exit_codes, subcommand
from pipelines.local.cassandra_cluster import DATACENTER
from pipelines.local.cassandra_cluster import DEFAULT_HOME as CLUSTER_HOME
from pipelines.local.cassandra_server import DEFAULT_HOME as CASSANDRA_HOME
from pipelines.local.flink_cluster import DEFAULT_HOME as FLINK_HOME
from pipelines.runners import WORKER_POOL_ENV, FlinkUnavailable
from transforms import contract
from transforms.contract import Exit


def generate(args: argparse.Namespace) -> int:
    from pipelines.local.generator import generate_vacation

    path = generate_vacation(args.out, args.business_date, args.slot, args.cre_rows,
                             args.gesparam_rows, args.seed, encoding=args.encoding)
    print(path)
    return Exit.OK


def cassandra(args: argparse.Namespace) -> int:
    from pipelines.local.cassandra_cluster import Cluster

    target = _cassandra_target(args)
    if isinstance(target, Cluster):
        return _cassandra_cluster(args, target)
    server = target
    if args.action == "start":
        server.start()
        print(f"Cassandra answers CQL on {server.address}:{server.native_port}")
    elif args.action == "stop":
        server.stop()
        print("Cassandra stopped")
    else:
        running = server.running()
        print(f"Cassandra {'answers' if running else 'does not answer'} CQL on "
              f"{server.address}:{server.native_port} (pid {server.pid() or '-'})")
        return Exit.OK if running else Exit.NO
    return Exit.OK


def _cassandra_target(args: argparse.Namespace):
    """The node or cluster the command acts on: with ``--nodes N`` (N > 1) or ``--node K`` the
    home's cluster, with ``--nodes 1`` its single node, else what ``start`` created there (of the
    default homes, what runs, else what started last). Ports given replace the recorded ones."""
    from pipelines.local.cassandra_cluster import Cluster, launched
    from pipelines.local.cassandra_server import Server

    home = Path(args.home) if args.home else None
    if (args.nodes or 1) > 1 or args.node:
        saved = Cluster.saved(home or CLUSTER_HOME) or Cluster(home or CLUSTER_HOME, 3)
        target = dataclasses.replace(saved, nodes=args.nodes or saved.nodes)
    elif args.nodes == 1:
        target = Server.saved(home or CASSANDRA_HOME) or Server(home or CASSANDRA_HOME)
    else:
        target = launched(home)
    ports = {"native_port": args.native_port, "storage_port": args.storage_port,
             "jmx_port": args.jmx_port if isinstance(target, Cluster) else None}
    return dataclasses.replace(target, **{name: port for name, port in ports.items()
                                          if port is not None})


def _cassandra_cluster(args: argparse.Namespace, cluster) -> int:
    """The local cluster: ``--nodes N`` creates it; ``--node K`` acts on one of its nodes."""
    if args.action == "start":
        cluster.start(args.node)
        started = f"node {args.node} answers" if args.node else \
            f"nodes {', '.join(map(str, cluster.numbers))} answer"
        print(f"Cassandra {started} CQL: CRE_CASSANDRA_HOSTS={cluster.hosts} "
              f"CRE_CASSANDRA_LOCAL_DC={DATACENTER}")
    elif args.action == "stop":
        cluster.stop(args.node)
        print(f"Cassandra node {args.node} stopped" if args.node else "Cassandra cluster stopped")
    else:
        rows = cluster.status()
        for line in text_table(rows, ("node", "address", "port", "pid", "state", "load", "owns")):
            print(line)
        wanted = [args.node] if args.node else list(cluster.numbers)
        up = all(row["state"] == "up" for row in rows if row["node"] in wanted)
        return Exit.OK if up else Exit.NO
    return Exit.OK


def flink(args: argparse.Namespace) -> int:
    from pipelines.local.flink_cluster import Cluster
    from pipelines.runners import job_server_jar

    cluster = Cluster(Path(args.home), args.rest_port, args.rpc_port, args.worker_pool_port)
    if args.action == "start":
        cluster.start()
        print(f"Flink {cluster.overview()['flink-version']} offers {cluster.slots} slots on "
              f"{cluster.master}; Beam workers on 127.0.0.1:{cluster.worker_pool_port}")
        try:
            print(f"Beam's Flink job server: {job_server_jar()}")
        except FlinkUnavailable as error:  # the cluster serves; submitting will say this again
            print(f"cre flink: warning: {error}", file=sys.stderr)
    elif args.action == "stop":
        cluster.stop()
        print("Flink stopped")
    else:
        overview = cluster.overview() or {}
        print(f"Flink on {cluster.master}: {overview.get('taskmanagers', 0)} task manager(s), "
              f"{overview.get('slots-available', 0)}/{overview.get('slots-total', 0)} slots "
              f"free, {overview.get('jobs-running', 0)} job(s) running; Beam worker pool "
              f"{'up' if cluster.running() else 'down'}")
        return Exit.OK if cluster.running() else Exit.NO
    return Exit.OK


def template(args: argparse.Namespace) -> int:
    from pipelines.local import flex_templates

    if args.action == "run":
        parameters = dict(item.split("=", 1) for item in args.param)
        print(flex_templates.run_command(args.pipeline, args.bucket, args.region, parameters))
        return Exit.OK
    stale = []
    for pipeline in flex_templates.PIPELINES:
        path, text = flex_templates.metadata_path(pipeline), flex_templates.render(pipeline)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print("\n".join(flex_templates.build_commands(pipeline, args.bucket, args.image)))
    if stale:
        print(f"cre template: {', '.join(stale)} differ from the options: run cre template "
              "build", file=sys.stderr)
        return Exit.FAILURE
    return Exit.OK


_SERVER_EXITS = exit_codes("started, stopped, or (status) it answers CQL",
                          failure="it could not be started or stopped (the reason on stderr)",
                          no="status: it does not answer (a cluster: a node asked about)")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Registers generate, cassandra, flink and template."""
    _add_generate_parser(commands)
    _add_cassandra_parser(commands)
    _add_flink_parser(commands)
    _add_template_parser(commands)


def _add_generate_parser(commands: argparse._SubParsersAction) -> None:
    generate_parser = subcommand(
        commands, "generate", "Write a synthetic vacation archive.",
        description="Writes a synthetic vacation archive BAF_<YYYYMMDD>_<NN>.tar.bz2 (what the "
        "sender would send), valid by the contract, and prints its path.",
        epilog=exit_codes("written: its path on stdout"))
    generate_parser.add_argument("--out", required=True, help="Folder for the archive.")
    generate_parser.add_argument("--business-date", required=True,
                                 help="Its business date, YYYY-MM-DD.")
    generate_parser.add_argument("--slot", type=int, default=1, choices=range(1, 7),
                                 metavar="1-6", help="Its slot of the day.")
    generate_parser.add_argument("--cre-rows", type=int, default=1000,
                                 help="Rows of its CRE file.")
    generate_parser.add_argument("--gesparam-rows", type=int, default=100,
                                 help="Rows of its GESPARAM file.")
    generate_parser.add_argument("--seed", type=int, default=1,
                                 help="Seed of the random rows: the same seed, the same archive.")
    generate_parser.add_argument("--encoding", default=contract.DEFAULT_ENCODING,
                                 choices=sorted(contract.ENCODINGS),
                                 help="Encoding of its CSV files.")
    generate_parser.set_defaults(handler=generate)


def _add_cassandra_parser(commands: argparse._SubParsersAction) -> None:
    cassandra_parser = subcommand(
        commands, "cassandra", "A local Cassandra server or cluster: start, stop, status.",
        epilog=_SERVER_EXITS,
        description="One node on 127.0.0.1, or with --nodes N a cluster of N nodes on "
        "127.0.0.1 to 127.0.0.N (one data centre, dc1); --node K starts, stops or shows one "
        "node of that cluster. start records what it created in its home: without --nodes, "
        "status, stop and start act on that again (of the two default homes, on what runs, "
        "else on what started last), with its ports.")
    cassandra_parser.add_argument("action", choices=("start", "stop", "status"),
                                  help="What to do.")
    cassandra_parser.add_argument("--home", help=f"Data and logs folder (default "
                                  f"{CASSANDRA_HOME}, a cluster's {CLUSTER_HOME}).")
    cassandra_parser.add_argument("--nodes", type=int,
                                  help="Nodes of the cluster to create (start); 1: the single "
                                  "node.")
    cassandra_parser.add_argument("--node", type=int, help="One node of the cluster.")
    cassandra_parser.add_argument("--native-port", type=int,
                                  help="Default: the recorded one, else 9042.")
    cassandra_parser.add_argument("--storage-port", type=int,
                                  help="Default: the recorded one, else 7000.")
    cassandra_parser.add_argument("--jmx-port", type=int,
                                  help="A cluster's node K: JMX (nodetool) on this + K "
                                  "(default: the recorded one, else 7199).")
    cassandra_parser.set_defaults(handler=cassandra)


def _add_flink_parser(commands: argparse._SubParsersAction) -> None:
    flink_parser = subcommand(commands, "flink", "A local Flink cluster (2 slots) and its Beam "
                              "worker pool: start, stop, status.", epilog=exit_codes(
                                  "started, stopped, or (status) it runs", failure="it could "
                                  "not be started or stopped (the reason on stderr)",
                                  no="status: its Beam worker pool is down"))
    flink_parser.add_argument("action", choices=("start", "stop", "status"), help="What to do.")
    flink_parser.add_argument("--home", default=str(FLINK_HOME), help="Distribution, logs, pids.")
    flink_parser.add_argument("--rest-port", type=int, default=8081,
                              help="The JobManager's REST port: --flink-master 127.0.0.1:PORT.")
    flink_parser.add_argument("--rpc-port", type=int, default=6123,
                              help="The JobManager's RPC port.")
    flink_parser.add_argument("--worker-pool-port", type=int, default=50000,
                              help=f"Beam worker pool (pipelines read {WORKER_POOL_ENV}).")
    flink_parser.set_defaults(handler=flink)


def _add_template_parser(commands: argparse._SubParsersAction) -> None:
    template_parser = subcommand(
        commands, "template", "Dataflow Flex Templates: write the metadata and print the gcloud "
        "commands.", description="build: writes dataflow/<pipeline>.metadata.json from the "
        "pipelines' options and prints the commands that build and push the image and the "
        "template; run: prints the command that runs a template.", epilog=exit_codes(
            "written and printed (build --check: the files are up to date)",
            failure="build --check: a metadata file differs from the options"))
    template_parser.add_argument("action", choices=("build", "run"), help="What to do.")
    template_parser.add_argument("pipeline", nargs="?", default="ingest",
                                 choices=("ingest", "deliver"),
                                 help="run: the template to run.")
    template_parser.add_argument("--check", action="store_true",
                                 help="build: only check the metadata files are up to date.")
    template_parser.add_argument("--bucket", default="BUCKET",
                                 help="The bucket of the templates (gs://BUCKET/templates/).")
    template_parser.add_argument("--image", default="REGION-docker.pkg.dev/PROJECT/REPO/"
                                 "cre:latest", help="build: the launcher image.")
    template_parser.add_argument("--region", default="europe-west1",
                                 help="run: the Dataflow region.")
    template_parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                                 help="run: a template parameter (repeatable).")
    template_parser.set_defaults(handler=template)
