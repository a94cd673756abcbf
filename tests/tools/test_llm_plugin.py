"""The `llm` plugin: sage's tools registered through register_tools, one call replayed by llm-echo offline."""

import json

import pytest

llm = pytest.importorskip("llm", reason="the llm extra is not installed")
pytest.importorskip("llm_echo", reason="llm-echo (test extra) is not installed")


@pytest.fixture(autouse=True)
def llm_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))


def test_the_entry_point_registers_the_same_tools_as_mcp():
    tools = llm.get_tools()
    for name in ("solve_sudoku", "solve_maze", "run_pipeline", "list_plugins"):
        assert tools[name].plugin == "sage"
    assert tools["solve_sudoku"].input_schema["required"] == ["puzzle"]


def replay(calls):
    """Run a chain with llm-echo, which calls the tools named in the prompt and echoes their results."""
    model = llm.get_model("echo")
    tools = llm.get_tools()
    chain = model.chain(json.dumps({"tool_calls": calls}), tools=[tools[c["name"]] for c in calls])
    *_, last = chain.responses()  # the first asks for the tool calls, the last sees their results
    return json.loads(last.text())["tool_results"]


def test_one_tool_call_executes_through_llm_echo():
    (result,) = replay([{"name": "solve_sudoku", "arguments": {"puzzle": "4300000000212030"}}])
    answer = json.loads(result["output"])
    assert answer["verified"] and answer["answer"] == [[4, 3, 1, 2], [1, 2, 4, 3], [3, 4, 2, 1], [2, 1, 3, 4]]


def test_bad_arguments_reach_the_model_as_the_tool_error():
    (result,) = replay([{"name": "solve_sudoku", "arguments": {"puzzle": "43"}}])
    assert result["output"] == "Error: puzzle: a string must have 16, 36 or 81 cells (4x4, 6x6, 9x9), got 2"
