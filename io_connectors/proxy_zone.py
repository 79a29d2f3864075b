"""The Proxy Producer zone sink: records staged as Avro, then published whole or not at all.

``WriteStagedAvro`` streams validated batches into one Avro file per output type and bundle in
the run's staging folder. ``PublishVacation`` runs once per vacation, after every file is
closed and the outcome decided (``transforms.outcome.DecideVacation``): it moves the files it
is told to publish into the partitions, writes META, MONITOR and AUDIT, and writes the commit
record last (see ``io_connectors.zones``).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

import schemas
from io_connectors import zones
from io_connectors.avro_blocks import CODECS, AvroBlockEncoder, AvroContainerWriter
from transforms import contract, kernels
from transforms.facts import Meta, StagedFile
from transforms.outcome import Decision, RunContext, now
from transforms.validate import ValidatedBatch

__all__ = ["PublishVacation", "WriteStagedAvro", "publish"]

_LOG = logging.getLogger(__name__)


class _StagedWriter:
    """One open staging file of one output type."""

    def __init__(self, path: str, output_type: str, codec: str):
        self.path = path
        self.output_type = output_type
        self._handle = FileSystems.create(path)
        self._writer = AvroContainerWriter(self._handle, schemas.definition(output_type), codec)

    def write(self, encoder: AvroBlockEncoder, table) -> None:
        if table.num_rows:
            self._writer.write_block(table.num_rows, encoder.encode(table))

    def close(self) -> StagedFile:
        self._handle.close()
        return StagedFile(self.output_type, self.path, self._writer.records)


class _StageAvroFn(beam.DoFn):
    def __init__(self, staging_dir: str, vacation_id: str, codec: str, native: bool):
        self._native = native
        self._staging_dir = staging_dir
        self._vacation_id = vacation_id
        self._codec = codec

    def setup(self) -> None:
        self._encoders: dict[tuple[str, str], AvroBlockEncoder] = {}

    def start_bundle(self) -> None:
        self._writers: dict[str, _StagedWriter] = {}

    def process(self, batch: ValidatedBatch) -> None:
        self._writer(batch.kind).write(self._encoder(batch.kind, batch.member_name), batch.records)
        self._writer(contract.REJECT).write(self._encoder(contract.REJECT, ""), batch.rejects)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for writer in self._writers.values():
            yield WindowedValue(writer.close(), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self._writers = {}

    def _writer(self, output_type: str) -> _StagedWriter:
        if output_type not in self._writers:
            path = zones.join(self._staging_dir, output_type, f"part-{uuid.uuid4().hex}.avro")
            self._writers[output_type] = _StagedWriter(path, output_type, self._codec)
        return self._writers[output_type]

    def _encoder(self, output_type: str, member_name: str) -> AvroBlockEncoder:
        key = (output_type, member_name)
        if key not in self._encoders:
            constants = {"vacation_id": self._vacation_id}
            if output_type != contract.REJECT:
                constants["member_name"] = member_name
            self._encoders[key] = AvroBlockEncoder(schemas.definition(output_type), constants,
                                                   self._native)
        return self._encoders[key]


@beam.typehints.with_input_types(ValidatedBatch)
@beam.typehints.with_output_types(StagedFile)
class WriteStagedAvro(beam.PTransform):
    """Writes ``ValidatedBatch``es (records and rejects) as Avro files in a staging folder.

    Returns a PCollection of ``StagedFile``: what ``PublishVacation`` may later publish.

    Args:
      staging_dir: the run's own staging folder (``ProxyZone.staging``); local or ``gs://``.
      vacation_id: written in every record, as the schemas require.
      codec: the Avro block codec, one of ``avro_blocks.CODECS``.
      hot_path: ``native`` (the default): the compiled kernel encodes the blocks; ``python``:
        the numpy reference (``transforms.kernels.HOT_PATHS``).
    """

    def __init__(self, staging_dir: str, vacation_id: str, codec: str = "snappy",
                 hot_path: str = "native"):
        super().__init__()
        if not staging_dir:
            raise ValueError("staging_dir is required")
        if not vacation_id:
            raise ValueError("vacation_id is required")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, not {codec!r}")
        self._native = kernels.native(hot_path)
        self._hot_path = hot_path
        self._staging_dir = staging_dir
        self._vacation_id = vacation_id
        self._codec = codec

    def expand(self, batches):
        return batches | "WriteAvroFiles" >> beam.ParDo(
            _StageAvroFn(self._staging_dir, self._vacation_id, self._codec, self._native))

    def display_data(self) -> dict:
        return {"staging_dir": DisplayDataItem(self._staging_dir, label="Staging folder"),
                "codec": DisplayDataItem(self._codec, label="Avro codec"),
                "hot_path": DisplayDataItem(self._hot_path, label="Hot path")}


def _fastavro_bytes(output_type: str, records: list[dict]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schemas.parsed(output_type), records, codec="null")
    return buffer.getvalue()


class _PublishFn(beam.DoFn):
    def __init__(self, zones_root: str, context: RunContext, staging_dir: str):
        self._zones_root = zones_root
        self._context = context
        self._staging_dir = staging_dir

    def process(self, decision: Decision) -> Iterator[dict]:
        if decision.discarded:  # the platform failed: publish nothing, the run is retried whole
            zones.delete_tree(self._staging_dir)
            raise RuntimeError(decision.discarded)
        publish(zones.ProxyZone(self._zones_root), self._context, decision)
        zones.delete_tree(self._staging_dir)
        yield decision.summary


def publish(zone: zones.ProxyZone, context: RunContext, decision: Decision) -> None:
    """Makes a vacation's outcome visible: the files, META and MONITOR the decision names, its
    AUDIT, and last the commit record."""
    outcome = decision.summary
    vacation_id, business_date = context.vacation_id, context.business_date or "unknown"
    for output_type in contract.OUTPUT_TYPES:  # what an earlier, unfinished attempt left
        zones.delete_tree(zone.partition(output_type, business_date, vacation_id))
    files: list[dict[str, Any]] = []

    def place(output_type: str, records: int) -> str:
        index = sum(1 for item in files if item["type"] == output_type)
        path = zones.join(zone.partition(output_type, business_date, vacation_id),
                          f"part-{index:05d}.avro")
        files.append({"type": output_type, "path": path, "records": records})
        return path

    for item in sorted(decision.files, key=lambda staged: (staged.output_type, staged.path)):
        zones.rename(item.path, place(item.output_type, item.records))
    if decision.meta is not None:
        zones.write_atomically(place(contract.META, 1),
                               _fastavro_bytes(contract.META, [_meta_record(decision.meta)]))
        lines = decision.monitor.lines if decision.monitor else ()
        monitor = [{"vacation_id": vacation_id, "member_name": line.member_name,
                    "type": line.kind, "record_count": line.record_count,
                    "amount_sum": line.amount_sum} for line in lines]
        zones.write_atomically(place(contract.MONITOR, len(monitor)),
                               _fastavro_bytes(contract.MONITOR, monitor))
    zones.write_atomically(place(contract.AUDIT, 1), _fastavro_bytes(contract.AUDIT, [outcome]))
    record = {"vacation_id": vacation_id, "sha256": context.sha256, "status": outcome["status"],
              "published_at": now(), "summary": outcome, "files": files}
    zones.write_atomically(zone.commit_record_path(vacation_id),
                           json.dumps(record, indent=1).encode("utf-8"))
    _LOG.info("%s published as %s: %d files", vacation_id, outcome["status"], len(files))


def _meta_record(meta: Meta) -> dict:
    return {
        "vacation_id": meta.vacation_id, "sender": meta.sender,
        "business_date": meta.business_date, "slot": meta.slot,
        "produced_at": meta.produced_at, "format_version": meta.format_version,
        "encoding": meta.encoding,
        "members": [{"name": entry.name, "type": entry.kind, "records": entry.records,
                     "bytes": entry.digest.bytes, "sha256": entry.digest.sha256}
                    for entry in meta.members],
    }


@beam.typehints.with_input_types(Decision)
@beam.typehints.with_output_types(dict)
class PublishVacation(beam.PTransform):
    """Carries out the one ``Decision`` of a run; outputs the vacation's summary.

    It decides nothing: it publishes what the decision names, or, told to discard, deletes the
    staging folder and fails the run. Either way the staging folder is gone after it.

    Args:
      zones_root: the root of the zones (local or ``gs://``) the Proxy Producer zone is under.
      context: the vacation's id, business date and sha256, which name its partitions and
        commit record.
      staging_dir: the run's staging folder, where ``WriteStagedAvro`` wrote the files.
    """

    def __init__(self, zones_root: str, context: RunContext, staging_dir: str):
        super().__init__()
        if not zones_root:
            raise ValueError("zones_root is required")
        if not isinstance(context, RunContext):
            raise TypeError(f"context must be a RunContext, not {type(context).__name__}")
        if not staging_dir:
            raise ValueError("staging_dir is required")
        self._zones_root = zones_root
        self._context = context
        self._staging_dir = staging_dir

    def expand(self, decisions: beam.PCollection) -> beam.PCollection:
        return decisions | "PublishOrDiscard" >> beam.ParDo(
            _PublishFn(self._zones_root, self._context, self._staging_dir))

    def display_data(self) -> dict:
        return {"zones_root": DisplayDataItem(self._zones_root, label="Zones root"),
                "staging_dir": DisplayDataItem(self._staging_dir, label="Staging folder"),
                "vacation_id": DisplayDataItem(self._context.vacation_id, label="Vacation")}
