"""pluggy hooks of the persistence package (commands and registrations)."""
