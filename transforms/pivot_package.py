"""The outbound "pivot" package for Arkea ABS (spec 4): its members, their check, the archive.

Everything here is a pure function of the vacation's ledger summary, its rejects and its
positions, so delivering a vacation again gives byte-identical members (and archive).
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Optional

from transforms import contract
from transforms.contract import Outcome

ACK, REJECTS, POSITIONS, MANIFEST = "ACK.json", "REJECTS.csv", "POSITIONS.csv", "MANIFEST.json"
MEMBER_ORDER = (ACK, REJECTS, POSITIONS, MANIFEST)
REJECT_COLUMNS = ("member_name", "record_number", "line_number", "error_code", "error_message")
POSITION_COLUMNS = ("account_id", "value_date", "currency", "event_count", "debit_total",
                    "credit_total", "net_amount")
_RECORD_CODES = {code for name, code in vars(contract.RecordCode).items() if name.isupper()}
_AMOUNT = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
_CENT = Decimal("0.01")
MTIME = 0  # fixed member times: the same package bytes whenever it is built


class PackageInvalid(ValueError):
    """A member breaks spec 4: the package must not be delivered."""


def package_name(vacation_id: str) -> str:
    return vacation_id.replace("BAF_", "MMG_ABS_", 1) + ".tar.bz2"


def vacation_of_package(name: str) -> Optional[str]:
    """The vacation a package answers (``package_name``'s inverse); None for another name."""
    match = re.fullmatch(r"MMG_ABS_(\d{8}_\d{2})\.tar\.bz2", name)
    return f"BAF_{match.group(1)}" if match else None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A delivered package: where it lies, its sha256 and size (the ledger keeps it)."""

    vacation_id: str
    path: str
    sha256: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class Position:
    account_id: str
    value_date: str
    currency: str
    event_count: int
    debit_total: Decimal
    credit_total: Decimal

    @property
    def net_amount(self) -> Decimal:
        return self.credit_total - self.debit_total


def _csv(header: Sequence[str], rows: Iterable[Sequence]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", quotechar='"', lineterminator="\n",
                        quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def ack(summary: dict) -> bytes:
    document = {key: summary[key] for key in ("vacation_id", "status", "received_at",
                                              "processed_at", "members", "errors")}
    return (json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


def rejects_csv(rejects: Iterable[dict]) -> bytes:
    ordered = sorted(rejects, key=lambda r: (r["member_name"], r["record_number"]))
    return _csv(REJECT_COLUMNS, ([r[column] for column in REJECT_COLUMNS] for r in ordered))


def positions_csv(positions: Iterable[Position]) -> bytes:
    ordered = sorted(positions, key=lambda p: (p.account_id, p.value_date, p.currency))
    return _csv(POSITION_COLUMNS, (
        [p.account_id, p.value_date, p.currency, p.event_count,
         p.debit_total.quantize(_CENT), p.credit_total.quantize(_CENT),
         p.net_amount.quantize(_CENT)] for p in ordered))


def _records(name: str, data: bytes) -> int:
    return 1 if name.endswith(".json") else max(len(_rows(data)) - 1, 0)


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";"))


def members(summary: dict, rejects: Sequence[dict],
            positions: Sequence[Position] | None) -> dict[str, bytes]:
    """The package's members in spec order; POSITIONS only for a vacation that was not
    REJECTED, REJECTS only when records were rejected."""
    built = {ACK: ack(summary)}
    if rejects:
        built[REJECTS] = rejects_csv(rejects)
    if summary["status"] != Outcome.REJECTED:
        built[POSITIONS] = positions_csv(positions or [])
    built[MANIFEST] = (json.dumps([
        {"name": name, "bytes": len(data), "records": _records(name, data),
         "sha256": hashlib.sha256(data).hexdigest()} for name, data in built.items()],
        indent=1) + "\n").encode()
    return built


def check(package: dict[str, bytes]) -> None:
    """Raises ``PackageInvalid`` unless every member follows spec 4."""
    names = list(package)
    if names != [name for name in MEMBER_ORDER if name in package] or ACK not in package \
            or MANIFEST not in package:
        raise PackageInvalid(f"members {names} are not ACK.json, [REJECTS.csv], "
                             "[POSITIONS.csv], MANIFEST.json")
    document = json.loads(package[ACK])
    missing = {"vacation_id", "status", "received_at", "processed_at", "members",
               "errors"} - set(document)
    if missing:
        raise PackageInvalid(f"ACK.json lacks {sorted(missing)}")
    if document["status"] not in (Outcome.ACCEPTED, Outcome.ACCEPTED_WITH_REJECTS,
                                  Outcome.REJECTED):
        raise PackageInvalid(f"ACK.json status {document['status']!r}")
    if (document["status"] == Outcome.REJECTED) == (POSITIONS in package):
        raise PackageInvalid("POSITIONS.csv is for accepted vacations only, and always there")
    if REJECTS in package:
        _check_rejects(_rows(package[REJECTS]))
    if POSITIONS in package:
        _check_positions(_rows(package[POSITIONS]))
    manifest = json.loads(package[MANIFEST])
    expected = [{"name": name, "bytes": len(data), "records": _records(name, data),
                 "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in package.items() if name != MANIFEST]
    if manifest != expected:
        raise PackageInvalid("MANIFEST.json does not describe the other members")


def _check_rejects(rows: list[list[str]]) -> None:
    if not rows or tuple(rows[0]) != REJECT_COLUMNS:
        raise PackageInvalid("REJECTS.csv header")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 5 or not row[1].isdigit() or not row[2].isdigit() \
                or row[3] not in _RECORD_CODES:
            raise PackageInvalid(f"REJECTS.csv line {number}: {row}")


def _check_positions(rows: list[list[str]]) -> None:
    if not rows or tuple(rows[0]) != POSITION_COLUMNS:
        raise PackageInvalid("POSITIONS.csv header")
    keys = [tuple(row[:3]) for row in rows[1:]]
    if keys != sorted(set(keys)):
        raise PackageInvalid("POSITIONS.csv rows are not sorted and unique by their key")
    for number, row in enumerate(rows[1:], start=2):
        amounts = row[4:7]
        if len(row) != 7 or not row[3].isdigit() or not all(map(_AMOUNT.match, amounts)) \
                or Decimal(amounts[2]) != Decimal(amounts[1]) - Decimal(amounts[0]) \
                or re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[1]) is None:
            raise PackageInvalid(f"POSITIONS.csv line {number}: {row}")


def archive(package: dict[str, bytes]) -> bytes:
    """The tar.bz2 bytes: members at the root, in order, with fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in package.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return bz2.compress(buffer.getvalue(), 9)


def positions_of(data: bytes) -> list[tuple[str, datetime.date, str, int]]:
    """(account_id, value_date, currency, event_count) of each row of a package archive's
    POSITIONS.csv (none for a REJECTED vacation's)."""
    rows = _rows(read_archive(data).get(POSITIONS, b""))[1:]
    return [(account, datetime.date.fromisoformat(day), currency, int(count))
            for account, day, currency, count, *_ in rows]


def read_archive(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:bz2") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}
