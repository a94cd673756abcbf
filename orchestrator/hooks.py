"""pluggy hooks of the orchestrator package (commands and registrations)."""
