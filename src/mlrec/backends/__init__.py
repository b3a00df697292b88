"""mlrec.backends."""
