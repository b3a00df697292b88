"""mlrec.services.api."""
