"""Conformance kit for IRP plugin authors, in the spirit of scikit-learn's ``check_estimator``.

``check_plugin(MyPlugin)`` runs every check and raises :class:`ConformanceError` naming the
first failed check and the plugin; ``parametrize_with_checks([MyPlugin])`` turns each check
into its own pytest test. A plugin supplies an example input through a ``example()``
classmethod returning ``(x0, ctx)``, or the caller passes ``x0``/``ctx``.
"""

from .checks import CHECKS, CheckResult, ConformanceError, ConformanceReport, check_plugin, parametrize_with_checks
from .compare import assert_trees_equal, trees_equal

__all__ = [
    "CHECKS", "CheckResult", "ConformanceError", "ConformanceReport", "assert_trees_equal", "check_plugin",
    "parametrize_with_checks", "trees_equal",
]
