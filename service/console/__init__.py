"""The operations console of ``cre serve`` (``/console``): what belongs here is what an operator
sees and does in a browser, the operator accounts and their sessions, the pages (a day's six
slots, a vacation's story, the trends), their charts and the actions the ``operator`` role may
take. It reads the ledger, the zones and the trails through their owning modules and acts only
by running ``cre`` commands, so a console action is the command an operator would type."""
