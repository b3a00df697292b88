"""mlrec.features."""
