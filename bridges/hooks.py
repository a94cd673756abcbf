"""pluggy hooks of the bridges package (commands and registrations)."""
