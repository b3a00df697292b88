"""mlrec.services."""
