"""What a run learns about a vacation on the way: the facts ``outcome.CollectFacts`` combines.

Each fact is a small frozen dataclass: it pickles across bundles and workers (Beam's fallback
coder), and the combiner dispatches on its type. The steps that learn them:
``ReadVacation`` (``Meta``, ``Monitor``, ``MemberDigest``, ``FatalError``), ``ValidateRecords``
(``BatchCounts``), ``WriteStagedAvro`` (``StagedFile``), the structured-zone writes
(``StructuredWrite``) and the data-quality profile of each CRE batch (``BatchProfile``).

``Meta`` is also META.json's model: its fields' annotations are the rules of spec 1.2, which
pydantic applies when ``vacation_reader.parse_meta`` builds one from the JSON, and only then
(the facts the code makes are right by construction, and no record ever goes through pydantic).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from decimal import Decimal
from typing import Annotated, Optional, Union

import pyarrow as pa
from pydantic import AfterValidator, BeforeValidator, Field, StrictStr

from transforms import contract

_Count = Annotated[int, Field(strict=True, ge=0)]


def _hex_sha256(text: str) -> str:
    """As ``hashlib`` writes them, so that a declared digest compares with a measured one."""
    if not re.match(r"^[0-9a-f]{64}$", text):
        raise ValueError("not 64 lower-case hex digits")
    return text


def _one_of(*allowed: str) -> AfterValidator:
    """A string from a closed set, the contract's constants."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"not one of {', '.join(allowed)}")
        return value
    return AfterValidator(check)


def _date(text: str) -> str:
    """``YYYY-MM-DD``, a real date (``fromisoformat`` alone also takes ``20261122``)."""
    datetime.date.fromisoformat(text)
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise ValueError("not YYYY-MM-DD")
    return text


def _with_offset(text: str) -> str:
    """An ISO 8601 timestamp with its offset: the sender's clock is not ours."""
    if datetime.datetime.fromisoformat(text).tzinfo is None:
        raise ValueError("no offset")
    return text


@dataclasses.dataclass(frozen=True)
class Digest:
    """A member's size and sha256: measured as it streams (``archive.DigestingReader``) and
    declared by META.json; CHECKSUM_MISMATCH when the two differ."""

    bytes: _Count
    sha256: Annotated[StrictStr, AfterValidator(_hex_sha256)]


@dataclasses.dataclass(frozen=True)
class MemberDigest:
    """A member's figures: name, type, data records and digest. META.json declares them for
    every member (``Meta.members``); the reader yields them for each data member as it
    streamed, and reconciliation compares the two."""

    name: StrictStr
    kind: Annotated[StrictStr, Field(alias="type"),
                    _one_of(contract.MONITOR, *contract.DATA_TYPES)]
    records: _Count
    digest: Digest


def _entry_fields(entry: object) -> object:
    """A members entry of META.json as ``MemberDigest``'s fields: ``bytes`` and ``sha256``,
    side by side in the JSON, are its digest."""
    if not isinstance(entry, dict):
        return entry
    return {**entry, "digest": {key: entry[key] for key in ("bytes", "sha256") if key in entry}}


def _named_after_its_type(member: MemberDigest) -> MemberDigest:
    """The type META gives a member must be the one its name announces (spec 1.1)."""
    if contract.member_type(member.name) != member.kind:
        raise ValueError(f"members entry {member.name!r} does not match the pattern of type "
                         f"{member.kind}")
    return member


def _each_once_with_cre(members: tuple[MemberDigest, ...]) -> tuple[MemberDigest, ...]:
    """A member is listed once, and a vacation has CRE data (spec 1.1)."""
    listed: set[str] = set()
    for member in members:
        if member.name in listed:
            raise ValueError(f"{member.name} is listed twice")
        listed.add(member.name)
    if not any(member.kind == contract.CRE for member in members):
        raise ValueError("no CRE member is listed")
    return members


_Listed = Annotated[MemberDigest, BeforeValidator(_entry_fields),
                    AfterValidator(_named_after_its_type)]


@dataclasses.dataclass(frozen=True)
class Meta:
    """META.json, once validated: what the sender declares the archive holds (spec 1.2)."""

    vacation_id: StrictStr
    sender: Annotated[StrictStr, _one_of(contract.SENDER)]
    business_date: Annotated[StrictStr, AfterValidator(_date)]
    slot: Annotated[int, Field(strict=True, ge=1, le=contract.SLOTS_PER_DAY)]
    produced_at: Annotated[StrictStr, AfterValidator(_with_offset)]
    format_version: Annotated[StrictStr, _one_of(contract.FORMAT_VERSION)]
    encoding: Annotated[StrictStr, Field(default=contract.DEFAULT_ENCODING),
                        _one_of(*contract.ENCODINGS)]
    members: Annotated[tuple[_Listed, ...], AfterValidator(_each_once_with_cre)]


@dataclasses.dataclass(frozen=True)
class MonitorLine:
    member_name: str
    kind: str
    record_count: int
    amount_sum: Optional[Decimal]


@dataclasses.dataclass(frozen=True)
class Monitor:
    """MONITOR.csv, once validated (spec 1.3): one line per data member."""

    lines: tuple[MonitorLine, ...]


@dataclasses.dataclass(frozen=True)
class FatalError:
    """A fatal error of spec 2.1, as a fact: the vacation is REJECTED with it. The ledger
    keeps a vacation's errors so, a failed run's PLATFORM_FAILURE among them."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclasses.dataclass(frozen=True)
class BatchCounts:
    """One validated batch's contribution to its member's reconciliation."""

    member_name: str
    kind: str
    loaded: int
    rejected: int
    reject_codes: dict[str, int]
    amount_sum: Decimal  # of the loaded CRE amounts; 0 for GESPARAM


@dataclasses.dataclass(frozen=True)
class StagedFile:
    """An Avro file a run wrote to staging, published only if the vacation is accepted."""

    output_type: str
    path: str
    records: int


@dataclasses.dataclass(frozen=True)
class StructuredWrite:
    """Rows a bundle wrote to one structured-zone table, or could not write and why."""

    table: str
    rows: int
    failed: int = 0
    error: str = ""


@dataclasses.dataclass(frozen=True)
class BatchProfile:
    """One validated CRE batch's shape, for the checks against the slot's history: per (event
    type, currency) the loaded events and the sum of their amounts, the span of their value
    dates (``date.toordinal()``; None for an empty batch) and their distinct accounts."""

    events: dict[tuple[str, str], tuple[int, Decimal]]
    first_value_date: Optional[int]
    last_value_date: Optional[int]
    accounts: pa.Array


Fact = Union[Meta, Monitor, MemberDigest, FatalError, BatchCounts, StagedFile, StructuredWrite,
             BatchProfile]
