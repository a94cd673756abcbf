"""validate_plugin_class and IRPState: each contract violation is refused with a message naming it."""

import pytest

from plugins.toy import QuadraticDescent
from sage_core import IRPPlugin, IRPState, PluginContractError, StateCodecError, validate_plugin_class


def make(**attrs):
    return type("P", (QuadraticDescent,), attrs)


@pytest.mark.parametrize("cls,fragment", [
    (make(name="not valid"), "identifier-like"),
    (make(name=None), "identifier-like"),
    (make(version=1), "'version' must be a str"),
    (make(api_version=True), "must be an int"),
    (make(api_version=2), "supports 1..1"),
    (make(api_version=0), "written for API 1"),
    (make(step=42), "not callable"),
    (make(energy=lambda self: 0.0), "must accept 1 positional"),
    (make(init_state=lambda self, x0: None), "must accept 2 positional"),
    (make(import_state=lambda self, a, b, c: None), "must accept 2 positional"),
    (make(init_state_batch=lambda self, x0s: None), "init_state_batch.*must accept 2 positional"),
    (make(project_batch=lambda self: None), "project_batch.*must accept 1 positional"),
    (type("Q", (IRPPlugin,), {"name": "q"}), "not implemented"),
    (type("R", (), {"name": "r", "version": "1", "api_version": 1}), "missing required method init_state"),
    ("not a class", "must be a class"),
])
def test_contract_violations_are_named(cls, fragment):
    with pytest.raises(PluginContractError, match=fragment):
        validate_plugin_class(cls)


def test_valid_variants_pass():
    validate_plugin_class(QuadraticDescent)
    validate_plugin_class(make(step=lambda self, state, *rest: state))
    validate_plugin_class(make(step=lambda self, state, budget=None, *, extra=1: state))


def test_state_is_frozen_and_step_non_negative():
    state = IRPState(x=1)
    with pytest.raises(AttributeError):
        state.x = 2
    with pytest.raises(ValueError, match="step must be >= 0"):
        IRPState(x=1, step=-1)
    assert state.evolve(step=2).step == 2 and state.step == 0


def test_import_refuses_foreign_export_format():
    plugin = QuadraticDescent()
    tensors, meta = plugin.export_state(plugin.init_state(None, {}))
    with pytest.raises(StateCodecError, match="format"):
        plugin.import_state(tensors, {**meta, "format": 99})
    with pytest.raises(StateCodecError, match="'x' and 'carry'"):
        plugin.import_state(tensors, {**meta, "tree": {"d": {}}})


@pytest.mark.parametrize("attrs_, needle", [
    ({"input_kind": 3}, "input_kind must be a kind name"),
    ({"input_kind": ()}, "input_kind must be a kind name"),
    ({"output_kind": ("a", "b")}, "output_kind must be a kind name"),
    ({"context_kinds": {"hint": 1}}, "context_kinds must map"),
    ({"receive": lambda self, state: state}, "receive"),
])
def test_declared_kinds_and_receive_are_checked(attrs_, needle):
    bad = type("Bad", (QuadraticDescent,), {"name": "bad", **attrs_})
    with pytest.raises(PluginContractError, match=needle):
        validate_plugin_class(bad)
    good = type("Good", (QuadraticDescent,), {"name": "good", "input_kind": ("image", "sudoku_grid"),
                                               "context_kinds": {"conflicts": "cell_conflicts"}})
    validate_plugin_class(good)
