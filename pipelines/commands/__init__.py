"""The ``cre`` command line: argparse and printing only, one module per command group (run,
zone, backup, recover, collect, local); what they share is in ``common``; ``cli`` assembles
them. ``main`` is the entry point (``cre``, ``python -m pipelines.commands``)."""

import gc


def main() -> int:
    """Runs one ``cre`` command line.

    Importing Beam, pyarrow and the pipeline makes about a million objects that live as long as
    the process, and the cyclic garbage collector would walk them again and again while they
    are made and after: a quarter of a short ingest's time. So the collector is off while the
    command line is imported, then freezes what the imports made (never walked again) and is
    back on for the command itself.
    """
    gc.disable()
    try:
        from pipelines.commands import cli
    finally:
        gc.freeze()
        gc.enable()
    return cli.main()
