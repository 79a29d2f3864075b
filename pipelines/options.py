"""Every option of the pipelines, defined once: the command line, Beam and the Flex Template
metadata all read these definitions."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from io_connectors.avro_blocks import CODECS
from transforms import contract

_LIMITS = contract.Limits()


class IngestOptions(PipelineOptions):
    """Options of ``cre ingest``: one vacation archive to the zones."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--input", required=True,
                            help="The vacation archive BAF_<YYYYMMDD>_<NN>.tar.bz2, local or gs://.")
        parser.add_argument("--zones-root", "--zones_root", dest="zones_root", required=True,
                            help="Root of the zones (landing/, proxy_producer/), local or gs://.")
        parser.add_argument("--max-reject-ratio", "--max_reject_ratio", dest="max_reject_ratio",
                            type=float, default=contract.DEFAULT_MAX_REJECT_RATIO,
                            help="Rejected/records above which the vacation is REJECTED.")
        parser.add_argument("--max-members", "--max_members", dest="max_members", type=int,
                            default=_LIMITS.max_members, help="Most members in an archive.")
        parser.add_argument("--max-uncompressed-bytes", "--max_uncompressed_bytes",
                            dest="max_uncompressed_bytes", type=int,
                            default=_LIMITS.max_uncompressed_bytes,
                            help="Most uncompressed bytes in an archive.")
        parser.add_argument("--max-ratio", "--max_ratio", dest="max_ratio", type=float,
                            default=_LIMITS.max_ratio,
                            help="Highest compression ratio (uncompressed/compressed).")
        parser.add_argument("--avro-codec", "--avro_codec", dest="avro_codec", default="snappy",
                            choices=CODECS, help="Codec of the Proxy Producer Avro files.")

    def limits(self) -> contract.Limits:
        return contract.Limits(self.max_members, self.max_uncompressed_bytes, self.max_ratio)
