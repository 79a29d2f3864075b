"""``ReadVacation`` and ``ValidateRecords``: the archive to validated batches of records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.display import DisplayDataItem

from transforms import contract, kernels
from transforms.archive import decoder_threads
from transforms.contract import Limits, VacationName
from transforms.csv_records import ParsedBatch
from transforms.facts import Fact
from transforms.vacation_reader import ProgressBar, VacationReader
from transforms.validate import ValidatedBatch, validate_batch

__all__ = ["FACTS", "ReadVacation", "ValidateRecords"]

FACTS = "facts"
_OUTPUT_TYPES = {**dict.fromkeys(contract.DATA_TYPES, ParsedBatch), FACTS: Fact}


class _ReadArchiveFn(beam.DoFn):
    """Streams one archive: parsed batches to the output of their type, facts to ``facts``."""

    def __init__(self, name: VacationName, limits: Limits, chunk_bytes: int,
                 progress: Optional[ProgressBar], threads: int, native: bool):
        self._native = native
        self._name = name
        self._threads = threads
        self._limits = limits
        self._chunk_bytes = chunk_bytes
        self._progress = progress
        self._batches = beam.metrics.Metrics.counter(self.__class__, "batches")
        self._records = beam.metrics.Metrics.counter(self.__class__, "records")

    def process(self, path: str) -> Iterator:
        def open_archive():
            return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)

        reader = VacationReader(open_archive, self._name, self._limits, self._chunk_bytes,
                                self._progress, self._threads or decoder_threads(),
                                self._native)
        for event in reader:
            if isinstance(event, ParsedBatch):
                self._batches.inc()
                self._records.inc(event.table.num_rows + event.rejects.num_rows)
                yield beam.pvalue.TaggedOutput(event.kind, event)
            else:
                yield beam.pvalue.TaggedOutput(FACTS, event)


@beam.typehints.with_input_types(str)
class ReadVacation(beam.PTransform):
    """Reads vacation archives (a PCollection of paths) into ``ParsedBatch``es per data type.

    Outputs, by tag: ``CRE`` and ``GESPARAM`` batches, and ``facts`` (``Meta``, ``Monitor``, a
    ``MemberDigest`` per data member and any ``FatalError``) for the decision.

    Args:
      name: what the archive's file name says (id, date, slot): META must agree with it.
      limits: the archive limits of spec 2.1, enforced while the bytes come out.
      chunk_bytes: how many bytes of a member are read, and so parsed, at once: about the size
        of a batch; at least 1024.
      progress: a bar of the CSV read, started and moved by the reader wherever it runs (it is
        pickled with it), e.g. ``pipelines.progress.Bar``; by default the reader only logs.
      decoder_threads: the threads decoding the archive's bzip2 blocks; 0 (the default): one
        per core of the worker that reads it.
      hot_path: ``native`` (the default): the compiled kernels split the records and index
        their keys; ``python``: the numpy and Arrow reference (``transforms.kernels``).
    """

    def __init__(self, name: VacationName, limits: Limits = Limits(),
                 chunk_bytes: int = 2 << 20, progress: Optional[ProgressBar] = None,
                 decoder_threads: int = 0, hot_path: str = "native"):
        super().__init__()
        if not isinstance(name, VacationName):
            raise TypeError(f"name must be a VacationName, not {type(name).__name__}")
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be Limits, not {type(limits).__name__}")
        if not isinstance(chunk_bytes, int) or chunk_bytes < 1024:
            raise ValueError(f"chunk_bytes must be an int of at least 1024, not {chunk_bytes!r}")
        if progress is not None and not isinstance(progress, ProgressBar):
            raise TypeError(f"progress must be a ProgressBar, not {type(progress).__name__}")
        if not isinstance(decoder_threads, int) or decoder_threads < 0:
            raise ValueError(f"decoder_threads must be an int >= 0, not {decoder_threads!r}")
        self._threads = decoder_threads
        self._native = kernels.native(hot_path)
        self._hot_path = hot_path
        self._name = name
        self._limits = limits
        self._chunk_bytes = chunk_bytes
        self._progress = progress

    def expand(self, paths):
        return paths | "StreamArchive" >> beam.ParDo(
            _ReadArchiveFn(self._name, self._limits, self._chunk_bytes, self._progress,
                           self._threads, self._native)
        ).with_output_types(beam.typehints.Any, **_OUTPUT_TYPES).with_outputs(*_OUTPUT_TYPES)

    def display_data(self) -> dict:
        return {"vacation_id": DisplayDataItem(self._name.vacation_id, label="Vacation"),
                "max_members": self._limits.max_members,
                "max_uncompressed_bytes": self._limits.max_uncompressed_bytes,
                "max_ratio": self._limits.max_ratio,
                "chunk_bytes": self._chunk_bytes,
                "decoder_threads": DisplayDataItem(self._threads or "one per core",
                                                   label="bzip2 decoder threads"),
                "hot_path": DisplayDataItem(self._hot_path, label="Hot path")}


@beam.typehints.with_input_types(ParsedBatch)
@beam.typehints.with_output_types(ValidatedBatch)
class ValidateRecords(beam.PTransform):
    """``ParsedBatch``es to ``ValidatedBatch``es: each record loaded or rejected with a reason.

    The rules are the contract's (``transforms.rules``), one list per type.

    Args:
      hot_path: ``native`` (the default): the rules' compiled twins check the records;
        ``python``: the numpy and Arrow reference (``transforms.kernels``).
    """

    def __init__(self, hot_path: str = "native"):
        super().__init__()
        self._native = kernels.native(hot_path)
        self._hot_path = hot_path

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "CheckRules" >> beam.Map(validate_batch, native=self._native)

    def display_data(self) -> dict:
        return {"hot_path": DisplayDataItem(self._hot_path, label="Hot path")}
