"""Built-in IRP plugin `world` (registers through the `sage` entry-point group)."""
