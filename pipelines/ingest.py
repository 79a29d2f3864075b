"""The inbound pipeline: one vacation archive from landing to the Proxy Producer zone."""

from __future__ import annotations

import datetime
import logging
import posixpath
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors import zones
from io_connectors.landing import land
from io_connectors.proxy_zone import PublishVacation, WriteStagedAvro
from pipelines.options import IngestOptions
from transforms import contract
from transforms.contract import Fatal, Status, VacationError, VacationName
from transforms.outcome import CollectFacts, RunContext, summary
from transforms.read_vacation import FACTS, ReadVacation, ValidateRecords

_LOG = logging.getLogger(__name__)


class IngestVacation(beam.PTransform):
    """A landed archive in, its summary out; the zones written on the way."""

    def __init__(self, archive_path: str, name: VacationName, context: RunContext,
                 options: IngestOptions):
        super().__init__()
        self._archive_path = archive_path
        self._name = name
        self._context = context
        self._zones_root = options.zones_root
        self._limits = options.limits()
        self._codec = options.avro_codec
        self._staging = zones.ProxyZone(options.zones_root).staging(
            name.vacation_id, uuid.uuid4().hex)

    def expand(self, pbegin):
        read = (pbegin
                | "LandedArchive" >> beam.Create([self._archive_path])
                | "ReadVacation" >> ReadVacation(self._name, self._limits))
        facts = [read[FACTS]]
        # one branch per type, no Flatten of records: each branch stays one fused stream
        for kind in contract.DATA_TYPES:
            label = kind.capitalize()
            validated = read[kind] | f"Validate{label}" >> ValidateRecords()
            facts.append(validated | f"Stage{label}" >> WriteStagedAvro(
                self._staging, self._name.vacation_id, self._codec))
            facts.append(validated | f"Count{label}" >> beam.Map(lambda batch: batch.counts))
        return (facts
                | "AllFacts" >> beam.Flatten()
                | "CollectFacts" >> beam.CombineGlobally(CollectFacts())
                | "Publish" >> PublishVacation(self._zones_root, self._context, self._staging))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def run_ingest(argv: list[str]) -> dict:
    """Lands, checks and publishes one vacation; returns its summary (spec 2.4)."""
    pipeline_options = PipelineOptions(argv)
    options = pipeline_options.view_as(IngestOptions)
    file_name = posixpath.basename(options.input)
    name = VacationName.parse(file_name)
    if name is None:
        context = RunContext(file_name.removesuffix(".tar.bz2"), None, None, "", _now())
        error = VacationError(Fatal.BAD_NAME, f"{file_name!r} is not BAF_<YYYYMMDD>_<NN>.tar.bz2")
        _LOG.error("%s", error)
        return summary(context, Status.REJECTED, _now(), [error])
    landed = land(options.input, options.zones_root, name.business_date, name.vacation_id)
    _LOG.info("%s landed at %s (sha256 %s, %d bytes)", name.vacation_id, landed.path,
              landed.sha256, landed.size)
    context = RunContext(name.vacation_id, name.business_date, name.slot, landed.sha256,
                         landed.received_at, options.max_reject_ratio)
    zone = zones.ProxyZone(options.zones_root)
    prior = zone.commit_record(name.vacation_id)
    if prior is not None and prior["sha256"] == landed.sha256:
        _LOG.info("%s: this archive was already ingested (%s)", name.vacation_id, prior["status"])
        return {**prior["summary"], "status": Status.DUPLICATE, "errors": [],
                "received_at": landed.received_at, "processed_at": _now()}
    if prior is not None and prior["status"] != Status.REJECTED:
        error = VacationError(
            Fatal.VACATION_ID_REUSED,
            f"{name.vacation_id} was already accepted with sha256 {prior['sha256']}; "
            "this different content is kept in landing but not ingested")
        _LOG.error("%s", error)
        return summary(context, Status.REJECTED, _now(), [error])
    with beam.Pipeline(options=pipeline_options) as pipeline:
        _ = pipeline | "Ingest" >> IngestVacation(landed.path, name, context, options)
    record = zone.commit_record(name.vacation_id)
    if record is None or record["sha256"] != landed.sha256:
        raise RuntimeError(f"{name.vacation_id}: the pipeline ended without publishing")
    return record["summary"]
