"""Toy IRP plugins: gradient descent on a quadratic (``toy``) and a batched torch regression
(``toy_batch``).

Registered through the ``sage`` entry point ``toy = "plugins.toy"``; used by the tests, the
conformance kit's own tests, benchmarks and the toy pipeline demo.
"""

from .batched import BatchedTanhRegression
from .hooks import sage_register_plugins
from .plugin import QuadraticDescent

__all__ = ["BatchedTanhRegression", "QuadraticDescent", "sage_register_plugins"]
