"""orchestrator: see the package docs."""
