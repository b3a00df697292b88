"""mlrec.services.ui."""
