"""HRM: a Hierarchical Reasoning Model as an IRP plugin (Sudoku and mazes, trained on CPU)."""
