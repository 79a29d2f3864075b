"""OpenLineage events checked against the spec's JSON Schema (2-0-2) and its facets' schemas,
as ``make setup`` puts them in var/openlineage (the Makefile says where they come from)."""

from __future__ import annotations

import functools
import json
import re

import jsonschema
from referencing import Registry, Resource

from helpers.cre import ROOT

SPEC = ROOT / "var" / "openlineage"
_FACET_URL = re.compile(r"/facets/[0-9-]+/(?P<file>\w+\.json)#/\$defs/(?P<name>\w+)$")


@functools.cache
def _registry() -> tuple[Registry, str]:
    documents = [json.loads(path.read_text()) for path in
                 (SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json")))]
    registry = Registry().with_resources(
        (document["$id"], Resource.from_contents(document)) for document in documents)
    return registry, documents[0]["$id"]


def _validator(reference: str) -> jsonschema.Draft202012Validator:
    registry, _ = _registry()
    return jsonschema.Draft202012Validator({"$ref": reference}, registry=registry)


def _facets(event: dict) -> list[dict]:
    """Every facet of the event: the run's, the job's, each data set's."""
    holders = [event["run"], event["job"]]
    for data_set in (*event.get("inputs", ()), *event.get("outputs", ())):
        holders += [data_set, {"facets": data_set.get("inputFacets", {})},
                    {"facets": data_set.get("outputFacets", {})}]
    return [facet for holder in holders for facet in (holder.get("facets") or {}).values()]


# facets the client itself adds, whose schemas no registry serves: the core schema checks them
# (every facet is a BaseFacet there), not their own
CLIENT_FACETS = frozenset({"TagsRunFacet"})


def validate(event: dict) -> None:
    """Raises ``jsonschema.ValidationError`` unless the event is a RunEvent of the spec and
    each of its facets follows its own schema (the version of var/openlineage: the client may
    name a later minor version of the same facet); fails on a facet of unknown schema other
    than ``CLIENT_FACETS``."""
    _, core = _registry()
    _validator(f"{core}#/$defs/RunEvent").validate(event)
    for facet in _facets(event):
        found = _FACET_URL.search(facet["_schemaURL"])
        assert found, f"a facet of no known schema: {facet['_schemaURL']}"
        path = SPEC / "facets" / found["file"]
        if found["name"] in CLIENT_FACETS and not path.exists():
            continue
        schema = json.loads(path.read_text())
        _validator(f"{schema['$id']}#/$defs/{found['name']}").validate(facet)
