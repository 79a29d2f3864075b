"""A synthetic vacation as Arkea's BAF would send it: the sender simulator for runs and tests.

Deterministic per seed (same arguments, same bytes), streamed (each member goes through a
temporary file, so 5 million rows take no more memory than 5 thousand), and realistic where the
parser is tested: accents, quoted ``;``, doubled quotes, quoted line breaks, CRLF members, a BOM,
optional IBANs and several CRE members. A ``Traffic`` bends a day's traffic the way the
data-quality checks must notice (new accounts, one pair's amounts multiplied, bad value dates)
while every rule of the contract still holds or rejects record by record.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import random
import string
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Optional

from transforms import contract

_LABELS = ("Paiement carte", "Virement reçu", "Prélèvement échéance", "Retrait DAB",
           "Frais de tenue",
           "Intérêts créditeurs", "Remboursement prêt", "Achat librairie", "Cotisation carte")
_PLACES = ("Brest", "Quimper", "Rennes", "Saint-Malo", "Lorient", "Morlaix", "Vannes", "Nantes")
_BANKS = (("FR", "3000600001", 13), ("DE", "37040044", 10), ("ES", "21000418", 12),
          ("BE", "539", 9))
_CURRENCIES = ("EUR",) * 16 + ("USD", "GBP", "CHF", "JPY")
_TABLES = ("TAUX_INTERET", "FRAIS_TENUE", "DEVISE", "AGENCE", "PLAFOND_CARTE")
_ROWS_PER_WRITE = 10_000
_MTIME = 1_700_000_000


def iban(country: str, bank: str, account_digits: str) -> str:
    """A valid IBAN (ISO 13616 check digits) for the given country and BBAN."""
    bban = bank + account_digits
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _csv_field(value: str) -> str:
    if any(char in value for char in ';"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class _Member:
    """A CSV member written to a temporary file, hashed and counted on the way."""

    def __init__(self, folder: str, name: str, kind: str, encoding: str, crlf: bool, bom: bool):
        self.name, self.kind = name, kind
        self.path = os.path.join(folder, name)
        self._handle = open(self.path, "wb")
        self._encoding = encoding
        self._end = "\r\n" if crlf else "\n"
        self._sha = hashlib.sha256()
        self.bytes = self.records = 0
        self.amount_sum = Decimal(0)
        self._write((b"\xef\xbb\xbf" if bom else b"")
                    + (";".join(contract.COLUMNS[kind]) + self._end).encode(encoding))

    def add(self, rows: Sequence[Sequence[str]]) -> None:
        text = "".join(";".join(_csv_field(value) for value in row) + self._end for row in rows)
        self._write(text.encode(self._encoding))
        self.records += len(rows)

    def _write(self, data: bytes) -> None:
        self._handle.write(data)
        self._sha.update(data)
        self.bytes += len(data)

    def close(self) -> dict:
        self._handle.close()
        return {"name": self.name, "type": self.kind, "records": self.records,
                "bytes": self.bytes, "sha256": self._sha.hexdigest()}


_ALPHABET = string.ascii_uppercase + string.digits


@dataclasses.dataclass(frozen=True)
class Traffic:
    """How a vacation's traffic departs from the plain one (which draws nothing more).

    ``accounts`` events' accounts are drawn from, a pool made from ``accounts_seed`` (None: the
    vacation's seed; one seed for all makes the days share their accounts); ``new_accounts``,
    the share of events on an account outside the pool; ``amount_factors``, an integer factor
    per (event type, currency) the amounts are multiplied by; ``bad_dates``, the share of
    events whose value date does not exist (each rejected as BAD_DATE)."""

    accounts: int = 3000
    accounts_seed: Optional[int] = None
    new_accounts: float = 0.0
    amount_factors: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    bad_dates: float = 0.0


class _Rows:
    """Row factory; one ``random.Random`` so the whole vacation follows from the seed."""

    def __init__(self, business_date: datetime.date, slot: int, seed: int, latin1: bool,
                 traffic: Traffic = Traffic()):
        self._random = random.Random(seed)
        self._date = business_date
        self._prefix = f"{business_date:%Y%m%d}{slot:02d}"
        self._latin1 = latin1
        self._traffic = traffic
        pool_seed = seed if traffic.accounts_seed is None else traffic.accounts_seed
        accounts = random.Random(pool_seed ^ 0x5EED)
        self._accounts = ["".join(accounts.choices(_ALPHABET, k=11))
                          for _ in range(traffic.accounts)]

    def cre(self, number: int) -> list[str]:
        rnd = self._random
        event_type = rnd.choice(contract.EVENT_TYPES)
        cents = rnd.randrange(1, 500_000_00)
        decimals = rnd.random()
        if decimals < 0.15:
            cents -= cents % 100
            amount = f"{cents // 100}"
        elif decimals < 0.3:
            cents -= cents % 10
            amount = f"{cents // 100}.{(cents % 100) // 10}"
        else:
            amount = f"{cents // 100}.{cents % 100:02d}"
        if event_type == "REVERSAL" and rnd.random() < 0.5:
            amount = "-" + amount
        offset = "+01:00" if rnd.random() < 0.8 else "+02:00"
        moment = f"{self._date:%Y-%m-%d}T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:" \
                 f"{rnd.randrange(60):02d}{offset}"
        value_date = f"{self._date + datetime.timedelta(days=rnd.randrange(-3, 3)):%Y-%m-%d}"
        counterparty = ""
        if rnd.random() < 0.4:
            country, bank, digits = rnd.choice(_BANKS)
            counterparty = iban(country, bank, f"{rnd.randrange(10**digits):0{digits}d}")
        row = [f"{self._prefix}-{number:09d}", rnd.choice(self._accounts), event_type, moment,
               value_date, amount, rnd.choice(_CURRENCIES), counterparty, self._label()]
        return self._bent(row) if self._traffic != Traffic() else row

    def _bent(self, row: list[str]) -> list[str]:
        """The row as the ``Traffic`` wants it."""
        rnd, traffic = self._random, self._traffic
        if traffic.new_accounts and rnd.random() < traffic.new_accounts:
            row[1] = "".join(rnd.choices(_ALPHABET, k=11))
        factor = traffic.amount_factors.get((row[2], row[6]))
        if factor:
            row[5] = str(Decimal(row[5]) * factor)
        if traffic.bad_dates and rnd.random() < traffic.bad_dates:
            row[4] = f"{self._date.year}-02-30"
        return row

    def _label(self) -> str:
        rnd = self._random
        draw = rnd.random()
        if draw < 0.2:
            return ""
        label = f"{rnd.choice(_LABELS)} {rnd.choice(_PLACES)} {rnd.randrange(10**6)}"
        if not self._latin1 and rnd.random() < 0.05:
            label += " 12,50 €"
        if draw < 0.22:
            label += "; réf. " + str(rnd.randrange(10**8))
        elif draw < 0.23:
            label += ' dit "urgent"'
        elif draw < 0.235:
            label += rnd.choice(("\n", "\r\n")) + "suite du libellé"
        return label[:140]

    def gesparam(self, number: int) -> list[str]:
        rnd = self._random
        valid_from = self._date - datetime.timedelta(days=rnd.randrange(400))
        valid_to = ""
        if rnd.random() < 0.5:
            valid_to = f"{valid_from + datetime.timedelta(days=rnd.randrange(1, 700)):%Y-%m-%d}"
        label = rnd.choice(("", "Paramètre agence", "Taux révisé", "Frais; forfait"))
        return [rnd.choice(_TABLES), f"K{number:07d}", f"{rnd.randrange(10**6) / 100:.2f}",
                label, f"{valid_from:%Y-%m-%d}", valid_to]


def generate_vacation(out_dir: str | Path, business_date: str, slot: int, cre_rows: int,
                      gesparam_rows: int, seed: int, *, cre_members: Optional[int] = None,
                      encoding: str = contract.DEFAULT_ENCODING,
                      corrections: Sequence[Sequence[str]] = (),
                      traffic: Traffic = Traffic()) -> Path:
    """Writes ``BAF_<YYYYMMDD>_<NN>.tar.bz2`` into ``out_dir`` and returns its path.

    ``corrections`` are full CRE rows (in column order) appended to the last CRE member: a later
    vacation re-sending events of an earlier one with corrected values. ``traffic``: how the
    day departs from the plain one.
    """
    date = datetime.date.fromisoformat(business_date)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vacation_id = f"BAF_{date:%Y%m%d}_{slot:02d}"
    if cre_members is None:
        cre_members = max(2 if cre_rows >= 1000 else 1, min(8, math.ceil(cre_rows / 250_000)))
    codec = contract.ENCODINGS[encoding]
    rows = _Rows(date, slot, seed, latin1=codec != "utf-8", traffic=traffic)
    with tempfile.TemporaryDirectory(dir=out) as folder:
        members = _write_cre(folder, rows, cre_rows, cre_members, codec, corrections)
        if gesparam_rows:
            gesparam = _Member(folder, "GESPARAM_0001.csv", contract.GESPARAM, codec, False, False)
            for start in range(0, gesparam_rows, _ROWS_PER_WRITE):
                gesparam.add([rows.gesparam(n) for n in
                              range(start + 1, min(gesparam_rows, start + _ROWS_PER_WRITE) + 1)])
            members.append(gesparam)
        listing = [member.close() for member in members]
        monitor = "member_name;type;record_count;amount_sum\n" + "".join(
            f"{m.name};{m.kind};{m.records};{m.amount_sum if m.kind == contract.CRE else ''}\n"
            for m in members)
        monitor_bytes = monitor.encode(codec)
        listing.insert(0, {"name": "MONITOR.csv", "type": contract.MONITOR, "records": len(members),
                           "bytes": len(monitor_bytes),
                           "sha256": hashlib.sha256(monitor_bytes).hexdigest()})
        meta = {"vacation_id": vacation_id, "sender": contract.SENDER,
                "business_date": business_date, "slot": slot,
                "produced_at": _produced_at(date, slot),
                "format_version": contract.FORMAT_VERSION, "encoding": encoding,
                "members": listing}
        path = out / f"{vacation_id}.tar.bz2"
        temporary = path.with_suffix(".tmp")
        with tarfile.open(temporary, "w:bz2", compresslevel=9, format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "META.json", json.dumps(meta, indent=1).encode("utf-8"))
            _add_bytes(tar, "MONITOR.csv", monitor_bytes)
            for member in members:
                info = _info(member.name, member.bytes)
                with open(member.path, "rb") as handle:
                    tar.addfile(info, handle)
        os.replace(temporary, path)
    return path


def _produced_at(business_date: datetime.date, slot: int) -> str:
    """Every three hours from 09:00 (Paris, +01:00): slot 6 is produced at midnight, the next
    day's 00:00 (an ISO hour is 00 to 23)."""
    midnight = datetime.datetime.combine(business_date, datetime.time(),
                                         datetime.timezone(datetime.timedelta(hours=1)))
    return (midnight + datetime.timedelta(hours=6 + 3 * slot)).isoformat()


def _write_cre(folder: str, rows: _Rows, cre_rows: int, members: int, codec: str,
               corrections: Sequence[Sequence[str]]) -> list[_Member]:
    written: list[_Member] = []
    per_member = math.ceil(cre_rows / members) if cre_rows else 0
    number = 0
    for index in range(1, members + 1):
        member = _Member(folder, f"CRE_{index:04d}.csv", contract.CRE, codec, crlf=index % 2 == 1,
                         bom=index == 1 and codec == "utf-8")
        count = min(per_member, cre_rows - number)
        while count > 0:
            stop = number + min(count, _ROWS_PER_WRITE)
            batch = [rows.cre(n) for n in range(number + 1, stop + 1)]
            member.add(batch)
            member.amount_sum += sum(Decimal(row[5]) for row in batch)
            number += len(batch)
            count -= len(batch)
        written.append(member)
    if corrections:
        written[-1].add(corrections)
        written[-1].amount_sum += sum(Decimal(row[5]) for row in corrections)
    for member in written:
        member.amount_sum = member.amount_sum.quantize(Decimal("0.01"))
    return written


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, _MTIME, 0o644
    info.uname = info.gname = "baf"
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def read_members(archive: str | Path) -> dict[str, bytes]:
    """Every member's bytes, for tests on small archives."""
    with tarfile.open(archive, "r:bz2") as tar:
        return {info.name: tar.extractfile(info).read() for info in tar if info.isfile()}
