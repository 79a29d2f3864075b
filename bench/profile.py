"""Where the time of ``cre ingest`` and ``cre deliver`` goes, stage by stage (``make profile``).

py-spy samples every thread of the command (100 Hz, Python frames only: native time is charged
to the Python frame that called it). Each sample is charged to the stage of its innermost frame
that a rule below knows, so a pyarrow kernel called by a rule counts for that rule, and Beam's
own frames count only where none of ours is under them. The tables print thread-seconds per
stage: with the bzip2 thread beside the pipeline's, they add up to more than the wall time,
and a thread that is runnable but waits for a core (the local Cassandra takes one) counts too.

1. The 1M-row vacation into the Proxy Producer zone alone (DirectRunner, in process).
2. The same into the structured zone too (keyspace ``bench``, fresh, ``--no-deliver``).
3. ``cre deliver`` of that vacation.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (the sibling module: bench/ is sys.path[0])

RATE = 100  # samples per second
# (stage, file suffix, function pattern): the first rule that matches a frame names its stage
# a sample taken while a module is imported is import time, whatever the import runs
IMPORTING = "<frozen importlib._bootstrap>"
RULES: tuple[tuple[str, str, str], ...] = (
    ("bzip2 decode", "transforms/archive.py", r"_decompress"),
    ("bzip2 decode", "/bz2.py", ""),
    ("bzip2 decode", "/indexed_bzip2/", ""),
    ("compiled: {function}", "transforms/kernels.py", r"^(?!_)"),
    ("tar walk", "/tarfile.py", ""),
    ("tar walk", "transforms/archive.py", ""),
    ("record boundaries", "transforms/csv_records.py", r"feed|close|_batch|_record_ends"),
    ("Arrow parse", "transforms/csv_records.py", ""),
    ("rule: {function}", "transforms/rules.py", ""),
    ("duplicate keys", "transforms/keys.py", ""),
    ("Avro encoding", "io_connectors/avro_blocks.py", r"encode|_part|_parts|_interleave|_zig"),
    ("staging I/O", "io_connectors/avro_blocks.py", ""),
    ("staging I/O", "io_connectors/proxy_zone.py", ""),
    ("CQL serialization", "io_connectors/cql_values.py", ""),
    ("Cassandra reads (source)", "io_connectors/cassandra.py", r"_Read|_Split|_arrow|_map_arr"),
    ("Cassandra writes (sink)", "io_connectors/cassandra.py", ""),
    ("Cassandra sessions and retries", "io_connectors/cassandra_client.py", ""),
    ("Cassandra driver", "cassandra/", ""),
    ("positions and package", "pipelines/deliver.py", ""),
    ("positions and package", "transforms/pivot_package.py", ""),
    ("positions and package", "io_connectors/arkea_abs.py", ""),
    ("validation (other)", "transforms/", ""),
    ("Beam between steps", "apache_beam/", ""),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def stage_of(stack: list[str]) -> str:
    """The stage of one sampled stack (outermost frame first)."""
    frames = [match.groupdict() for match in map(_FRAME.match, stack) if match]
    if any(frame["file"] == IMPORTING for frame in frames):
        return "imports"
    for frame in reversed(frames):
        for stage, suffix, pattern in RULES:
            if suffix in frame["file"] and re.search(pattern, frame["function"]):
                return stage.format(function=frame["function"])
    return "other"


def stages(raw: str) -> collections.Counter:
    """Thread-seconds per stage of py-spy's raw (collapsed) output."""
    seconds: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            seconds[stage_of(stack.split(";"))] += int(count) / RATE
    return seconds


def profile(argv: list[str], env: dict) -> tuple[float, collections.Counter]:
    """The wall time of ``cre argv`` under py-spy, and its thread-seconds per stage."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
        started = time.monotonic()
        subprocess.run([str(Path(sys.executable).with_name("py-spy")), "record", "--format",
                        "raw", "--rate", str(RATE), "--output", raw.name, "--nonblocking",
                        "--", *bench.CRE, *argv], cwd=bench.ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.monotonic() - started, stages(Path(raw.name).read_text())


def report(title: str, wall: float, seconds: collections.Counter) -> None:
    total = sum(seconds.values())
    print(f"\n{title}: {wall:.1f} s wall, {total:.1f} thread-s sampled")
    print(f"{'stage':<34} {'thread-s':>9} {'share':>6}")
    for stage, spent in seconds.most_common():
        print(f"{stage:<34} {spent:>9.2f} {spent / total:>6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-structured", action="store_true",
                        help="only the Proxy Producer zone (no Cassandra needed)")
    parser.add_argument("--deliver-only", action="store_true",
                        help="only cre deliver, of the vacation an earlier run loaded")
    args = parser.parse_args()
    path = bench._archive(args.rows)
    zones = bench.ROOT / "var" / "profile-zones"
    plain = {key: value for key, value in os.environ.items()
             if not key.startswith("CRE_CASSANDRA_")}
    ingest = ["ingest", "--input", str(path), "--zones-root", str(zones)]
    cassandra = {**plain, **bench._cassandra()} if not args.no_structured else {}
    if not args.deliver_only:
        _ingests(args.rows, ingest, zones, plain, cassandra)
    if cassandra:
        bench._wait_until_quiet()
        vacation_id = path.name.split(".")[0]
        report(f"cre deliver, {args.rows:,} rows", *profile(
            ["deliver", "--vacation", vacation_id, "--zones-root", str(zones), "--redeliver"],
            cassandra))


def _ingests(rows: int, ingest: list[str], zones: Path, plain: dict, cassandra: dict) -> None:
    shutil.rmtree(zones, ignore_errors=True)
    bench._wait_until_quiet()
    report(f"cre ingest, {rows:,} rows, Proxy Producer zone", *profile(ingest, plain))
    if not cassandra:
        return
    bench._fresh_keyspace(cassandra)
    shutil.rmtree(zones, ignore_errors=True)
    bench._wait_until_quiet()
    report(f"cre ingest, {rows:,} rows, with the structured zone",
           *profile([*ingest, "--no-deliver"], cassandra))


if __name__ == "__main__":
    main()
