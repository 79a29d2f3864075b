"""The contract as code: the archive reader, the record rules, the facts a run learns and the
decision on them. They read only the landed archive and write nothing: writing is io_connectors."""
