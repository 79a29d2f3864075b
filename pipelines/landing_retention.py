"""Retention of the landing zone: landed archives of finished vacations go after a while.

Only an archive whose vacation the ledger says is DELIVERED or REJECTED, with the sha256 the
ledger recorded, is removed (with its ``.sha256`` sidecar); anything else is evidence someone
may still need (a run in progress, a vacation rolled back or failed, another content sent under
a used name, a file the ledger does not know) and is kept, with the reason.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import time
from collections.abc import Iterator
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from io_connectors import zones
from pipelines.ledger import Ledger, State, VacationRecord
from transforms.contract import VacationName

PRUNABLE = frozenset({State.DELIVERED, State.REJECTED})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class Decision:
    path: str
    vacation_id: Optional[str]
    state: Optional[str]
    age_days: float
    remove: bool
    reason: str


def _landed(zones_root: str) -> Iterator[tuple[str, float]]:
    """Every file under ``landing/`` but the sidecars, with its last modification time."""
    pattern = zones.join(zones_root, zones.LANDING, "**")
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        if not metadata.path.endswith(".sha256"):
            yield metadata.path, metadata.last_updated_in_seconds


def plan(ledger: Ledger, zones_root: str, older_than_days: float,
         now: Optional[float] = None) -> list[Decision]:
    """What pruning would do with each file of the landing zone, and why."""
    now = time.time() if now is None else now
    states: dict[str, Optional[VacationRecord]] = {}
    decisions = []
    for path, modified in sorted(_landed(zones_root)):
        age = (now - modified) / _DAY
        folder = posixpath.dirname(path)
        name = VacationName.parse(posixpath.basename(path))
        sha256 = posixpath.basename(folder)
        if name is None or not _SHA256.match(sha256) or \
                posixpath.basename(posixpath.dirname(folder)) != name.vacation_id:
            decisions.append(Decision(path, None, None, age, False,
                                      "not a landed archive (<V>/<sha256>/<V>.tar.bz2)"))
            continue
        if name.vacation_id not in states:
            states[name.vacation_id] = ledger.get(name.vacation_id)
        row = states[name.vacation_id]
        state = row.state if row else None
        if age < older_than_days:
            remove, reason = False, f"{age:.1f} days old"
        elif row is None:
            remove, reason = False, "not in the ledger"
        elif state not in PRUNABLE:
            remove, reason = False, f"{state}: only DELIVERED or REJECTED vacations are pruned"
        elif row.sha256 != sha256:
            remove, reason = False, (f"another content than the one the ledger recorded as "
                                     f"{state} ({row.sha256})")
        else:
            remove, reason = True, f"{state}, {age:.0f} days old"
        decisions.append(Decision(path, name.vacation_id, state, age, remove, reason))
    return decisions


def remove(decision: Decision) -> None:
    """Deletes the archive's content-addressed folder: the archive and its sidecar."""
    zones.delete_tree(posixpath.dirname(decision.path))
