"""The sender's side of the collection service: ``cre fetchdata``, run at Arkea, not here."""
