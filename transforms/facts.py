"""What a run learns about a vacation on the way: the facts ``outcome.CollectFacts`` combines.

Each fact is a small frozen dataclass: it pickles across bundles and workers (Beam's fallback
coder), and the combiner dispatches on its type. The steps that learn them:
``ReadVacation`` (``Meta``, ``Monitor``, ``MemberDigest``, ``FatalError``), ``ValidateRecords``
(``BatchCounts``), ``WriteStagedAvro`` (``StagedFile``) and the structured-zone writes
(``StructuredWrite``).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Optional, Union

from transforms import contract


@dataclasses.dataclass(frozen=True)
class MetaMember:
    """One member META.json lists (spec 1.2)."""

    name: str
    kind: str
    records: int
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Meta:
    """META.json, once validated: what the sender declares the archive holds."""

    vacation_id: str
    sender: str
    business_date: str
    slot: int
    produced_at: str
    format_version: str
    encoding: str
    members: tuple[MetaMember, ...]

    @classmethod
    def from_json(cls, meta: dict) -> Meta:
        """From the JSON object, already checked against the contract."""
        return cls(meta["vacation_id"], meta["sender"], meta["business_date"], meta["slot"],
                   meta["produced_at"], meta["format_version"],
                   meta.get("encoding", contract.DEFAULT_ENCODING),
                   tuple(MetaMember(entry["name"], entry["type"], entry["records"],
                                    entry["bytes"], entry["sha256"])
                         for entry in meta["members"]))


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
class MemberDigest:
    """A data member as it streamed: what reconciliation compares with META and MONITOR."""

    name: str
    kind: str
    records: int
    bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class FatalError:
    """A fatal error of spec 2.1, as a fact: the vacation is REJECTED with it."""

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


Fact = Union[Meta, Monitor, MemberDigest, FatalError, BatchCounts, StagedFile, StructuredWrite]
