"""Built-in IRP plugin `language`: mask-predict text that explains a solved puzzle, checked claim
by claim (energy = false claims + a confidence tie-breaker)."""

from .plugin import LanguageExplainer, parse_input

__all__ = ["LanguageExplainer", "parse_input"]
