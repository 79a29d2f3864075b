"""The Proxy Producer zone sink: records staged as Avro, then published whole or not at all.

``WriteStagedAvro`` streams validated batches into one Avro file per output type and bundle in
the run's staging folder. ``PublishVacation`` runs once per vacation, after every file is
closed: it decides the outcome, moves what may be published into the partitions, writes META,
MONITOR and AUDIT, and writes the commit record last (see ``io_connectors.zones``).
"""

from __future__ import annotations

import datetime
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
from transforms import contract
from transforms.contract import Status
from transforms.outcome import RunContext, StagedFile, VacationFacts, decide
from transforms.validate import ValidatedBatch

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
    def __init__(self, staging_dir: str, vacation_id: str, codec: str):
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
            self._encoders[key] = AvroBlockEncoder(schemas.definition(output_type), constants)
        return self._encoders[key]


class WriteStagedAvro(beam.PTransform):
    """Writes ``ValidatedBatch``es (records and rejects) as Avro files in a staging folder.

    Returns a PCollection of ``StagedFile``: what ``PublishVacation`` may later publish.
    """

    def __init__(self, staging_dir: str, vacation_id: str, codec: str = "snappy"):
        super().__init__()
        if not staging_dir:
            raise ValueError("staging_dir is required")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, not {codec!r}")
        self._staging_dir = staging_dir
        self._vacation_id = vacation_id
        self._codec = codec

    def expand(self, batches):
        return batches | "WriteAvroFiles" >> beam.ParDo(
            _StageAvroFn(self._staging_dir, self._vacation_id, self._codec))

    def display_data(self) -> dict:
        return {"staging_dir": DisplayDataItem(self._staging_dir, label="Staging folder"),
                "codec": DisplayDataItem(self._codec, label="Avro codec")}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _fastavro_bytes(output_type: str, records: list[dict]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schemas.parsed(output_type), records, codec="null")
    return buffer.getvalue()


class _PublishFn(beam.DoFn):
    def __init__(self, zones_root: str, context: RunContext, staging_dir: str):
        self._zones_root = zones_root
        self._context = context
        self._staging_dir = staging_dir

    def process(self, facts: VacationFacts) -> Iterator[dict]:
        if facts.write_failures:
            # a platform failure, not the vacation's: publish nothing, the run is retried whole
            zones.delete_tree(self._staging_dir)
            failed = sum(failure.failed for failure in facts.write_failures)
            first = facts.write_failures[0]
            raise RuntimeError(f"{failed} rows could not be written to the structured zone "
                               f"(first: {first.table}: {first.error})")
        outcome = decide(facts, self._context, _now())
        publish(zones.ProxyZone(self._zones_root), self._context, outcome, facts)
        zones.delete_tree(self._staging_dir)
        yield outcome


def publish(zone: zones.ProxyZone, context: RunContext, outcome: dict,
            facts: VacationFacts | None = None) -> None:
    """Makes a vacation's outcome visible; a REJECTED vacation shows only REJECT and AUDIT."""
    vacation_id, business_date = context.vacation_id, context.business_date or "unknown"
    accepted = outcome["status"] != Status.REJECTED
    for output_type in contract.OUTPUT_TYPES:  # what an earlier, unfinished attempt left
        zones.delete_tree(zone.partition(output_type, business_date, vacation_id))
    files: list[dict[str, Any]] = []

    def place(output_type: str, records: int) -> str:
        index = sum(1 for item in files if item["type"] == output_type)
        path = zones.join(zone.partition(output_type, business_date, vacation_id),
                          f"part-{index:05d}.avro")
        files.append({"type": output_type, "path": path, "records": records})
        return path

    staged = facts.staged if facts else []
    for item in sorted(staged, key=lambda staged_file: (staged_file.output_type,
                                                        staged_file.path)):
        if accepted or item.output_type == contract.REJECT:
            zones.rename(item.path, place(item.output_type, item.records))
    if accepted and facts is not None and facts.meta is not None:
        zones.write_atomically(place(contract.META, 1),
                               _fastavro_bytes(contract.META, [_meta_record(facts.meta)]))
        monitor = [{"vacation_id": vacation_id, "member_name": line.member_name,
                    "type": line.kind, "record_count": line.record_count,
                    "amount_sum": line.amount_sum} for line in facts.monitor or []]
        zones.write_atomically(place(contract.MONITOR, len(monitor)),
                               _fastavro_bytes(contract.MONITOR, monitor))
    zones.write_atomically(place(contract.AUDIT, 1), _fastavro_bytes(contract.AUDIT, [outcome]))
    record = {"vacation_id": vacation_id, "sha256": context.sha256, "status": outcome["status"],
              "published_at": _now(), "summary": outcome, "files": files}
    zones.write_atomically(zone.commit_record_path(vacation_id),
                           json.dumps(record, indent=1).encode("utf-8"))
    _LOG.info("%s published as %s: %d files", vacation_id, outcome["status"], len(files))


def _meta_record(meta: dict) -> dict:
    return {
        "vacation_id": meta["vacation_id"], "sender": meta["sender"],
        "business_date": meta["business_date"], "slot": meta["slot"],
        "produced_at": meta["produced_at"], "format_version": meta["format_version"],
        "encoding": meta.get("encoding", contract.DEFAULT_ENCODING),
        "members": [{key: entry[key] for key in ("name", "type", "records", "bytes", "sha256")}
                    for entry in meta["members"]],
    }


class PublishVacation(beam.PTransform):
    """Publishes the one ``VacationFacts`` of a run; outputs the vacation's summary."""

    def __init__(self, zones_root: str, context: RunContext, staging_dir: str):
        super().__init__()
        if not zones_root:
            raise ValueError("zones_root is required")
        self._zones_root = zones_root
        self._context = context
        self._staging_dir = staging_dir

    def expand(self, facts):
        return facts | "DecideAndPublish" >> beam.ParDo(
            _PublishFn(self._zones_root, self._context, self._staging_dir))

    def display_data(self) -> dict:
        return {"zones_root": DisplayDataItem(self._zones_root, label="Zones root"),
                "vacation_id": DisplayDataItem(self._context.vacation_id, label="Vacation")}
