"""The progress bars: drawn on a terminal, nothing at all on a pipe or a file."""

from __future__ import annotations

import io
import os
import pickle
import pty
import subprocess
import sys

from helpers import ROOT
from rich.console import Console

from pipelines import progress

# starts and moves two bars under progress.shown() on the process's own stderr
_SCRIPT = """
from pipelines import progress
with progress.shown():
    rows, sent = progress.Bar("rows restored", "rows"), progress.Bar("BAF.tar.bz2", "bytes")
    rows.start(1000)
    rows.advance(400)
    sent.start(5_000_000)
    sent.advance(2_500_000)
"""


def _draw(console: Console) -> bool:
    """Moves a bar under ``shown(console)``, also through a pickled copy (as a DoFn's)."""
    bar = progress.Bar("rows restored", "rows")
    with progress.shown(console):
        bar.start(1000)
        pickle.loads(pickle.dumps(bar)).advance(400)
        drawn = bar.drawn
    assert not bar.drawn  # the command is over
    bar.advance()  # and moving the bar now does nothing
    return drawn


def test_a_terminal_shows_the_bars():
    screen = io.StringIO()
    assert _draw(Console(file=screen, force_terminal=True, width=100))
    assert "rows restored" in screen.getvalue() and "400/1,000 rows" in screen.getvalue()


def test_nothing_is_written_elsewhere():
    screen = io.StringIO()
    assert not _draw(Console(file=screen, force_terminal=False))
    assert screen.getvalue() == ""


def _stderr_of_script(on_a_terminal: bool) -> bytes:
    """What the script writes on its stderr, a pseudo-terminal or a pipe."""
    command = [sys.executable, "-c", _SCRIPT]
    env = {**os.environ, "TERM": "xterm-256color"}
    if not on_a_terminal:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                              check=True).stderr
    controller, terminal = pty.openpty()
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=terminal) as script:
        os.close(terminal)
        written = []
        while True:
            try:
                chunk = os.read(controller, 1 << 16)
            except OSError:  # EIO: the script has closed the terminal
                break
            if not chunk:
                break
            written.append(chunk)
    os.close(controller)
    assert script.returncode == 0
    return b"".join(written)


def test_the_command_draws_on_a_terminal_stderr_only():
    drawn = _stderr_of_script(on_a_terminal=True).decode()
    assert "rows restored" in drawn and "400/1,000 rows" in drawn and "2.5 MB/5.0 MB" in drawn
    assert _stderr_of_script(on_a_terminal=False) == b""
