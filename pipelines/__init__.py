"""The Beam jobs (ingest, deliver, backup), their options and runner arguments, the
bookkeeping they need (ledger, structured zone, migrations, run metrics, recovery) and the
progress bars the commands show on a terminal."""
