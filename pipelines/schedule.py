"""When each slot's vacation is due, as the alert rules say it (``monitoring/prometheus/
rules.yml``, group ``cre_schedule``; a unit test keeps the two the same), and what the console
calls late against it."""

from __future__ import annotations

import datetime
from typing import Optional

from pipelines.ledger import State, VacationRecord

# seconds after 00:00 UTC of the business date by which the slot's vacation must be received
SLOT_DEADLINES = {1: 5 * 3600, 2: 9 * 3600, 3: 13 * 3600, 4: 17 * 3600, 5: 21 * 3600,
                  6: 23 * 3600 + 30 * 60}
DELIVERY_GRACE = datetime.timedelta(minutes=30)  # CreDeliveryLate: LOADED, not delivered


def deadline(business_date: datetime.date, slot: int) -> datetime.datetime:
    midnight = datetime.datetime.combine(business_date, datetime.time(), datetime.UTC)
    return midnight + datetime.timedelta(seconds=SLOT_DEADLINES[slot])


def lateness(row: Optional[VacationRecord], business_date: datetime.date, slot: int,
             now: datetime.datetime) -> Optional[str]:
    """What is missing or late about one slot at ``now`` (None: nothing): what the alerts
    ``CreSlotNotReceived`` and ``CreDeliveryLate`` would say of it."""
    due = deadline(business_date, slot)
    if row is None:
        return f"missing: due at {due:%H:%M} UTC" if now > due else None
    received = row.received_at
    if received is not None and received > due:
        return f"received {_duration(received - due)} after {due:%H:%M} UTC"
    loaded = row.state_changed_at.get(State.LOADED)
    if row.state == State.LOADED and loaded is not None and now - loaded > DELIVERY_GRACE:
        return f"not delivered {_duration(now - loaded)} after it loaded"
    return None


def _duration(delta: datetime.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes >= 48 * 60:
        return f"{minutes // 1440} d {minutes // 60 % 24} h"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
