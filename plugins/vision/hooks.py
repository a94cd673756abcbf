"""Registers the vision plugin and its commands through the `sage` hooks (filled in as it lands)."""
