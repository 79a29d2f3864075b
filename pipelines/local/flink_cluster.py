"""A local standalone Apache Flink cluster, for trying the FlinkRunner on one machine.

The Flink distribution comes from the ``apache-flink`` and ``apache-flink-libraries`` PyPI
packages (``bin/``, ``conf/``, ``lib/``), installed with ``--no-deps`` in their own folder
because they pin an old Beam. Beam's Python SDK reaches Flink through Beam's Flink job server
(a Java jar from Maven Central); the SDK workers run in a Beam worker pool beside the cluster
(``--environment_type=EXTERNAL``), never in Docker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

import yaml

from pipelines.runners import FLINK_VERSION, FlinkUnavailable

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = PROJECT / "var" / "flink"
DIST = PROJECT / "var" / "flink-dist"  # shared by every home: installed once per machine


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One JobManager and one TaskManager on loopback, and the Beam worker pool."""

    home: Path = DEFAULT_HOME
    rest_port: int = 8081
    rpc_port: int = 6123
    worker_pool_port: int = 50000
    slots: int = 2

    @property
    def flink_home(self) -> Path:
        return DIST / "pyflink"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def pool_pid_file(self) -> Path:
        return self.home / "worker_pool.pid"

    @property
    def master(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def install(self) -> Path:
        """The Flink distribution, installed once per machine."""
        marker = DIST / f".flink-{FLINK_VERSION}"
        if not marker.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
                 "--target", str(DIST), f"apache-flink=={FLINK_VERSION}",
                 f"apache-flink-libraries=={FLINK_VERSION}"], check=True)
            marker.touch()
        return self.flink_home

    def _write_conf(self) -> None:
        """The distribution's own configuration (its Java 17 options included), bound to
        loopback on this cluster's ports."""
        config = yaml.safe_load((self.flink_home / "conf" / "config.yaml").read_text())
        config["jobmanager"]["bind-host"] = "127.0.0.1"
        config["jobmanager"]["rpc"] = {"address": "127.0.0.1", "port": self.rpc_port}
        config["taskmanager"].update({"bind-host": "127.0.0.1", "host": "127.0.0.1",
                                     "numberOfTaskSlots": self.slots})
        config["rest"] = {"address": "127.0.0.1", "bind-address": "127.0.0.1",
                          "port": self.rest_port}
        config["env"].update(pid={"dir": str(self.home)}, log={"dir": str(self.log_dir)})
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
            (self.conf_dir / name).write_text((self.flink_home / "conf" / name).read_text())
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(config))

    def overview(self) -> Optional[dict]:
        """The JobManager's REST overview (task managers, slots, jobs), or None."""
        try:
            with urllib.request.urlopen(f"http://{self.master}/overview", timeout=2) as reply:
                return json.load(reply)
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        overview = self.overview()
        return bool(overview and overview["slots-total"] >= self.slots
                    and _listening(self.worker_pool_port))

    def _script(self, name: str, action: str) -> None:
        env = {**os.environ, "FLINK_CONF_DIR": str(self.conf_dir)}
        subprocess.run(["bash", str(self.flink_home / "bin" / name), action], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, timeout: float = 120.0) -> None:
        """Starts what is not running yet and returns once every slot is registered."""
        if self.running():
            return
        self.install()
        self._write_conf()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.overview() is None:
            self._script("jobmanager.sh", "start")
            self._script("taskmanager.sh", "start")
        if not _listening(self.worker_pool_port):
            self._start_worker_pool()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(1)
        self.stop()
        raise FlinkUnavailable(f"Flink did not offer {self.slots} slots on {self.master} "
                               f"within {timeout:.0f} s; see {self.log_dir}")

    def _start_worker_pool(self) -> None:
        """Beam's SDK worker pool: Flink's tasks start their Python workers through it."""
        with open(self.log_dir / "worker_pool.log", "ab") as log:
            pool = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 f"--service_port={self.worker_pool_port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=PROJECT)
        self.pool_pid_file.write_text(str(pool.pid))

    def stop(self) -> None:
        if self.conf_dir.exists() and self.flink_home.exists():
            self._script("taskmanager.sh", "stop-all")
            self._script("jobmanager.sh", "stop-all")
        try:
            os.killpg(int(self.pool_pid_file.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        self.pool_pid_file.unlink(missing_ok=True)
