"""mlrec.data."""
