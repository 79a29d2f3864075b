"""The runner arguments the jobs are launched with: what each runner needs filled in.

Beam's FlinkRunner reaches Flink through Beam's Flink job server (a Java jar from Maven Central)
and runs the SDK workers in a worker pool beside the cluster (``--environment_type=EXTERNAL``),
never in Docker.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import apache_beam

from transforms.contract import PlatformError

PROJECT = Path(__file__).resolve().parents[1]
FLINK_VERSION = "1.20.3"  # Beam 2.77 runs on Flink 1.19, 1.20, 2.0, 2.1 and 2.2
FLINK_MINOR = FLINK_VERSION.rsplit(".", 1)[0]
JOB_SERVER = (f"org.apache.beam:beam-runners-flink-{FLINK_MINOR}-job-server:"
              f"{apache_beam.__version__}")
JOB_SERVER_JARS = PROJECT / "var" / "flink-job-server"  # shared by every home
WORKER_POOL_ENV = "CRE_FLINK_WORKER_POOL"


class FlinkUnavailable(PlatformError):
    """The cluster or Beam's job server for it cannot be had: said in one line."""


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
    """``argv`` ready for Beam's FlinkRunner: ``--flink-master`` spelt as Beam spells it, and
    the Flink version, worker pool and job server filled in where the user gave none."""
    if not any(arg.lower() == "--runner=flinkrunner" for arg in _joined(argv)):
        return argv
    argv = [arg.replace("--flink-master", "--flink_master", 1)
            if arg.startswith("--flink-master") else arg for arg in argv]
    given = {arg.split("=", 1)[0] for arg in _joined(argv)}
    defaults = {
        "--flink_version": FLINK_MINOR,
        "--environment_type": "EXTERNAL",
        "--environment_config": os.environ.get(WORKER_POOL_ENV, "127.0.0.1:50000"),
    }
    extra = [f"{name}={value}" for name, value in defaults.items() if name not in given]
    if "--flink_job_server_jar" not in given:
        extra.append(f"--flink_job_server_jar={job_server_jar()}")
    return argv + extra


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
