"""The tool catalogue without a protocol: argument checks, plugin tools, pipelines as sessions."""

import threading
import time

import pytest

from orchestrator.tools import Call, ToolInputError
from plugins.hrm.plugin import HRMReasoner

from .conftest import Sleepy


def test_the_catalogue_holds_builtin_hrm_and_third_party_tools(catalogue):
    assert {"list_plugins", "run_pipeline", "solve_sudoku", "solve_maze", "count_down"} <= set(catalogue.tools)


@pytest.mark.parametrize("arguments, fragment", [
    ([1, 2], "takes a JSON object of arguments, got list"),
    ({"start": 3, "speed": 2}, "unknown argument(s) ['speed']; count_down takes ['start']"),
    ({}, "missing argument 'start'"),
])
def test_arguments_are_checked_by_name(catalogue, arguments, fragment):
    with pytest.raises(ToolInputError) as info:
        catalogue.call("count_down", arguments)
    assert fragment in str(info.value)


def test_arguments_larger_than_the_service_limit_are_refused(catalogue):
    huge = {"toml": "#" * 70_000}
    with pytest.raises(ToolInputError, match=r"the arguments are 7\d{4} bytes of JSON, the limit is 65536"):
        catalogue.call("run_pipeline", huge)
    with pytest.raises(ToolInputError, match="the limit is 65536"):
        catalogue.submit("solve_sudoku", {"puzzle": "0" * 70_000}, Call())


def test_an_unknown_tool_names_the_available_ones(catalogue):
    with pytest.raises(ToolInputError, match="unknown tool 'solve_chess'; available: count_down, explain_solution, list_plugins"):
        catalogue.call("solve_chess", {})


def test_a_plugin_refusing_the_input_is_a_tool_input_error(catalogue):
    with pytest.raises(ToolInputError, match="^start: the sleepy plugin refused the puzzle: start must be >= 0"):
        catalogue.call("count_down", {"start": -1})
    with pytest.raises(ToolInputError, match="^puzzle: the hrm plugin refused the puzzle: Sudoku has no solution"):
        catalogue.call("solve_sudoku", {"puzzle": [[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]})


def test_a_plugin_tool_reports_every_step_and_its_halt(catalogue):
    seen = []
    result = catalogue.call("count_down", {"start": 3}, Call(lambda n, total, msg: seen.append((n, total, msg))))
    assert (result["answer"], result["segments"], result["energy"], result["reason"]) == (0.0, 3, 0.0, "zero")
    assert seen == [(1, None, "step 1: energy 2"), (2, None, "step 2: energy 1"), (3, None, "step 3: energy 0"),
                    (4, 4, "halted: zero after 3 step(s), energy 0")]


def test_the_cancel_token_stops_a_solve_between_steps(catalogue):
    call = Call()
    threading.Timer(0.2, call.cancel.cancel).start()
    before, t0 = Sleepy.steps_taken, time.perf_counter()
    with pytest.raises(ToolInputError, match="cancelled by the caller"):
        catalogue.call("count_down", {"start": 50}, call)
    stopped = Sleepy.steps_taken
    time.sleep(0.3)
    assert 0 < stopped - before < 20 and Sleepy.steps_taken == stopped and time.perf_counter() - t0 < 2


def test_solve_sudoku_answers_a_held_out_puzzle_verified(catalogue):
    puzzle = HRMReasoner.held_out_puzzles("sudoku4", 1)[0]
    text = "".join(str(c) if c else "." for row in puzzle for c in row)
    result = catalogue.call("solve_sudoku", {"puzzle": text})
    assert result["verified"] and result["plugin"] == "hrm"
    assert all(result["answer"][r][c] == v for r, row in enumerate(puzzle) for c, v in enumerate(row) if v)


def test_run_pipeline_is_a_session_that_a_later_call_resumes(catalogue):
    call = Call(lambda n, total, msg: call.cancel.cancel() if n >= 5 else None)
    stopped = catalogue.call("run_pipeline", {"pipeline": "toy_chain", "budget": 300}, call)
    assert stopped["status"] == "cancelled" and 0 < stopped["rounds"]
    finished = catalogue.call("run_pipeline", {"session": stopped["session"]})
    assert finished["status"] == "done" and finished["session"] == stopped["session"]
    assert set(finished["nodes"]) == {"coarse", "fine", "side"}
    fresh = catalogue.call("run_pipeline", {"pipeline": "toy_chain", "budget": 300})
    assert fresh["nodes"] == finished["nodes"]  # resuming loses nothing: the same run as one never stopped
    assert catalogue.service.store.info(fresh["session"]).id == fresh["session"]


@pytest.mark.parametrize("arguments, fragment", [
    ({"pipeline": "nope"}, "pipeline: no pipeline 'nope'; available: ["),
    ({}, "give exactly one of 'pipeline'"),
    ({"toml": "[[["}, "toml: not valid TOML"),
    ({"pipeline": "toy_chain", "budget": -1}, "budget must be a number of ATP"),
    ({"session": "does-not-exist"}, "no run 'does-not-exist'"),
])
def test_run_pipeline_errors_name_the_argument(catalogue, arguments, fragment):
    with pytest.raises(ToolInputError) as info:
        catalogue.call("run_pipeline", arguments)
    assert fragment in str(info.value)


def test_list_plugins_lists_plugins_and_tools(catalogue):
    out = catalogue.call("list_plugins", {})
    assert {"hrm", "toy", "sleepy"} <= {p["name"] for p in out["plugins"]}
    assert "count_down" in {t["name"] for t in out["tools"]} and "toy_chain" in out["pipelines"]
