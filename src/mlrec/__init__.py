"""mlrec: ML recommendation platform."""
