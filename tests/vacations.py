"""Archives for tests: valid ones from the generator, and every way of breaking them."""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Optional

from pipelines.local.generator import generate_vacation, read_members
from transforms.contract import (
    DEBIT_TYPES,
    DECIMAL_PATTERN,
    DEFAULT_MAX_REJECT_RATIO,
    Limits,
    VacationName,
)
from transforms.csv_records import ParsedBatch
from transforms.outcome import CollectFacts, RunContext, decide
from transforms.vacation_reader import VacationReader
from transforms.validate import validate_batch

VACATION = "BAF_20261122_03"


def valid_members(tmp: Path, cre_rows: int = 50, gesparam_rows: int = 10, seed: int = 1,
                  encoding: str = "UTF-8", business_date: str = "2026-11-22",
                  slot: int = 3) -> dict[str, bytes]:
    """The members of a small generated vacation, META.json first, to mutate and rebuild."""
    archive = generate_vacation(tmp / "generated", business_date, slot, cre_rows, gesparam_rows,
                                seed, cre_members=2, encoding=encoding)
    return read_members(archive)


def with_bad_currency(members: dict[str, bytes]) -> str:
    """Breaks the currency of the third record of the first CRE member; returns its name."""
    name = next(n for n in members if n.startswith("CRE_"))
    lines = members[name].decode().splitlines(keepends=True)
    fields = lines[3].split(";", 7)  # the fields before the currency hold no ';'
    lines[3] = ";".join([*fields[:6], "ZZZ", fields[7]])
    members[name] = "".join(lines).encode()
    return name


def data_records(raw: bytes, encoding: str = "utf-8") -> list[list[str]]:
    text = raw.removeprefix(b"\xef\xbb\xbf").decode(encoding, errors="replace")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))[1:]


def monitor_for(members: dict[str, bytes]) -> bytes:
    lines = ["member_name;type;record_count;amount_sum"]
    for name, raw in members.items():
        kind = name.split("_")[0]
        if kind not in ("CRE", "GESPARAM"):
            continue
        rows = data_records(raw)
        total = sum((Decimal(row[5]) for row in rows
                     if len(row) > 5 and re.match(DECIMAL_PATTERN, row[5])), Decimal(0)) \
            if kind == "CRE" else ""
        lines.append(f"{name};{kind};{len(rows)};{total}")
    return ("\n".join(lines) + "\n").encode()


def refresh(members: dict[str, bytes], *, monitor: bool = True,
            encoding: Optional[str] = None) -> dict[str, bytes]:
    """Recomputes MONITOR and META after a change, so only the intended rule breaks."""
    members = dict(members)
    if monitor:
        members["MONITOR.csv"] = monitor_for(members)
    meta = json.loads(members["META.json"])
    if encoding:
        meta["encoding"] = encoding
    meta["members"] = [
        {"name": name, "type": name.split("_")[0].split(".")[0], "bytes": len(raw),
         "sha256": hashlib.sha256(raw).hexdigest(),
         "records": len(data_records(raw, "latin-1" if meta.get("encoding") == "ISO-8859-1"
                                     else "utf-8"))}
        for name, raw in members.items() if name != "META.json"
    ]
    members["META.json"] = json.dumps(meta).encode()
    return {"META.json": members.pop("META.json"), **members}


def break_currencies(members: dict[str, bytes], every: int) -> tuple[dict[str, bytes], int]:
    """About every ``every``-th line of each CRE member gets an unknown currency (BAD_CURRENCY);
    returns the members and how many records were broken."""
    broken, count = dict(members), 0
    for name, raw in members.items():
        if name.startswith("CRE_"):
            lines = raw.decode().splitlines(keepends=True)
            for index in range(1, len(lines), every):
                fields = lines[index].split(";", 7)  # no ';' before the currency
                if len(fields) == 8 and re.fullmatch("[A-Z]{3}", fields[6]):  # a record's line
                    lines[index] = ";".join([*fields[:6], "ZZZ", fields[7]])
                    count += 1
            broken[name] = "".join(lines).encode()
    return refresh(broken), count


def tar_bytes(members: dict[str, bytes], *, folder: str = "", fmt: int = tarfile.PAX_FORMAT,
              extra: tuple[tarfile.TarInfo, ...] = (), repeat: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info in extra:
            tar.addfile(info)
        for name, raw in [*members.items(), *((name, members[name]) for name in repeat)]:
            info = tarfile.TarInfo(f"{folder}{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def write_archive(folder: Path, members: dict[str, bytes], name: str = VACATION,
                  **tar_options) -> Path:
    path = folder / f"{name}.tar.bz2"
    path.write_bytes(bz2.compress(tar_bytes(members, **tar_options)))
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def mutate_cre(members: dict[str, bytes], line: str) -> dict[str, bytes]:
    """Adds ``line`` (one or more records) at the end of CRE_0001.csv; META and MONITOR agree."""
    members = dict(members)
    members["CRE_0001.csv"] += line.encode("utf-8")
    return refresh(members)


# one broken record per record error code (spec 2.2), appended to a valid CRE member
RECORD_CASES = {
    "COLUMN_COUNT": "X-1;ACC00000001;DEBIT\n",
    "REQUIRED_MISSING": ";ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "BAD_ENUM": "X-2;ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "BAD_DATE": "X-3;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-02-30;1.00;EUR;;\n",
    "BAD_TIMESTAMP": "X-4;ACC00000001;DEBIT;2026-11-22T09:15:00;2026-11-22;1.00;EUR;;\n",
    "BAD_DECIMAL": "X-5;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.005;EUR;;\n",
    "BAD_CURRENCY": "X-6;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUX;;\n",
    "BAD_IBAN": "X-7;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;"
                "FR7630006000011234567890188;\n",
    "BAD_FORMAT": "X-8;acc00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n",
    "TOO_LONG": "X-9;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;"
                + "é" * 141 + "\n",
    "DUPLICATE_KEY": "X-10;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n"
                     "X-10;ACC00000001;DEBIT;2026-11-22T09:15:00+01:00;2026-11-22;2.00;EUR;;\n",
}


def _meta_edit(**changes):
    def build(members):
        meta = json.loads(members["META.json"])
        meta.update(changes)
        return {**members, "META.json": json.dumps(meta).encode()}
    return build


def _without_monitor(members):
    members = dict(members)
    del members["MONITOR.csv"]
    return refresh(members, monitor=False)


def _drop_listing(name):
    def build(members):
        members = dict(members)
        raw = members.pop(name)
        members = refresh(members)
        members[name] = raw
        return members
    return build


def _tamper(members):
    members = dict(members)
    members["CRE_0002.csv"] = members["CRE_0002.csv"].replace(b"EUR", b"USD", 1)
    return members


def _header(members):
    members = dict(members)
    members["GESPARAM_0001.csv"] = members["GESPARAM_0001.csv"].replace(b"param_key", b"key", 1)
    return refresh(members)


def _monitor_count(members):
    members = refresh(members)
    members["MONITOR.csv"] = members["MONITOR.csv"].replace(b"CRE_0001.csv;CRE;25",
                                                            b"CRE_0001.csv;CRE;26")
    return refresh(members, monitor=False)


def _monitor_amount(members):
    members = refresh(members)
    lines = members["MONITOR.csv"].decode().splitlines()
    name, kind, count, total = lines[1].split(";")
    lines[1] = f"{name};{kind};{count};{float(total) + 0.01:.2f}"
    members["MONITOR.csv"] = ("\n".join(lines) + "\n").encode()
    return refresh(members, monitor=False)


def _monitor_invalid(members):
    members = refresh(members)
    members["MONITOR.csv"] += b"CRE_0009.csv;CRE;1;1.00\n"
    return refresh(members, monitor=False)


def _ratio(members):
    members = dict(members)
    members["CRE_0001.csv"] += b"".join(
        f"Z-{n};ACC00000001;GIFT;2026-11-22T09:15:00+01:00;2026-11-22;1.00;EUR;;\n".encode()
        for n in range(10))
    return refresh(members)


# a case of the members or their contents -> how it breaks the members of valid_members()
MEMBER_CASES = {
    "META_MISSING": lambda m: {k: v for k, v in m.items() if k != "META.json"},
    "META_INVALID": _meta_edit(format_version="2.0"),
    "VACATION_ID_MISMATCH": _meta_edit(vacation_id="BAF_20261122_04"),
    "MEMBER_MISSING": lambda m: {k: v for k, v in m.items() if k != "CRE_0002.csv"},
    "MEMBER_UNEXPECTED": lambda m: {**m, "CRE_0099.csv": b"cre_id\n"},
    "CHECKSUM_MISMATCH": _tamper,
    "MONITOR_MISSING": _without_monitor,
    "MONITOR_INVALID": _monitor_invalid,
    "HEADER_MISMATCH": _header,
    "RECON_COUNT_MISMATCH": _monitor_count,
    "RECON_AMOUNT_MISMATCH": _monitor_amount,
    "REJECT_RATIO_EXCEEDED": _ratio,
    "UNLISTED_MEMBER": _drop_listing("GESPARAM_0001.csv"),
}
# the fatal code of each member case: its own name but for these
MEMBER_CASE_CODES = {case: {"UNLISTED_MEMBER": "MEMBER_UNEXPECTED"}.get(case, case)
                     for case in MEMBER_CASES}

# a case of the archive's bytes -> its fatal code
ARCHIVE_CASE_CODES = {
    "NOT_BZIP2": "NOT_BZIP2", "TRUNCATED": "CORRUPT_ARCHIVE", "CORRUPT_TAR": "CORRUPT_ARCHIVE",
    "BOMB": "LIMIT_EXCEEDED", "TOO_MANY_MEMBERS": "LIMIT_EXCEEDED",
    "TOO_MANY_BYTES": "LIMIT_EXCEEDED", "SYMLINK": "UNSAFE_MEMBER", "HARDLINK": "UNSAFE_MEMBER",
    "FIFO": "UNSAFE_MEMBER", "DEVICE": "UNSAFE_MEMBER", "ABSOLUTE": "UNSAFE_MEMBER",
    "DOTDOT": "UNSAFE_MEMBER", "OTHER_FOLDER": "UNSAFE_MEMBER", "REPEATED": "UNSAFE_MEMBER",
}
# the cre ingest options of the cases that break a limit lower than the default
ARCHIVE_CASE_OPTIONS = {"TOO_MANY_MEMBERS": ["--max-members", "3"],
                        "TOO_MANY_BYTES": ["--max-uncompressed-bytes", "5000"]}


def archive_case(tmp: Path, case: str) -> Path:
    """The archive of a valid vacation whose bytes are broken as ``case`` says."""
    members = valid_members(tmp)
    tar = tar_bytes(members)
    path = tmp / f"{VACATION}.tar.bz2"
    if case == "NOT_BZIP2":
        path.write_bytes(gzip.compress(tar))
    elif case == "TRUNCATED":
        whole = bz2.compress(tar)
        path.write_bytes(whole[: len(whole) - 200])
    elif case == "CORRUPT_TAR":
        path.write_bytes(bz2.compress(b"this is not a tar archive" * 100))
    elif case == "BOMB":  # 64 MiB of line feeds end a member: a ratio far above the limit
        raw = members["CRE_0001.csv"] + b"\n" * (64 << 20)
        meta = json.loads(members["META.json"])  # as refresh() would, without parsing 64 MiB
        for entry in meta["members"]:
            if entry["name"] == "CRE_0001.csv":
                entry.update(bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                             records=entry["records"] + (64 << 20))
        bomb = {**members, "META.json": json.dumps(meta).encode(), "CRE_0001.csv": raw}
        path.write_bytes(bz2.compress(tar_bytes(bomb)))
    elif case in ARCHIVE_CASE_OPTIONS:
        path.write_bytes(bz2.compress(tar))
    else:
        kinds = {"SYMLINK": (tarfile.SYMTYPE, "META.json"),
                 "HARDLINK": (tarfile.LNKTYPE, "META.json"),
                 "FIFO": (tarfile.FIFOTYPE, ""), "DEVICE": (tarfile.CHRTYPE, "")}
        layouts = {"ABSOLUTE": {"folder": "/"}, "DOTDOT": {"folder": "../"},
                   "OTHER_FOLDER": {"folder": "elsewhere/"},
                   "REPEATED": {"repeat": ("CRE_0001.csv",)}}
        if case in kinds:
            kind, link = kinds[case]
            options = {"extra": (special("x", kind, link),)}
        else:
            options = layouts[case]
        path.write_bytes(bz2.compress(tar_bytes(members, **options)))
    return path


@dataclasses.dataclass
class Ingested:
    """What the ingest's steps made of one archive: the summary ``cre ingest`` prints, the
    REJECT records and the loaded records of each type (as the Avro files hold them)."""

    summary: dict
    rejects: list[dict]
    loaded: dict[str, list[dict]]

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in self.summary["errors"]]


def ingest_steps(path: Path, limits: Limits = Limits(),
                 max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO) -> Ingested:
    """The ingest pipeline's steps on one archive called directly, without Beam, the CLI or any
    zone: the reader's events, each batch validated, the facts combined and decided."""
    name = VacationName.parse(path.name)
    collect = CollectFacts()
    facts = collect.create_accumulator()
    rejects: list[dict] = []
    loaded: dict[str, list[dict]] = {}
    for event in VacationReader(lambda: open(path, "rb"), name, limits):
        if isinstance(event, ParsedBatch):
            validated = validate_batch(event)
            rejects.extend(validated.rejects.to_pylist())
            loaded.setdefault(validated.kind, []).extend(validated.records.to_pylist())
            event = validated.counts
        facts = collect.add_input(facts, event)
    context = RunContext(name.vacation_id, name.business_date, name.slot,
                         hashlib.sha256(path.read_bytes()).hexdigest(), "received",
                         max_reject_ratio)
    return Ingested(decide(collect.extract_output(facts), context, "processed"), rejects, loaded)


def day_positions(rows: list[list[str]], day: str) -> dict[str, list]:
    """What ``cre query position`` must serve for one account's CRE rows (as archived) on
    ``day``: per currency, the event count, the debit total and the credit total."""
    expected: dict[str, list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row in rows:
        if row[4] == day:
            total = expected[row[6]]
            total[0] += 1
            total[1 if row[2] in DEBIT_TYPES else 2] += abs(Decimal(row[5]))
    return dict(expected)
