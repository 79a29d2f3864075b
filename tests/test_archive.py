"""The streaming archive reader: bzip2 and tar rules checked as the bytes come out."""

from __future__ import annotations

import bz2
import io
import random
import tarfile

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import IngestOptions
from tests.vacations import (
    ARCHIVE_CASE_CODES,
    ARCHIVE_CASE_OPTIONS,
    VACATION,
    archive_case,
    ingest_steps,
    tar_bytes,
    valid_members,
)
from transforms.archive import Bz2Reader, iter_members
from transforms.contract import Limits, VacationError


def _with_a_damaged_block() -> bytes:
    data = bytearray(bz2.compress(random.Random(2).randbytes(50_000)))
    data[2000] ^= 0xFF
    return bytes(data)


# one thread: Python's bz2, the reference; two: the blocks decoded in parallel (indexed_bzip2)
THREADS = pytest.mark.parametrize("threads", [1, 2])


def _read_all(data: bytes, limits: Limits = Limits(), threads: int = 1) -> bytes:
    reader = Bz2Reader(io.BytesIO(data), limits, threads)
    try:
        return reader.read()
    finally:
        reader.close()


@THREADS
def test_multistream_bzip2_reads_as_one(threads):
    data = bz2.compress(b"abc" * 1000) + bz2.compress(b"xyz")
    assert _read_all(data, threads=threads) == b"abc" * 1000 + b"xyz"


@THREADS
def test_parallel_decoding_gives_every_block_in_order(threads):
    rows = random.Random(7).randbytes(3 << 20).hex().encode()  # 6 MiB: seven 900 kB blocks
    data = bz2.compress(rows[: 4 << 20]) + bz2.compress(rows[4 << 20:])
    assert _read_all(data, threads=threads) == rows


@THREADS
@pytest.mark.parametrize("data, code", [
    (b"PK\x03\x04 zip, not bzip2", "NOT_BZIP2"),
    (bz2.compress(random.Random(1).randbytes(100_000))[:-10], "CORRUPT_ARCHIVE"),
    (bz2.compress(b"data") + b"garbage", "CORRUPT_ARCHIVE"),
    (bz2.compress(b"data") + b"BZh9 not a stream", "CORRUPT_ARCHIVE"),
    (_with_a_damaged_block(), "CORRUPT_ARCHIVE"),
])
def test_bad_streams_are_named(data, code, threads):
    with pytest.raises(VacationError) as error:
        _read_all(data, threads=threads)
    assert error.value.code == code


def test_one_thread_where_the_source_cannot_seek():
    class Unseekable(io.BytesIO):
        def seekable(self) -> bool:
            return False

    reader = Bz2Reader(Unseekable(bz2.compress(b"abc")), Limits(), threads=4)
    assert reader._threads == 1 and reader.read() == b"abc"


@THREADS
def test_a_bomb_stops_after_a_few_megabytes(threads):
    compressor = bz2.BZ2Compressor()
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(1024)) + compressor.flush()
    reader = Bz2Reader(io.BytesIO(bomb), Limits(max_ratio=200), threads)
    with pytest.raises(VacationError) as error:
        while reader.read_chunk():
            pass
    reader.close()
    assert error.value.code == "LIMIT_EXCEEDED"
    # stopped one 1 MiB chunk past the 1 MiB the ratio waits for, not 1 GiB later
    assert reader.uncompressed_bytes <= (1 << 20) + max(200 * len(bomb), 1 << 20)


@THREADS
def test_the_ratio_is_judged_only_past_one_mebibyte(threads):
    """Amendment 2026-12-01: an empty tar (10 KiB of zeros, ratio ~250) is no bomb, but the
    same ratio past 1 MiB is."""
    empty_tar = bz2.compress(tar_bytes({}))
    assert len(tar_bytes({})) / len(empty_tar) > 200
    assert _read_all(empty_tar, Limits(max_ratio=200), threads) == tar_bytes({})
    just_under = bz2.compress(b"\0" * (1 << 20))
    assert len(_read_all(just_under, Limits(max_ratio=200), threads)) == 1 << 20
    with pytest.raises(VacationError) as error:
        _read_all(bz2.compress(b"\0" * ((1 << 20) + 1)), Limits(max_ratio=200), threads)
    assert error.value.code == "LIMIT_EXCEEDED"


def test_members_are_streamed_in_order_with_the_folder_removed():
    archive = bz2.compress(tar_bytes({"META.json": b"{}", "CRE_0001.csv": b"a;b\n"},
                                     folder=f"{VACATION}/"))
    names = [(member.name, member.fileobj.read()) for member in
             iter_members(io.BytesIO(archive), VACATION, Limits())]
    assert names == [("META.json", b"{}"), ("CRE_0001.csv", b"a;b\n")]


def test_more_members_than_the_limit_is_refused():
    archive = bz2.compress(tar_bytes({f"CRE_{n:04d}.csv": b"" for n in range(5)}))
    with pytest.raises(VacationError) as error:
        list(iter_members(io.BytesIO(archive), VACATION, Limits(max_members=4)))
    assert error.value.code == "LIMIT_EXCEEDED"


@pytest.mark.parametrize("case", sorted(ARCHIVE_CASE_CODES))
def test_archive_rules_reject_the_whole_vacation(tmp_path, case):
    """Each way of breaking the archive's bytes, with the limits cre ingest's options give."""
    limits = PipelineOptions(ARCHIVE_CASE_OPTIONS.get(case, [])).view_as(IngestOptions).limits()
    ingested = ingest_steps(archive_case(tmp_path, case), limits)
    assert ingested.summary["status"] == "REJECTED"
    assert ingested.error_codes == [ARCHIVE_CASE_CODES[case]]


def test_the_ingest_options_set_the_limits():
    options = PipelineOptions(["--max-members", "3", "--max-uncompressed-bytes", "5000",
                               "--max-ratio", "50"]).view_as(IngestOptions)
    assert options.limits() == Limits(max_members=3, max_uncompressed_bytes=5000, max_ratio=50)
    assert PipelineOptions([]).view_as(IngestOptions).limits() == Limits()


def test_members_in_the_vacation_folder_and_multistream_bzip2_are_accepted(tmp_path):
    tar = tar_bytes(valid_members(tmp_path), folder=f"{VACATION}/", fmt=tarfile.USTAR_FORMAT)
    path = tmp_path / f"{VACATION}.tar.bz2"
    path.write_bytes(bz2.compress(tar[:7000]) + bz2.compress(tar[7000:]))
    summary = ingest_steps(path).summary
    assert summary["status"] == "ACCEPTED", summary["errors"]
