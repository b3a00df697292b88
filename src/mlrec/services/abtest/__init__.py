"""mlrec.services.abtest."""
