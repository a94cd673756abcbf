"""The MCP server through the SDK's in-process client: list, call each tool, progress, cancel, tool errors."""

import time

import anyio
import pytest

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed")
from mcp import Client  # noqa: E402

from orchestrator.tools import build_server  # noqa: E402
from plugins.hrm.plugin import HRMReasoner  # noqa: E402

from .conftest import STEP_S, Sleepy  # noqa: E402


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_tools_are_listed_with_their_json_schemas(catalogue):
    async def go():
        async with Client(build_server(catalogue)) as client:
            return {t.name: t for t in (await client.list_tools()).tools}
    tools = run(go)
    assert set(tools) == set(catalogue.tools)
    sudoku = tools["solve_sudoku"]
    assert sudoku.input_schema["required"] == ["puzzle"]
    assert sudoku.output_schema["properties"]["answer"]["items"]["type"] == "array"
    assert tools["count_down"].input_schema["properties"] == {"start": {"type": "integer"}}


def _text(puzzle):
    return "".join(str(c) if c else "." for row in puzzle for c in row)


def test_each_tool_answers_with_a_structured_result(catalogue):
    sudoku = HRMReasoner.held_out_puzzles("sudoku4", 1)[0]
    maze = HRMReasoner.held_out_puzzles("maze11", 1, seed=9003)[0]

    async def go():
        async with Client(build_server(catalogue)) as client:
            out = {}
            for name, args in [("solve_sudoku", {"puzzle": _text(sudoku)}), ("solve_maze", {"maze": maze}),
                               ("list_plugins", {}), ("count_down", {"start": 2}),
                               ("run_pipeline", {"pipeline": "toy_chain", "budget": 50})]:
                result = await client.call_tool(name, args)
                assert not result.is_error, result.content[0].text
                out[name] = result.structured_content
            return out
    out = run(go)
    assert out["solve_sudoku"]["verified"] and out["solve_sudoku"]["reason"] == "verified"
    assert len(out["solve_maze"]["answer"]) == 11 and "o" in "".join(out["solve_maze"]["answer"])
    assert "hrm" in {p["name"] for p in out["list_plugins"]["plugins"]}
    assert (out["count_down"]["answer"], out["count_down"]["segments"], out["count_down"]["reason"]) == (0.0, 2, "zero")
    pipeline = out["run_pipeline"]
    assert pipeline["status"] == "done" and sum(n["atp_spent"] for n in pipeline["nodes"].values()) <= 50
    assert catalogue.service.store.info(pipeline["session"]).id == pipeline["session"]


def test_a_progress_notification_follows_every_step(catalogue):
    async def go():
        seen = []

        async def progress(value, total, message):
            seen.append((value, total, message))
        async with Client(build_server(catalogue)) as client:
            await client.call_tool("count_down", {"start": 4}, progress_callback=progress)
        return seen
    seen = run(go)
    assert [v for v, _, _ in seen] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [m for _, _, m in seen] == ["step 1: energy 3", "step 2: energy 2", "step 3: energy 1",
                                       "step 4: energy 0", "halted: zero after 4 step(s), energy 0"]
    assert seen[-1][1] == 5.0  # the last report completes the call


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # direct dispatch, and JSON-RPC over memory streams
def test_cancelling_a_call_stops_its_session_and_the_server_still_answers(catalogue, mode):
    async def go():
        async with Client(build_server(catalogue), mode=mode) as client:
            started = anyio.Event()

            async def progress(value, total, message):
                started.set()

            before = Sleepy.steps_taken
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: client.call_tool("count_down", {"start": 1000}, progress_callback=progress))
                await started.wait()
                group.cancel_scope.cancel()
            await anyio.sleep(6 * STEP_S)
            stopped_at = Sleepy.steps_taken
            await anyio.sleep(6 * STEP_S)
            after = await client.call_tool("count_down", {"start": 1})
            return before, stopped_at, Sleepy.steps_taken, after
    before, stopped_at, now, after = run(go)
    assert 0 < stopped_at - before < 20  # stopped after a few of its 1000 steps ...
    assert now == stopped_at + 1  # ... took none since (the one more is the next call's)
    assert not after.is_error and after.structured_content["answer"] == 0.0


@pytest.mark.parametrize("name, args, fragment", [
    ("solve_sudoku", {"puzzle": "123"}, "puzzle: a string must have 16, 36 or 81 cells (4x4, 6x6, 9x9), got 3"),
    ("solve_sudoku", {"puzzle": [[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]}, "puzzle: the hrm plugin refused the "
                                                                             "puzzle: Sudoku has no solution"),
    ("solve_sudoku", {"puzzle": [[0] * 5] * 5}, "Sudoku size 5x5 not supported"),
    ("solve_sudoku", {"grid": "0" * 16}, "unknown argument(s) ['grid']; solve_sudoku takes"),
    ("solve_maze", {}, "missing argument 'maze'"),
    ("run_pipeline", {"pipeline": "../etc/passwd"}, "pipeline must be a name of letters, digits"),
    ("solve_chess", {}, "unknown tool 'solve_chess'"),
])
def test_bad_input_is_a_tool_error_the_model_can_read(catalogue, name, args, fragment):
    async def go():
        async with Client(build_server(catalogue)) as client:
            return await client.call_tool(name, args)
    result = run(go)
    assert result.is_error
    assert fragment in result.content[0].text and "Error executing tool" not in result.content[0].text


def test_protocol_overhead_of_an_in_process_call_is_small(catalogue):
    async def go():
        async with Client(build_server(catalogue)) as client:
            await client.call_tool("list_plugins", {})
            t0 = time.perf_counter()
            for _ in range(20):
                await client.call_tool("list_plugins", {})
            return (time.perf_counter() - t0) / 20
    assert run(go) < 0.05  # bench/tools.py measures the real figure; this catches a pathological regression


def test_concurrent_calls_are_solved_together(catalogue):
    puzzles = HRMReasoner.held_out_puzzles("sudoku4", 8)

    async def go():
        results = [None] * len(puzzles)
        async with Client(build_server(catalogue)) as client:
            async def one(i):
                results[i] = await client.call_tool("solve_sudoku", {"puzzle": puzzles[i]})
            async with anyio.create_task_group() as group:
                for i in range(len(puzzles)):
                    group.start_soon(one, i)
        return results
    results = run(go)
    assert all(not r.is_error and r.structured_content["verified"] for r in results)
    assert len({r.structured_content["session"] for r in results}) == len(puzzles)
    assert catalogue.service.solver.counts["solved"] >= len(puzzles)
