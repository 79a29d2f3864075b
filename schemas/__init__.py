"""The Avro schemas of the six Proxy Producer output types, one ``.avsc`` per type."""

import functools
import json
from pathlib import Path

import fastavro

_HERE = Path(__file__).parent


@functools.cache
def definition(output_type: str) -> dict:
    """The schema as written in its ``.avsc`` (CRE, GESPARAM, META, MONITOR, REJECT, AUDIT)."""
    with open(_HERE / f"{output_type.lower()}.avsc", encoding="utf-8") as handle:
        return json.load(handle)


@functools.cache
def parsed(output_type: str) -> dict:
    """The schema parsed by fastavro, for the small types it writes and for readers."""
    return fastavro.parse_schema(definition(output_type))
