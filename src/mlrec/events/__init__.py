"""mlrec.events."""
