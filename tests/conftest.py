"""Shared fixtures: generated vacations, archives broken on purpose, and the ``cre`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class CreRun:
    """A finished ``cre`` process: exit code, the JSON summary (last stdout line) and stderr."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        lines = completed.stdout.strip().splitlines()
        self.summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in self.summary["errors"]]


def run_cre(*args: str, env: dict | None = None) -> CreRun:
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=600,
    )
    return CreRun(completed)


@pytest.fixture
def cre():
    return run_cre
