"""Throughput and memory of the ingest pipeline against bzip2 itself (``make bench``).

For each size it generates a vacation (cached under var/bench), measures single-stream bzip2
decompression of the archive (the floor any reader of it pays), then runs ``cre ingest`` on
DirectRunner as a separate process and reads its peak RSS from the kernel (wait4).
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.generator import generate_vacation  # noqa: E402


def _archive(rows: int) -> Path:
    folder = ROOT / "var" / "bench" / f"{rows}"
    path = folder / "BAF_20261122_01.tar.bz2"
    if not path.exists():
        started = time.monotonic()
        generate_vacation(folder, "2026-11-22", 1, rows, 1000, seed=rows)
        print(f"generated {rows:,} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return path


def _decompress_seconds(path: Path) -> float:
    started = time.monotonic()
    with bz2.open(path, "rb") as handle:
        while handle.read(8 << 20):
            pass
    return time.monotonic() - started


def _ingest(path: Path) -> tuple[float, int, dict]:
    zones = path.parent / "zones"
    shutil.rmtree(zones, ignore_errors=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--input", str(path),
         "--zones-root", str(zones)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"cre ingest failed: {stdout[-2000:]!r}")
    return elapsed, usage.ru_maxrss * 1024, json.loads(stdout.decode().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        path = _archive(rows)
        decompress = _decompress_seconds(path)
        elapsed, peak, summary = _ingest(path)
        records = summary["totals"]["records"]
        assert summary["status"] == "ACCEPTED", summary
        results.append((rows, path.stat().st_size, records / decompress, records / elapsed,
                        decompress / elapsed, peak))
    print(f"{'CRE rows':>10} {'archive MB':>10} {'bzip2 rows/s':>13} {'ingest rows/s':>14} "
          f"{'ratio':>6} {'peak RSS MiB':>12}")
    for rows, size, bzip2_rate, ingest_rate, ratio, peak in results:
        print(f"{rows:>10,} {size / 1e6:>10.1f} {bzip2_rate:>13,.0f} {ingest_rate:>14,.0f} "
              f"{ratio:>6.2f} {peak / 2**20:>12.0f}")
    bars = all(ratio >= 0.5 and peak < 2**30 for *_, ratio, peak in results)
    print("bars (ratio >= 0.5, peak RSS < 1 GiB):", "met" if bars else "NOT met")
    return 0 if bars else 1


if __name__ == "__main__":
    sys.exit(main())
