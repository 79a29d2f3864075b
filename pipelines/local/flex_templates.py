"""Dataflow Flex Templates: their metadata generated from the options the pipelines parse.

`dataflow/<pipeline>.metadata.json` is written by ``cre template build`` and checked by the
tests against what this module generates, so a template's parameters cannot drift from the
pipeline's own options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.options import (
    CONNECTION,
    DELIVER,
    INGEST_CONNECTION,
    SINK,
    IngestOptions,
    MonitoringOptions,
    flag,
    flag_parser,
)

DATAFLOW = Path(__file__).resolve().parents[2] / "dataflow"
_REGEX = {int: r"^[0-9]+$", float: r"^[0-9]+(\.[0-9]+)?$", flag: "^(true|false)$"}


def _ingest_parser() -> argparse.ArgumentParser:
    return flag_parser(IngestOptions.FLAGS, INGEST_CONNECTION, SINK, MonitoringOptions.FLAGS)


def _deliver_parser() -> argparse.ArgumentParser:
    return flag_parser(DELIVER, CONNECTION, MonitoringOptions.FLAGS)


PIPELINES = {
    "ingest": ("CRE Integration - ingest a vacation",
               "Lands an Arkea vacation archive, validates every record, publishes the Proxy "
               "Producer zone and the structured zone, then delivers the Arkea ABS package.",
               _ingest_parser, IngestOptions.REQUIRED),
    "deliver": ("CRE Integration - deliver a vacation's Arkea ABS package",
                "Builds a vacation's pivot package from the structured zone and delivers it.",
                _deliver_parser, ()),
}


def _parameter(action: argparse.Action, required: tuple[str, ...]) -> dict:
    parameter = {"name": action.dest,
                 "label": action.dest.replace("_", " ").capitalize(),
                 "helpText": action.help or action.dest,
                 "isOptional": not (action.required or action.dest in required)}
    if action.choices:
        parameter["regexes"] = [f"^({'|'.join(map(str, action.choices))})$"]
    elif action.type in _REGEX:
        parameter["regexes"] = [_REGEX[action.type]]
    return parameter


def metadata(pipeline: str) -> dict:
    name, description, parser, required = PIPELINES[pipeline]
    parameters = [_parameter(action, required) for action in parser()._actions
                  if action.dest != "help"]
    return {"name": name, "description": description, "parameters": parameters}


def metadata_path(pipeline: str) -> Path:
    return DATAFLOW / f"{pipeline}.metadata.json"


def render(pipeline: str) -> str:
    return json.dumps(metadata(pipeline), indent=1) + "\n"


def build_commands(pipeline: str, bucket: str, image: str) -> list[str]:
    return [f"docker build -f dataflow/Dockerfile --build-arg PIPELINE={pipeline} -t {image} .",
            f"docker push {image}",
            f"gcloud dataflow flex-template build gs://{bucket}/templates/cre-{pipeline}.json "
            f"--image {image} --sdk-language PYTHON "
            f"--metadata-file dataflow/{pipeline}.metadata.json"]


def run_command(pipeline: str, bucket: str, region: str, parameters: dict[str, str]) -> str:
    known = {parameter["name"] for parameter in metadata(pipeline)["parameters"]}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ValueError(f"{pipeline} has no parameter {', '.join(unknown)}")
    rendered = ",".join(f"{key}={value}" for key, value in sorted(parameters.items()))
    return (f"gcloud dataflow flex-template run cre-{pipeline}-$(date +%Y%m%d%H%M%S) "
            f"--template-file-gcs-location gs://{bucket}/templates/cre-{pipeline}.json "
            f"--region {region} --parameters {rendered}")
