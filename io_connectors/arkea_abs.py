"""The Arkea ABS sink: pivot packages delivered whole or not at all (spec 4).

``outbound/arkea_abs/<business date>/MMG_ABS_<YYYYMMDD>_<NN>.tar.bz2`` under an outbound root,
local or ``gs://``. Locally the archive is written under a temporary name and renamed; on an
object store the object is written, then ``<archive>.done``: a package counts as delivered only
once its marker exists, and ABS reads only those. Staging and committing are separate steps so
that a crash between them leaves nothing visible, and the next delivery completes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.display import DisplayDataItem

from io_connectors import zones
from transforms import pivot_package
from transforms.pivot_package import Delivery

__all__ = ["DONE", "OUTBOUND", "Delivery", "Package", "WriteArkeaPackage", "clear_partials",
           "commit", "delivered", "package_path", "stage"]

_LOG = logging.getLogger(__name__)
OUTBOUND = "outbound/arkea_abs"
DONE = ".done"
_PARTIAL = ".partial-"


@dataclasses.dataclass(frozen=True)
class Package:
    """A vacation's package members, before checking and archiving."""

    vacation_id: str
    business_date: str
    members: dict[str, bytes]


def package_path(root: str, business_date: str, vacation_id: str) -> str:
    return zones.join(root, OUTBOUND, business_date, pivot_package.package_name(vacation_id))


def _on_object_store(path: str) -> bool:
    return "://" in path


def delivered(path: str) -> bool:
    """Whether ABS may read the package: the marker on object stores, the file locally."""
    return FileSystems.exists(path + DONE if _on_object_store(path) else path)


def stage(path: str, data: bytes) -> str:
    """Writes the bytes where ABS does not look yet; returns what ``commit`` publishes."""
    staged = path if _on_object_store(path) else f"{path}{_PARTIAL}{uuid.uuid4().hex}"
    zones.ensure_parent(staged)
    with FileSystems.create(staged, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.write(data)
    return staged


def commit(staged: str, path: str) -> None:
    if _on_object_store(path):
        with FileSystems.create(path + DONE) as handle:
            handle.write(b"")
    else:
        zones.rename(staged, path)


def clear_partials(path: str) -> None:
    """What a crashed delivery of this package left behind."""
    if _on_object_store(path):
        return  # the object itself is rewritten, its marker only after it
    leftovers = [item.path for result in FileSystems.match([f"{path}{_PARTIAL}*"])
                 for item in result.metadata_list]
    if leftovers:
        FileSystems.delete(leftovers)


class _DeliverFn(beam.DoFn):
    def __init__(self, root: str):
        self._root = root
        self._delivered = beam.metrics.Metrics.counter(self.__class__, "packages_delivered")

    def process(self, package: Package) -> Iterator[Delivery]:
        pivot_package.check(package.members)  # never deliver a file that breaks the contract
        data = pivot_package.archive(package.members)
        path = package_path(self._root, package.business_date, package.vacation_id)
        clear_partials(path)
        commit(stage(path, data), path)
        self._delivered.inc()
        _LOG.info("delivered %s (%d bytes)", path, len(data))
        yield Delivery(package.vacation_id, path, hashlib.sha256(data).hexdigest(), len(data))


@beam.typehints.with_input_types(Package)
@beam.typehints.with_output_types(Delivery)
class WriteArkeaPackage(beam.PTransform):
    """Checks, archives and delivers ``Package``s; outputs one ``Delivery`` per package.

    A package that breaks the contract (``pivot_package.check``) fails the run: nothing of it
    is delivered.

    Args:
      outbound_root: the root, local or ``gs://``, of ``outbound/arkea_abs/`` where ABS reads.
    """

    def __init__(self, outbound_root: str):
        super().__init__()
        if not isinstance(outbound_root, str):
            raise TypeError(f"outbound_root must be a str, not {type(outbound_root).__name__}")
        if not outbound_root:
            raise ValueError("outbound_root is required")
        self._root = outbound_root

    def expand(self, packages: beam.PCollection) -> beam.PCollection:
        return packages | "CheckArchiveDeliver" >> beam.ParDo(_DeliverFn(self._root))

    def display_data(self) -> dict:
        return {"outbound_root": DisplayDataItem(self._root, label="Outbound root")}
