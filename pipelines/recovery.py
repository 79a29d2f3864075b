"""Replay and recovery: every vacation run again from its landing copy, never from elsewhere.

The landing zone keeps each archive byte for byte and the ledger knows where, so a replay
(after a rollback, or after a fix) and the recovery of a run that died both come down to
ingesting that copy again with ``--replay``: the claim purges what an earlier run wrote, the
run loads and delivers as any other.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Optional

from apache_beam.io.filesystems import FileSystems

from io_connectors import zones
from pipelines.ledger import IN_PROGRESS, Ledger, State, VacationRecord
from transforms.contract import PlatformError


class RecoveryError(PlatformError):
    """A vacation cannot be run again from what the platform kept."""


def landed_copy(row: Optional[VacationRecord], vacation_id: str) -> str:
    """The landing copy the ledger recorded for the vacation's current content."""
    if row is None:
        raise RecoveryError(f"{vacation_id} is not in the ledger")
    path = row.landed_path
    if not path or not FileSystems.exists(path):
        raise RecoveryError(f"{vacation_id}: its landing copy {path or '(none recorded)'} is "
                            "gone; the archive must be sent again")
    return path


def zones_root_of(landed_path: str) -> str:
    """The zones root a landing copy lies under (``<root>/landing/...``)."""
    marker = f"/{zones.LANDING}/"
    if marker not in landed_path:
        raise RecoveryError(f"{landed_path} is not in a landing zone")
    return landed_path[:landed_path.rindex(marker)]


def replay_values(row: Optional[VacationRecord], vacation_id: str,
                  zones_root: Optional[str]) -> dict[str, Any]:
    """The ``IngestOptions`` values that run the vacation's landing copy again (the claim
    refuses a vacation whose rows are visible): in ``zones_root`` if given, else in the zones
    it landed in."""
    path = landed_copy(row, vacation_id)
    return {"input": path, "zones_root": zones_root or zones_root_of(path), "replay": True}


@dataclasses.dataclass
class Step:
    """What recovery does (or would do) for one vacation, and how it ended."""

    vacation_id: str
    state: State
    action: str  # replay, deliver, clean or wait
    reason: str
    result: str = ""


def plan(ledger: Ledger, grace: datetime.timedelta,
         now: Optional[datetime.datetime] = None) -> list[Step]:
    """The vacations a crash can leave behind, and what finishes each."""
    now = now or datetime.datetime.now(datetime.UTC)
    steps = []
    for row in ledger.in_state(State.RECEIVED):
        if row.received_at and row.received_at > now - grace:
            steps.append(Step(row.vacation_id, State.RECEIVED, "wait",
                              "received moments ago: the ingest manager takes it"))
        else:
            steps.append(Step(row.vacation_id, State.RECEIVED, "replay", "never ingested"))
    for state in sorted(IN_PROGRESS):
        for row in ledger.in_state(state):
            if Ledger.abandoned(row, now):
                steps.append(Step(row.vacation_id, state, "replay",
                                  f"its run {row.run_id} ({row.owner}) is gone"))
            else:
                steps.append(Step(row.vacation_id, state, "wait",
                                  f"its run holds it until {row.lease_until:%H:%M:%SZ}"))
    for state in (State.LOADED, State.REJECTED):
        steps += [Step(row.vacation_id, state, "wait", f"delivery held: {row.delivery_held}")
                  if row.delivery_held else Step(row.vacation_id, state, "deliver",
                                                 "no package delivered")
                  for row in ledger.in_state(state) if row.delivered_at is None]
    return steps
