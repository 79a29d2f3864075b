"""The runner arguments the jobs are launched with: what each runner needs filled in.

Beam's FlinkRunner reaches Flink through Beam's Flink job server (a Java jar from Maven Central)
and runs the SDK workers in a worker pool beside the cluster (``--environment_type=EXTERNAL``),
never in Docker. Beam's PrismRunner runs the Go binary ``make setup`` builds into the
virtualenv, and Prism starts each SDK worker as a process of its own (``cre-worker``,
``--environment_type=PROCESS``): the workers share nothing with the driver but the Fn API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import apache_beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from transforms.contract import PlatformError

PROJECT = Path(__file__).resolve().parents[1]
FLINK_VERSION = "1.20.3"  # Beam 2.77 runs on Flink 1.19, 1.20, 2.0, 2.1 and 2.2
FLINK_MINOR = FLINK_VERSION.rsplit(".", 1)[0]
JOB_SERVER = (f"org.apache.beam:beam-runners-flink-{FLINK_MINOR}-job-server:"
              f"{apache_beam.__version__}")
JOB_SERVER_JARS = PROJECT / "var" / "flink-job-server"  # shared by every home
WORKER_POOL_ENV = "CRE_FLINK_WORKER_POOL"
BIN = Path(sys.executable).parent  # the virtualenv's: cre, cre-worker and prism
PRISM = BIN / "prism"


class FlinkUnavailable(PlatformError):
    """The cluster or Beam's job server for it cannot be had: said in one line."""


class PrismUnavailable(PlatformError):
    """Prism is not installed where the jobs look for it."""


def job_server_jar() -> Path:
    """Beam's Flink job server, fetched once with Maven."""
    group, artifact, version = JOB_SERVER.split(":")
    jar = JOB_SERVER_JARS / f"{artifact}-{version}.jar"
    if not jar.exists():
        JOB_SERVER_JARS.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={JOB_SERVER}",
             f"-DoutputDirectory={JOB_SERVER_JARS}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if fetched.returncode != 0 or not jar.exists():
            raise FlinkUnavailable(
                f"Beam's Flink job server {JOB_SERVER} could not be fetched from Maven "
                f"Central; put the jar in {JOB_SERVER_JARS} or pass --flink_job_server_jar")
    return jar



def runner_arguments(argv: list[str]) -> list[str]:
    """``argv`` ready for its runner: for FlinkRunner, ``--flink-master`` spelt as Beam spells
    it, the Flink version, worker pool and job server; for PrismRunner, the binary and the
    worker process; each only where the user gave none."""
    runner = next((arg.split("=", 1)[1].lower() for arg in _joined(argv)
                   if arg.startswith("--runner=")), "")
    if runner == "flinkrunner":
        return _flink_arguments(argv)
    if runner == "prismrunner":
        return _prism_arguments(argv)
    return argv


def one_worker(options: PipelineOptions) -> bool:
    """Whether the runner runs every step in one worker: Beam's DirectRunner (or none named) in
    memory, with one worker."""
    runner = options.view_as(StandardOptions).runner
    direct = options.view_as(DirectOptions)
    return ((runner is None or runner.lower() in ("directrunner", "direct"))
            and direct.direct_running_mode == "in_memory" and direct.direct_num_workers <= 1)


def _flink_arguments(argv: list[str]) -> list[str]:
    argv = [arg.replace("--flink-master", "--flink_master", 1)
            if arg.startswith("--flink-master") else arg for arg in argv]
    given = _given(argv)
    defaults = {
        "--flink_version": FLINK_MINOR,
        "--environment_type": "EXTERNAL",
        "--environment_config": os.environ.get(WORKER_POOL_ENV, "127.0.0.1:50000"),
    }
    extra = [f"{name}={value}" for name, value in defaults.items() if name not in given]
    if "--flink_job_server_jar" not in given:
        extra.append(f"--flink_job_server_jar={job_server_jar()}")
    return argv + extra


def _prism_arguments(argv: list[str]) -> list[str]:
    given = _given(argv)
    extra = []
    if "--prism_location" not in given:
        if not PRISM.exists():
            raise PrismUnavailable(f"Prism is not installed at {PRISM}: run make setup, or "
                                   "pass --prism_location")
        extra.append(f"--prism_location={PRISM}")
    if "--environment_type" not in given:
        extra += ["--environment_type=PROCESS",
                  "--environment_config=" + json.dumps({"command": str(BIN / "cre-worker")})]
    return argv + extra


def _given(argv: list[str]) -> set[str]:
    """The option names ``argv`` sets."""
    return {arg.split("=", 1)[0] for arg in _joined(argv)}


def _joined(argv: list[str]) -> list[str]:
    """``--name value`` pairs as ``--name=value``, to look options up by name."""
    joined, pending = [], None
    for arg in argv:
        if pending is not None and not arg.startswith("--"):
            joined.append(f"{pending}={arg}")
            pending = None
            continue
        if pending is not None:
            joined.append(pending)
        pending = arg if arg.startswith("--") and "=" not in arg else None
        if pending is None:
            joined.append(arg)
    if pending is not None:
        joined.append(pending)
    return joined
