"""Built-in IRP plugin `vision` (registers through the `sage` entry-point group)."""
