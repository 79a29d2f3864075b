"""The vacation exchange contract (shared/spec/vacation-format.md, version 1.0) as code.

Every name, code, status and limit the pipelines rely on is defined here once, so that a change
of the contract is a change of this module and nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from typing import Optional

FORMAT_VERSION = "1.0"
SENDER = "ARKEA-BAF"

SLOTS_PER_DAY = 6


def vacation_id(business_date: datetime.date, slot: int) -> str:
    return f"BAF_{business_date:%Y%m%d}_{slot:02d}"


ARCHIVE_NAME = re.compile(r"^BAF_(?P<date>\d{8})_(?P<slot>0[1-6])\.tar\.bz2$")

META, MONITOR, CRE, GESPARAM = "META", "MONITOR", "CRE", "GESPARAM"
REJECT, AUDIT = "REJECT", "AUDIT"
DATA_TYPES = (CRE, GESPARAM)
OUTPUT_TYPES = (CRE, GESPARAM, META, MONITOR, REJECT, AUDIT)

MEMBER_PATTERNS = {
    META: re.compile(r"^META\.json$"),
    MONITOR: re.compile(r"^MONITOR\.csv$"),
    CRE: re.compile(r"^CRE_\d{4}\.csv$"),
    GESPARAM: re.compile(r"^GESPARAM_\d{4}\.csv$"),
}

CRE_COLUMNS = (
    "cre_id", "account_id", "event_type", "event_ts", "value_date", "amount", "currency",
    "counterparty_iban", "label",
)
GESPARAM_COLUMNS = ("table_code", "param_key", "param_value", "label", "valid_from", "valid_to")
MONITOR_COLUMNS = ("member_name", "type", "record_count", "amount_sum")
COLUMNS = {CRE: CRE_COLUMNS, GESPARAM: GESPARAM_COLUMNS, MONITOR: MONITOR_COLUMNS}
KEYS = {CRE: ("cre_id",), GESPARAM: ("table_code", "param_key", "valid_from")}

DEBIT_TYPES = frozenset({"DEBIT", "TRANSFER_OUT", "FEE"})  # spec 4: the other types credit
EVENT_TYPES = ("DEBIT", "CREDIT", "TRANSFER_IN", "TRANSFER_OUT", "FEE", "INTEREST", "REVERSAL")
ENCODINGS = {"UTF-8": "utf-8", "ISO-8859-1": "latin-1"}
DEFAULT_ENCODING = "UTF-8"

DECIMAL_PATTERN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
AMOUNT_SCALE = 2


class Fatal:
    """Vacation-level error codes (spec 2.1)."""

    BAD_NAME = "BAD_NAME"
    NOT_BZIP2 = "NOT_BZIP2"
    CORRUPT_ARCHIVE = "CORRUPT_ARCHIVE"
    UNSAFE_MEMBER = "UNSAFE_MEMBER"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    META_MISSING = "META_MISSING"
    META_INVALID = "META_INVALID"
    VACATION_ID_MISMATCH = "VACATION_ID_MISMATCH"
    MEMBER_MISSING = "MEMBER_MISSING"
    MEMBER_UNEXPECTED = "MEMBER_UNEXPECTED"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    MONITOR_MISSING = "MONITOR_MISSING"
    MONITOR_INVALID = "MONITOR_INVALID"
    HEADER_MISMATCH = "HEADER_MISMATCH"
    RECON_COUNT_MISMATCH = "RECON_COUNT_MISMATCH"
    RECON_AMOUNT_MISMATCH = "RECON_AMOUNT_MISMATCH"
    REJECT_RATIO_EXCEEDED = "REJECT_RATIO_EXCEEDED"
    # Not in spec 1.0 (raised in the issue note): the vacation id was already accepted
    # with different content; landing never overwrites it.
    VACATION_ID_REUSED = "VACATION_ID_REUSED"


class RecordCode:
    """Record-level error codes (spec 2.2)."""

    COLUMN_COUNT = "COLUMN_COUNT"
    REQUIRED_MISSING = "REQUIRED_MISSING"
    BAD_ENCODING = "BAD_ENCODING"
    BAD_ENUM = "BAD_ENUM"
    BAD_DATE = "BAD_DATE"
    BAD_TIMESTAMP = "BAD_TIMESTAMP"
    BAD_DECIMAL = "BAD_DECIMAL"
    BAD_CURRENCY = "BAD_CURRENCY"
    BAD_IBAN = "BAD_IBAN"
    BAD_FORMAT = "BAD_FORMAT"
    TOO_LONG = "TOO_LONG"
    BAD_RANGE = "BAD_RANGE"
    DUPLICATE_KEY = "DUPLICATE_KEY"


class Outcome(enum.StrEnum):
    """A vacation's status (spec 2.3): its summary's ``status``, the ledger's ``outcome``."""

    ACCEPTED = "ACCEPTED"
    ACCEPTED_WITH_REJECTS = "ACCEPTED_WITH_REJECTS"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


class Exit(enum.IntEnum):
    """The exit status of every ``cre`` command."""

    OK = 0
    FAILURE = 1  # the platform failed, or could not do what was asked: fix the cause, run again
    USAGE = 2  # the command line is refused: nothing was done
    NO = 3  # done, and the answer is no: the vacation REJECTED, nothing found, a server down


EXIT_CODES = {
    Outcome.ACCEPTED: Exit.OK,
    Outcome.ACCEPTED_WITH_REJECTS: Exit.OK,
    Outcome.DUPLICATE: Exit.OK,
    Outcome.REJECTED: Exit.NO,
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Archive limits of spec 2.1 (LIMIT_EXCEEDED), enforced while bytes come out."""

    max_members: int = 1_000
    max_uncompressed_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    # the ratio is judged past this many decompressed bytes (amendment of 2026-12-01): an
    # empty tar, 10 KiB of zeros, compresses far beyond any ratio and is no bomb
    ratio_after_bytes: int = 1024**2


DEFAULT_MAX_REJECT_RATIO = 0.05


@dataclasses.dataclass(frozen=True)
class VacationName:
    """What the archive's file name tells: id, business date and slot."""

    vacation_id: str
    business_date: str  # YYYY-MM-DD
    slot: int

    @classmethod
    def parse(cls, file_name: str) -> Optional[VacationName]:
        match = ARCHIVE_NAME.match(file_name)
        if not match:
            return None
        raw = match.group("date")
        business_date = f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
        try:
            datetime.date.fromisoformat(business_date)
        except ValueError:
            return None
        return cls(file_name[: -len(".tar.bz2")], business_date, int(match.group("slot")))


def member_type(name: str) -> Optional[str]:
    """The type a member name announces, or None when it matches no pattern of 1.1."""
    for kind, pattern in MEMBER_PATTERNS.items():
        if pattern.match(name):
            return kind
    return None


class VacationError(Exception):
    """A fatal error of spec 2.1: the whole vacation is REJECTED."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):
        return VacationError, (self.code, self.message)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class PlatformError(RuntimeError):
    """A failure of the platform, not of the input (a database, runner or delivery that fails):
    the vacation is not judged, the command exits ``Exit.FAILURE`` and may be rerun."""
