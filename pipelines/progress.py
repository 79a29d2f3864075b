"""Progress bars for the long commands, drawn by rich on stderr when it is a terminal.

A command draws them with ``shown()`` around its work. Code anywhere in that process starts and
moves a ``Bar``, a DoFn of a local runner included: a bar is known by its description, so it
pickles and travels with the DoFn. Where nothing is shown (stderr not a terminal, a remote
worker, a command that shows no bars) every call on a bar does nothing, so the code that moves
one needs no check, and pipes and log files stay plain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator
from typing import Optional

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["BYTES", "Bar", "shown"]

BYTES = "bytes"  # the unit shown as sizes (kB, MB)


class _Amount(ProgressColumn):
    """Done of total in the bar's unit; a bar with no total counts up."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")

        def show(amount: float) -> str:
            return filesize.decimal(int(amount)) if unit == BYTES else f"{amount:,.0f}"
        amount = show(task.completed) if task.total is None else \
            f"{show(task.completed)}/{show(task.total)}"
        return Text(amount if unit in ("", BYTES) else f"{amount} {unit}")


@dataclasses.dataclass
class _Shown:
    progress: Progress
    tasks: dict[str, TaskID] = dataclasses.field(default_factory=dict)


_shown: Optional[_Shown] = None  # the bars this process draws, while a command shows them


@dataclasses.dataclass(frozen=True)
class Bar:
    """One bar, by its description; ``unit`` is what it counts (``bytes`` shows sizes)."""

    description: str
    unit: str = ""

    def start(self, total: Optional[float] = None) -> None:
        """Draws the bar from zero (again, when it was drawn); no ``total`` counts up."""
        shown = _shown
        if shown is None:
            return
        task = shown.tasks.get(self.description)
        if task is None:
            shown.tasks[self.description] = shown.progress.add_task(
                self.description, total=total, unit=self.unit)
        else:
            shown.progress.reset(task, total=total)

    def advance(self, amount: float = 1) -> None:
        shown = _shown
        task = shown.tasks.get(self.description) if shown else None
        if task is not None:
            shown.progress.advance(task, amount)

    @property
    def drawn(self) -> bool:
        """Whether this process draws the bar: when not, a long step may log its progress."""
        shown = _shown
        return shown is not None and self.description in shown.tasks


@contextlib.contextmanager
def shown(console: Optional[Console] = None) -> Iterator[None]:
    """Draws the bars started meanwhile on ``console``, by default stderr when it is a terminal.

    While they are drawn, log lines to stderr are printed above them instead of through them.
    """
    global _shown
    console = console or Console(stderr=True, force_terminal=sys.stderr.isatty())
    if not console.is_terminal or _shown is not None:
        yield
        return
    stderr = sys.stderr
    with Progress(TextColumn("{task.description}"), BarColumn(), _Amount(), TimeElapsedColumn(),
                  console=console, redirect_stdout=False) as progress:  # stdout: the results
        handlers = [handler for handler in logging.getLogger().handlers
                    if isinstance(handler, logging.StreamHandler) and handler.stream is stderr]
        for handler in handlers:
            handler.setStream(sys.stderr)  # rich's proxy while the bars are live
        _shown = _Shown(progress)
        try:
            yield
        finally:
            _shown = None
            for handler in handlers:
                handler.setStream(stderr)
