"""``python -m pipelines.commands``: the ``cre`` command of this checkout."""

import sys

from pipelines.commands import main

sys.exit(main())
