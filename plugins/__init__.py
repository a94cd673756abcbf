"""Built-in IRP plugins. Each registers through the ``sage`` entry-point group like any third party."""
