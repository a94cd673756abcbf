"""Built-in IRP plugin `language` (registers through the `sage` entry-point group)."""
