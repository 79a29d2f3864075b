"""``cre-worker``: the Python SDK worker a portable runner starts for the jobs, no Docker needed.

Beam's PROCESS environment runs a command with ``--id`` and ``--provision_endpoint``, the
contract of Beam's container boot program. That program also builds a virtualenv under
``/opt/apache`` and pip-installs the staged packages: here the product is already installed
in the interpreter running this module, so only the rest of the contract is kept: ask the
runner for the job's provision info (pipeline options, endpoints), then run Beam's own SDK
harness in this process, which then shares nothing with the driver but the Fn API.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import grpc
from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
from google.protobuf import json_format

from pipelines.log_levels import quiet_libraries


def provision(endpoint: str, worker_id: str) -> beam_provision_api_pb2.ProvisionInfo:
    """What the runner tells this worker: the job's options and where its endpoints are."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        response = stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                         metadata=[("worker_id", worker_id)], timeout=60)
    return response.info


def harness_environment(info: beam_provision_api_pb2.ProvisionInfo,
                        worker_id: str) -> dict[str, str]:
    """The variables Beam's SDK harness reads at start, as the container boot program sets
    them."""
    if info.sibling_worker_ids:
        raise SystemExit("cre-worker: the runner asked for sibling workers "
                         f"{list(info.sibling_worker_ids)}; start one worker per id instead")
    environment = {
        "WORKER_ID": worker_id,
        "SEMI_PERSISTENT_DIRECTORY": tempfile.gettempdir(),
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "CONTROL_API_SERVICE_DESCRIPTOR": str(info.control_endpoint),
        "LOGGING_API_SERVICE_DESCRIPTOR": str(info.logging_endpoint),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        environment["STATUS_API_SERVICE_DESCRIPTOR"] = str(info.status_endpoint)
    for key in ("job_name", "job_id"):
        if key in info.metadata:
            environment[key.upper()] = info.metadata[key]
    return environment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cre-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True, help="The worker id the runner gave.")
    parser.add_argument("--provision_endpoint", required=True, help="host:port")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    worker_id = args.id.strip("'")  # Prism quotes it as a shell would, but runs no shell
    os.environ.update(harness_environment(provision(args.provision_endpoint, worker_id),
                                          worker_id))
    # imported only now: the job's own options, so the harness parses them instead of warning;
    # Beam's gRPC interceptors, which read WORKER_ID when their module loads
    from apache_beam.runners.worker import sdk_worker_main

    import pipelines.options  # noqa: F401

    quiet_libraries()
    sdk_worker_main.main([])
