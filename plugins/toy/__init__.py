"""Toy IRP plugin: gradient descent on a random positive-definite quadratic.

Registered through the ``sage`` entry point ``toy = "plugins.toy"``; used by the tests, the
conformance kit's own tests, benchmarks and the fallback demo.
"""

from .plugin import QuadraticDescent
from .hooks import sage_register_plugins

__all__ = ["QuadraticDescent", "sage_register_plugins"]
