"""Archives for tests: valid ones from the generator, and every way of breaking them."""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import re
import tarfile
from decimal import Decimal
from pathlib import Path
from typing import Optional

from pipelines.local.generator import generate_vacation, read_members
from transforms.contract import DECIMAL_PATTERN

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
