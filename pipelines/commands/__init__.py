"""The ``cre`` command line: argparse and printing only, one module per command group (run,
zone, backup, recover, collect, local); what they share is in ``common``."""
