"""mlrec.experiments."""
