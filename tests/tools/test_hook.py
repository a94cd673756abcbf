"""The sage_register_tools hook: ToolSpec validation, in-process registration, the HRM's tools."""

import types

import pytest
from hypothesis import given, strategies as st

from sage_core import PluginContractError, Registry, ToolSpec, hookimpl
from plugins.hrm.tools import prepare_maze, prepare_sudoku, sudoku_grid

SCHEMA = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}


def spec(**overrides):
    fields = dict(name="halve", description="Halve a number.", plugin="toy", input_schema=SCHEMA,
                  prepare=lambda args: (args["x"], {}))
    return ToolSpec(**{**fields, **overrides})


def tools_module(*registered):
    module = types.ModuleType("sagetest_tools")

    @hookimpl
    def sage_register_tools(register):
        for obj in registered:
            register(obj)

    module.sage_register_tools = sage_register_tools
    return module


def test_a_registered_tool_spec_is_collected_and_removed():
    registry = Registry(strict=False, disabled=())
    assert registry.add(tools_module(spec()), name="sagetest_tools")
    item = registry.items("tool")["halve"]
    assert item.obj.plugin == "toy" and item.source == "sagetest_tools"
    assert registry.hooks_of("sagetest_tools") == ["sage_register_tools"]
    registry.remove("sagetest_tools")
    assert "halve" not in registry.items("tool")


@pytest.mark.parametrize("bad, fragment", [
    ("not a spec", "takes a sage_core.ToolSpec"),
])
def test_a_non_spec_registration_skips_the_module(bad, fragment, capsys):
    registry = Registry(strict=False, disabled=())
    assert not registry.add(tools_module(spec(name="fine"), bad), name="sagetest_tools")
    assert fragment in registry.failures[0].error
    assert "fine" not in registry.items("tool")  # nothing of a failed module stays registered


def test_duplicate_tool_names_are_refused(capsys):
    registry = Registry(strict=False, disabled=())
    assert registry.add(tools_module(spec()), name="first")
    assert not registry.add(tools_module(spec()), name="second")
    assert "tool name 'halve' is already registered by 'first'" in registry.failures[0].error


@pytest.mark.parametrize("overrides, fragment", [
    ({"name": "has space"}, "must match"),
    ({"name": "x" * 65}, "must match"),
    ({"input_schema": {"type": "array"}}, "JSON schema of type 'object'"),
    ({"answer_schema": []}, "answer_schema"),
    ({"prepare": "nope"}, "prepare must be callable"),
])
def test_tool_spec_validates_its_fields(overrides, fragment):
    with pytest.raises((PluginContractError, TypeError), match=fragment):
        spec(**overrides)


def test_the_hrm_declares_its_tools_through_the_entry_point():
    registry = Registry(strict=True, disabled=())
    registry.load_entrypoints()
    tools = registry.items("tool")
    assert {"solve_sudoku", "solve_maze"} <= set(tools)
    assert tools["solve_sudoku"].source == "hrm" and tools["solve_sudoku"].obj.plugin == "hrm"


@given(n=st.sampled_from([4, 6, 9]), data=st.data())
def test_sudoku_strings_parse_to_the_grid_they_spell(n, data):
    grid = data.draw(st.lists(st.lists(st.integers(0, n), min_size=n, max_size=n), min_size=n, max_size=n))
    blank = data.draw(st.sampled_from("0."))
    sep = data.draw(st.sampled_from(["", " ", "\n"]))
    text = sep.join("".join(blank if c == 0 else str(c) for c in row) for row in grid)
    assert sudoku_grid(text) == grid
    assert sudoku_grid(grid) == grid


@pytest.mark.parametrize("value, fragment", [
    ("123", "16, 36 or 81 cells"),
    ("12x4" * 4, "found 'x'"),
    ({"a": 1}, "rows of integers or a string"),
    ([[1, 2.5], [0, 0]], "must be an integer"),
    ([[True, 0], [0, 0]], "must be an integer"),
    ([[0] * 10] * 10, "at most 9 rows"),
])
def test_bad_sudoku_arguments_name_the_argument(value, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        prepare_sudoku({"puzzle": value})
    assert str(info.value).startswith("puzzle: ")


@pytest.mark.parametrize("arguments, fragment", [
    ({"puzzle": "0" * 16, "mode": "fast"}, "mode: must be 'irp' or 'bare'"),
    ({"puzzle": "0" * 16, "max_steps": 0}, "max_steps: must be an integer in 1..64"),
    ({"puzzle": "0" * 16, "max_steps": True}, "max_steps: must be an integer"),
    ({"puzzle": "0" * 16, "seed": -1}, "seed: must be an integer"),
])
def test_bad_run_options_name_the_option(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        prepare_sudoku(arguments)


def test_maze_arguments_are_checked():
    with pytest.raises(ValueError, match="maze: expected a list of strings"):
        prepare_maze({"maze": "#####"})
    rows = ["#" * 11] * 11
    assert prepare_maze({"maze": rows, "max_steps": 5}) == (rows, {"mode": "irp", "max_steps": 5})
