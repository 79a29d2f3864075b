"""Where a number sent to Arkea came from (issue 35): the reads behind ``cre lineage`` and the
console's lineage page.

Nothing here writes. Each event version carries the member of its vacation's archive and the
line its record starts on (migration 010, written and purged with the row); each delivered
package keeps the event versions of each of its positions (``pipelines/package_lineage.py``);
the ledger gives each vacation's state, archive sha256 and landing path, and each package's
path, from which the delivered figures are read back.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import logging
import tarfile
from collections.abc import Iterable, Iterator
from typing import Optional

from cassandra.concurrent import execute_concurrent_with_args

from pipelines.ledger import Ledger, State, VacationRecord
from pipelines.structured_zone import slots
from transforms import pivot_package

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EventVersion:
    """One version of a CRE event, the line of the landed archive it was read from, and the
    packages whose positions counted it."""

    cre_id: str
    vacation_id: str
    account_id: str
    value_date: datetime.date
    currency: str
    member_name: Optional[str]  # None: loaded before migration 010, or rolled back since
    line_number: Optional[int]
    state: Optional[str]  # the vacation's, in the ledger
    sha256: Optional[str]
    landed_path: Optional[str]
    packages: tuple[str, ...] = ()

    @property
    def rolled_back(self) -> bool:
        """Its vacation was rolled back: a package delivered before still counted it."""
        return self.state == State.ROLLED_BACK

    def view(self) -> dict:
        return {**dataclasses.asdict(self), "value_date": self.value_date.isoformat(),
                "packages": list(self.packages), "rolled_back": self.rolled_back}


@dataclasses.dataclass(frozen=True)
class PackagePosition:
    """A position of a delivered package: its figures as delivered (None when the package
    cannot be read back) and the event versions it was computed from."""

    package: str
    vacation_id: str  # the delivered vacation
    delivered_at: Optional[datetime.datetime]
    account_id: str
    value_date: datetime.date
    currency: str
    figures: Optional[dict[str, str]]  # event_count, debit_total, credit_total, net_amount
    events: tuple[EventVersion, ...]

    def view(self) -> dict:
        return {"package": self.package, "vacation_id": self.vacation_id,
                "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
                "account_id": self.account_id, "value_date": self.value_date.isoformat(),
                "currency": self.currency, "figures": self.figures,
                "events": [event.view() for event in self.events]}


_Key = tuple[str, datetime.date, str]  # account_id, value_date, currency


class Lineage:
    """The lineage queries, over one keyspace's session."""

    def __init__(self, session, ledger: Optional[Ledger] = None):
        self._session = session
        self._ledger = ledger or Ledger(session)
        prepare = session.prepare
        self._versions = prepare(
            "SELECT vacation_id, account_id, value_date, currency, member_name, line_number "
            "FROM cre_event_versions WHERE cre_id = ?")
        self._version = prepare(
            "SELECT cre_id, vacation_id, member_name, line_number FROM cre_event_versions "
            "WHERE cre_id = ? AND vacation_id = ?")
        self._package_rows = prepare(
            "SELECT account_id, value_date, currency, versions FROM package_positions "
            "WHERE package = ?")
        self._account_rows = prepare(
            "SELECT account_id, value_date, currency, versions FROM package_positions "
            "WHERE package = ? AND account_id = ?")
        self._day_rows = prepare(
            "SELECT package, versions FROM package_positions_by_day "
            "WHERE account_id = ? AND value_date = ?")

    def event(self, cre_id: str) -> list[EventVersion]:
        """Every version of ``cre_id``: those in the structured zone, newest vacation first,
        then any rolled-back one a package still counted; each with the packages that did."""
        found = [(vacation_id, account_id, value_date.date(), currency, member_name,
                  line_number)
                 for vacation_id, account_id, value_date, currency, member_name, line_number
                 in self._session.execute(self._versions, (cre_id,))]
        carried: dict[str, list[str]] = {}  # vacation of the version -> packages
        gone: dict[str, tuple] = {}  # a rolled-back version a package counted -> its day
        days = {(account_id, value_date): currency for _, account_id, value_date, currency, *_
                in found}
        in_zone = {row[0] for row in found}
        for (account_id, value_date), currency in days.items():
            for package, versions in self._session.execute(self._day_rows,
                                                           (account_id, value_date)):
                if vacation_id := (versions or {}).get(cre_id):
                    carried.setdefault(vacation_id, []).append(package)
                    if vacation_id not in in_zone:
                        gone[vacation_id] = (account_id, value_date, currency, None, None)
        found += [(vacation_id, *day) for vacation_id, day in sorted(gone.items(), reverse=True)]
        records = self._records(row[0] for row in found)
        return [_event_version(cre_id, *row, records.get(row[0]),
                               tuple(sorted(set(carried.get(row[0], ())))))
                for row in found]

    def position(self, account_id: str, business_date: datetime.date) -> list[PackagePosition]:
        """The positions of ``account_id`` in the packages delivered for ``business_date``'s
        vacations, in slot order, each with the event versions it was computed from."""
        delivered = [row for row in self._records(slots(business_date)).values()
                     if row.delivered_at]
        positions = []
        for row in sorted(delivered, key=lambda row: row.vacation_id):
            package = pivot_package.package_name(row.vacation_id)
            rows = self._session.execute(self._account_rows, (package, account_id))
            positions += self._positions(row, package, rows, account_id)
        return positions

    def package(self, package: str,
                limit: Optional[int] = None) -> Optional[list[PackagePosition]]:
        """The positions of a package (its first ``limit`` by key, or all), each with its
        event versions; None when the package is not one the ledger records as delivered."""
        vacation_id = pivot_package.vacation_of_package(package)
        row = self._ledger.get(vacation_id) if vacation_id else None
        if row is None or not row.delivered_at:
            return None
        rows = self._session.execute(self._package_rows, (package,))
        return self._positions(row, package, rows if limit is None else _first(rows, limit))

    def positions_in(self, package: str) -> int:
        """How many positions a package's lineage holds (their keys only are read)."""
        return len({tuple(key) for key in self._session.execute(
            "SELECT account_id, value_date, currency FROM package_positions WHERE package = %s",
            (package,))})

    def _positions(self, row: VacationRecord, package: str, rows: Iterable[tuple],
                   account_id: Optional[str] = None) -> list[PackagePosition]:
        parts: dict[_Key, dict[str, str]] = {}
        for account, value_date, currency, versions in rows:
            parts.setdefault((account, value_date.date(), currency), {}).update(versions or {})
        figures = _delivered_figures(row, account_id)
        lines = self._lines([(cre_id, vacation_id) for versions in parts.values()
                             for cre_id, vacation_id in versions.items()])
        records = self._records({vacation for versions in parts.values()
                                 for vacation in versions.values()})
        return [PackagePosition(
            package, row.vacation_id, row.delivered_at, *key,
            figures.get(tuple(map(str, key))) if figures is not None else None,
            tuple(_event_version(cre_id, vacation_id, *key,
                                 *lines.get((cre_id, vacation_id), (None, None)),
                                 records.get(vacation_id), (package,))
                  for cre_id, vacation_id in sorted(versions.items())))
            for key, versions in sorted(parts.items())]

    def _lines(self, versions: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        """(member, line) of each (cre_id, vacation_id) still in the zone."""
        lines = {}
        for _, result in execute_concurrent_with_args(
                self._session, self._version, versions, concurrency=64,
                raise_on_first_error=True):
            for cre_id, vacation_id, member_name, line_number in result:
                lines[cre_id, vacation_id] = (member_name, line_number)
        return lines

    def _records(self, vacation_ids: Iterable[str]) -> dict[str, VacationRecord]:
        return self._ledger.get_many(sorted(set(vacation_ids)))


def _first(rows: Iterable[tuple], limit: int) -> Iterator[tuple]:
    """The rows (parts) of the first ``limit`` positions, in key order."""
    keys: set[tuple] = set()
    for row in rows:
        keys.add(tuple(row[:3]))
        if len(keys) > limit:
            return
        yield row


def _event_version(cre_id: str, vacation_id: str, account_id: str, value_date: datetime.date,
                   currency: str, member_name: Optional[str], line_number: Optional[int],
                   record: Optional[VacationRecord], packages: tuple[str, ...]) -> EventVersion:
    return EventVersion(cre_id, vacation_id, account_id, value_date, currency, member_name,
                        line_number, record.state.value if record else None,
                        record.sha256 if record else None,
                        record.landed_path if record else None, packages)


def _delivered_figures(row: VacationRecord,
                       account_id: Optional[str]) -> Optional[dict[tuple[str, ...], dict]]:
    """The POSITIONS.csv rows of the package as delivered (of ``account_id`` only, when given),
    by (account_id, value_date, currency); None when it cannot be read back."""
    from apache_beam.io.filesystem import CompressionTypes  # only where a package is read
    from apache_beam.io.filesystems import FileSystems

    if row.delivery is None:
        return None
    try:
        with FileSystems.open(row.delivery.path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            members = pivot_package.read_archive(handle.read())
    except (OSError, ValueError, tarfile.TarError) as error:
        _LOG.warning("%s: the delivered package cannot be read back (%s)", row.delivery.path,
                     error)
        return None
    reader = csv.DictReader(io.StringIO(members.get(pivot_package.POSITIONS, b"").decode()),
                            delimiter=";")
    return {(line["account_id"], line["value_date"], line["currency"]): {
                name: line[name] for name in pivot_package.POSITION_COLUMNS[3:]}
            for line in reader if account_id is None or line["account_id"] == account_id}
