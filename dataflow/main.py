"""The Flex Template launcher's entry point: the pipeline named by ``CRE_PIPELINE`` (set in the
image), with the template's parameters as its options."""

import os
import sys

from pipelines.commands.run import main

if __name__ == "__main__":
    sys.exit(main([os.environ.get("CRE_PIPELINE", "ingest"), *sys.argv[1:]]))
