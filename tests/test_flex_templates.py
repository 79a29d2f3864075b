"""Dataflow Flex Templates: metadata that cannot drift from the pipelines' options, and the
launcher's entry point run as the launcher would."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from helpers import ROOT, cre_environment

from io_connectors.avro_blocks import CODECS
from pipelines import options
from pipelines.commands import local
from pipelines.local import flex_templates
from pipelines.local.generator import generate_vacation


def test_metadata_files_match_the_options():
    """Adding, removing or changing an option without `cre template build` fails here."""
    for pipeline in flex_templates.PIPELINES:
        written = json.loads(flex_templates.metadata_path(pipeline).read_text())
        assert written == flex_templates.metadata(pipeline), "run cre template build"
    parser = argparse.ArgumentParser()
    local.add_parsers(parser.add_subparsers())
    check = parser.parse_args(["template", "build", "--check"])  # what cre template build --check
    assert check.handler(check) == 0  # runs, in this process


def test_every_ingest_option_is_a_parameter():
    parameters = {p["name"]: p for p in flex_templates.metadata("ingest")["parameters"]}
    parser = flex_templates._ingest_parser()
    assert set(parameters) == {action.dest for action in parser._actions}
    assert not parameters["input"]["isOptional"] and not parameters["zones_root"]["isOptional"]
    assert parameters["avro_codec"]["regexes"] == ["^(" + "|".join(CODECS) + ")$"]
    assert parameters["no_deliver"]["regexes"] == ["^(true|false)$"]
    deliver = {p["name"]: p for p in flex_templates.metadata("deliver")["parameters"]}
    assert not deliver["vacation"]["isOptional"] and "cassandra_hosts" in deliver


def test_every_option_class_of_the_project_reaches_the_ingest_template():
    """A new options class left out of the template parsers fails here."""
    parameters = {p["name"] for p in flex_templates.metadata("ingest")["parameters"]}
    classes = [cls for cls in vars(options).values() if isinstance(cls, type)
               and issubclass(cls, PipelineOptions) and cls is not PipelineOptions]
    assert len(classes) >= 3
    for cls in classes:
        defined = PipelineOptions([]).view_as(cls).get_all_options(current_only=True)
        assert set(defined) <= parameters, cls.__name__


def test_run_command_refuses_unknown_parameters():
    with pytest.raises(ValueError, match="no parameter inputt"):
        flex_templates.run_command("ingest", "b", "europe-west1", {"inputt": "x"})


# the launcher under an import hook that refuses what the Dockerfile leaves out of the image
_WITHOUT_SERVICE_AND_LOCAL = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("service", "sender") or name.startswith("pipelines.local"):
            raise ImportError(f"{name} is not in the Dataflow image")
sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.integration
def test_the_launcher_entry_point_runs_the_pipeline(tmp_path):
    """The image's entry point, with neither cre serve (service/, sender/) nor the local servers."""
    archive = generate_vacation(tmp_path, "2026-06-01", 1, 50, 2, seed=90)
    launched = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SERVICE_AND_LOCAL, str(ROOT / "dataflow/main.py"),
         f"--input={archive}", f"--zones_root={tmp_path / 'zones'}", "--max_reject_ratio=0.1",
         "--no_deliver=true"],
        cwd=ROOT, capture_output=True, text=True,
        env={**cre_environment(None), "CRE_PIPELINE": "ingest",
             "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert json.loads(launched.stdout.splitlines()[-1])["status"] == "ACCEPTED"
