"""The ``cre`` command of this checkout as a subprocess, and the waits and ports around it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import tenacity

ROOT = Path(__file__).resolve().parents[2]
CRE = [sys.executable, "-m", "pipelines.commands"]  # the cre command of this checkout
T = TypeVar("T")

# The unit tier (make check: -m "not integration") reaches no server and runs no cre process.
# conftest's pytest_runtest_setup sets TIER for each test; it is read through sys.modules, so a
# second copy of this module (imported as tests.helpers.cre) obeys the one the hook sets.
TIER = {"unit": False}


def integration_only(what: str) -> None:
    """Fails the running test if it is of the unit tier: ``what`` needs a server or a process."""
    if getattr(sys.modules.get("helpers.cre"), "TIER", TIER)["unit"]:
        pytest.fail(f"{what} in a unit test: mark it @pytest.mark.integration", pytrace=False)


class CreRun:
    """A finished ``cre`` process: exit code, the JSON summary (last stdout line) and stderr."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        lines = completed.stdout.strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    def __repr__(self) -> str:  # what a wait_until that timed out shows of the last run
        return f"CreRun(code={self.code}, stdout={self.stdout[-1000:]!r}, " \
               f"stderr={self.stderr[-1000:]!r})"

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in self.summary["errors"]]


def cre_environment(env: dict | None) -> dict:
    """The test's environment: a structured zone only where the test gives one."""
    base = {key: value for key, value in os.environ.items()
            if not key.startswith("CRE_CASSANDRA_")}
    return {**base, **(env or {})}


def run_cre(*args: str, env: dict | None = None, input: str | None = None) -> CreRun:
    integration_only(f"cre {' '.join(args)}")
    completed = subprocess.run(
        [*CRE, *args], cwd=ROOT, capture_output=True, text=True, input=input,
        env=cre_environment(env), timeout=600,
    )
    return CreRun(completed)


def start_cre(*args: str, env: dict | None = None) -> subprocess.Popen:
    integration_only(f"cre {' '.join(args)}")
    return subprocess.Popen([*CRE, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cre_environment(env))


def wait_until(probe: Callable[[], T], done: Callable[[T], bool] = bool, *, timeout: float,
               interval: float, what: str = "", detail: Callable[[], object] | None = None) -> T:
    """Asks ``probe`` every ``interval`` seconds until its answer is ``done``, and returns that
    answer; after ``timeout`` seconds, an AssertionError naming ``what`` was awaited (else the
    probe), the timeout, the last answer and, if given, ``detail()`` (a log, a page)."""
    def timed_out(state: tenacity.RetryCallState) -> T:
        awaited = what or " until ".join(getattr(f, "__qualname__", repr(f)) for f in (
            probe, *((done,) if done is not bool else ())))
        last = repr(state.outcome.result())
        message = (f"waited {timeout:g} s for {awaited}: the last answer was "
                   f"{last if len(last) <= 3000 else last[:3000] + '...'}")
        raise AssertionError(message if detail is None else f"{message}\n{detail()}")

    return tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_not_result(done), retry_error_callback=timed_out)(probe)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback's ``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def sstable_writer_of(run: subprocess.Popen) -> int | None:
    """The pid of the SSTable writer JVM a ``cre`` run started (directly, or through a
    runner's worker), once it runs; None before."""

    def parent(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"cre-sstable-writer.jar" not in cmdline.read():
                    continue
            ancestor = int(pid)
            while ancestor > 1 and ancestor != run.pid:
                ancestor = parent(ancestor)
        except (OSError, ValueError, IndexError):
            continue
        if ancestor == run.pid:
            return int(pid)
    return None

