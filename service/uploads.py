"""The collection service's record of uploads: what each tenant sent, and when.

This module owns the tables ``uploads`` and ``upload_names``. Both are partitioned by tenant
and every read names the tenant, so no query can reach another tenant's uploads. What became of
an upload is the vacation ledger's business, not theirs.
"""

from __future__ import annotations

import datetime
from typing import Optional


class Uploads:
    """The ``uploads`` and ``upload_names`` tables of one keyspace."""

    COLUMNS = ("upload_id", "file_name", "sha256", "bytes", "received_at", "business_date",
               "vacation_id")

    def __init__(self, session):
        self._session = session
        prepare = session.prepare
        self._reserve = prepare(
            "INSERT INTO upload_names (tenant, file_name, sha256, upload_id) "
            "VALUES (?, ?, ?, ?) IF NOT EXISTS")
        self._insert = prepare(
            "INSERT INTO uploads (tenant, upload_id, file_name, sha256, bytes, received_at, "
            "business_date, vacation_id, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._get = prepare(f"SELECT {', '.join(self.COLUMNS)} FROM uploads "
                            "WHERE tenant = ? AND upload_id = ?")
        self._of = prepare(f"SELECT {', '.join(self.COLUMNS)} FROM uploads WHERE tenant = ?")

    def reserve(self, tenant: str, file_name: str, sha256: str, upload_id: str) -> Optional[str]:
        """Makes ``upload_id`` the tenant's upload of this content under this name (LWT), unless
        one already is: then that earlier upload's id. A duplicate is the same vacation sent
        again: the same bytes under another name are another upload (the first may have been
        sent under a wrong name)."""
        reserved = self._session.execute(self._reserve,
                                         (tenant, file_name, sha256, upload_id)).one()
        return None if reserved[0] else reserved[-1]  # the row in place, upload_id last

    def record(self, tenant: str, upload_id: str, file_name: str, sha256: str, size: int,
               received_at: datetime.datetime, business_date: datetime.date,
               vacation_id: str, path: str) -> None:
        """Records an upload that has landed at ``path``."""
        self._session.execute(self._insert, (tenant, upload_id, file_name, sha256, size,
                                             received_at, business_date, vacation_id, path))

    def get(self, tenant: str, upload_id: str) -> Optional[dict]:
        """The tenant's upload ``upload_id``; None for another tenant's, as for a made-up id."""
        row = self._session.execute(self._get, (tenant, upload_id)).one()
        return None if row is None else self._row(row)

    def of(self, tenant: str) -> list[dict]:
        """Every upload of the tenant (one partition)."""
        return [self._row(row) for row in self._session.execute(self._of, (tenant,))]

    def _row(self, row: tuple) -> dict:
        found = dict(zip(self.COLUMNS, row))
        found["received_at"] = found["received_at"].replace(tzinfo=datetime.UTC)
        found["business_date"] = found["business_date"].date()
        return found
