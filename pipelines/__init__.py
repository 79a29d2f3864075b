"""The Beam jobs (ingest, deliver, backup), their options and runner arguments, and the
bookkeeping they need (ledger, structured zone, migrations, run metrics, recovery)."""
