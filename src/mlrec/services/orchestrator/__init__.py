"""mlrec.services.orchestrator."""
