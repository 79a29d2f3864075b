"""Where a number in the structured zone came from (issue 35): the reads behind ``cre lineage``.

Nothing here writes. Each event version carries the member of its vacation's archive and the
line its record starts on (migration 010), written with the row by the ingest and purged with it
by a rollback; the ledger gives the vacation's state, archive sha256 and landing path.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Optional

from pipelines.ledger import Ledger, State


@dataclasses.dataclass(frozen=True)
class EventVersion:
    """One version of a CRE event and the line of the landed archive it was read from."""

    cre_id: str
    vacation_id: str
    account_id: str
    value_date: datetime.date
    currency: str
    member_name: Optional[str]  # None: loaded before migration 010
    line_number: Optional[int]
    state: Optional[str]  # the vacation's, in the ledger
    sha256: Optional[str]
    landed_path: Optional[str]

    @property
    def rolled_back(self) -> bool:
        """Hidden by a rollback whose purge has not removed the row yet."""
        return self.state == State.ROLLED_BACK

    def view(self) -> dict:
        return {**dataclasses.asdict(self), "value_date": self.value_date.isoformat(),
                "rolled_back": self.rolled_back}


class Lineage:
    """The lineage queries, over one keyspace's session."""

    def __init__(self, session, ledger: Optional[Ledger] = None):
        self._session = session
        self._ledger = ledger or Ledger(session)
        self._versions = session.prepare(
            "SELECT vacation_id, account_id, value_date, currency, member_name, line_number "
            "FROM cre_event_versions WHERE cre_id = ?")

    def event(self, cre_id: str) -> list[EventVersion]:
        """Every version of ``cre_id`` in the structured zone, newest vacation first."""
        versions = []
        rows = self._session.execute(self._versions, (cre_id,))
        for vacation_id, account_id, value_date, currency, member_name, line_number in rows:
            record = self._ledger.get(vacation_id)
            versions.append(EventVersion(
                cre_id, vacation_id, account_id, value_date.date(), currency, member_name,
                line_number, record.state.value if record else None,
                record.sha256 if record else None, record.landed_path if record else None))
        return versions
