"""read_puzzle_image (vision) and explain_solution (language) through the MCP server: listed with
their schemas, rendered pictures read back to their grids, solutions explained with every claim
true (checked again here by the claim checker), bad input as tool errors that name the problem."""

import base64
import io

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("mcp", reason="the mcp extra is not installed")
Image = pytest.importorskip("PIL.Image", reason="the viz extra (Pillow) is not installed")
from mcp import Client  # noqa: E402

from orchestrator.tools import build_server  # noqa: E402
from plugins.language import checkpoint as language_checkpoint  # noqa: E402
from plugins.puzzles import maze, render, sudoku  # noqa: E402
from plugins.puzzles.claims import check_explanation  # noqa: E402
from plugins.puzzles.explain import path_cells  # noqa: E402
from plugins.vision.tools import decode_image  # noqa: E402

SHIPPED = (language_checkpoint.CHECKPOINTS / f"{language_checkpoint.DEFAULT}.safetensors").exists()


def b64(image: np.ndarray, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def call(catalogue, calls):
    """Each (tool, arguments) of ``calls`` through the in-process MCP client: (is_error, structured, text)."""
    async def go():
        async with Client(build_server(catalogue)) as client:
            out = []
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                out.append((result.is_error, result.structured_content, result.content[0].text))
            return out
    return anyio.run(go)


def test_both_tools_are_listed_with_their_schemas(catalogue):
    async def go():
        async with Client(build_server(catalogue)) as client:
            return {t.name: t for t in (await client.list_tools()).tools}
    tools = anyio.run(go)
    read, explain = tools["read_puzzle_image"], tools["explain_solution"]
    assert read.input_schema["required"] == ["image"] and read.input_schema["additionalProperties"] is False
    assert read.input_schema["properties"]["kind"]["enum"] == ["maze", "sudoku"]
    assert {s["items"]["type"] for s in read.output_schema["properties"]["answer"]["anyOf"]} == {"array", "string"}
    assert explain.input_schema["required"] == ["puzzle", "solution"]
    assert explain.input_schema["properties"]["style"]["enum"] == ["steps", "summary"]
    assert explain.output_schema["properties"]["answer"]["type"] == "string"
    assert explain.output_schema["properties"]["claims"]["items"]["properties"]["true"] == {"type": "boolean"}


def test_rendered_pictures_are_read_back_to_their_grids(catalogue):
    rng = np.random.default_rng(7)
    grid6 = sudoku.make_puzzle(6, rng)[0]
    grid4 = sudoku.make_puzzle(4, rng)[0]
    walls, labels = maze.make_puzzle(11, rng)
    lines = maze.render(walls)
    pictures = [render.render(g, render.Style(), rng).image for g in (grid6, grid4, lines)]
    results = call(catalogue, [("read_puzzle_image", {"image": b64(pictures[0])}),
                               ("read_puzzle_image", {"image": "data:image/jpeg;base64," + b64(pictures[1], "JPEG"),
                                                      "kind": "sudoku", "size": 4}),
                               ("read_puzzle_image", {"image": b64(pictures[2])})])
    for (error, out, text), expected in zip(results, (grid6.tolist(), grid4.tolist(), lines)):
        assert not error, text
        assert out["answer"] == expected
        assert out["plugin"] == "vision" and out["segments"] >= 1 and out["reason"] in ("confident", "max_steps")


def test_a_maze_path_is_explained_with_every_claim_true(catalogue):
    walls, labels = maze.make_puzzle(11, np.random.default_rng(3))
    lines, solved = maze.render(walls), maze.render(walls, labels == maze.PATH)
    [(error, out, text)] = call(catalogue, [("explain_solution", {"puzzle": lines, "solution": solved})])
    assert not error, text
    assert out["verified"] and out["answer"].startswith("from S:")
    assert len(out["claims"]) > 1 and all(c["true"] for c in out["claims"])
    checked = check_explanation(lines, path_cells(walls, labels), out["answer"])  # again, outside the plugin
    assert checked.n_false == 0 and len(checked.claims) == len(out["claims"])


@pytest.mark.skipif(not SHIPPED, reason="no language checkpoint shipped (plugins/language/checkpoints/nat.safetensors)")
def test_a_4x4_sudoku_is_explained_with_every_claim_true(catalogue):
    puzzle, solution = sudoku.make_puzzle(4, np.random.default_rng(11))
    [(error, out, text)] = call(catalogue, [("explain_solution", {"puzzle": puzzle.tolist(),
                                                                  "solution": solution.tolist()})])
    assert not error, text
    assert out["verified"] and out["reason"] == "verified"
    assert len(out["claims"]) == int((puzzle == 0).sum()) and all(c["true"] for c in out["claims"])
    checked = check_explanation(puzzle, solution, out["answer"])  # checked again, independently of the plugin
    assert checked.n_false == 0 and not checked.missing


def test_without_a_checkpoint_explain_solution_says_which_to_ship(catalogue, monkeypatch, tmp_path):
    monkeypatch.setattr(language_checkpoint, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(language_checkpoint, "_CACHE", {})
    puzzle, solution = sudoku.make_puzzle(4, np.random.default_rng(11))
    [(error, _, text)] = call(catalogue, [("explain_solution", {"puzzle": puzzle.tolist(),
                                                                "solution": solution.tolist()})])
    assert error and "no language checkpoint 'nat'" in text and "sage train language" in text


def _png(array: np.ndarray) -> str:
    return b64(array.astype(np.uint8))


GRID4 = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
PUZZLE4 = [[1, 0, 3, 4], [3, 4, 0, 2], [2, 1, 4, 0], [0, 3, 2, 1]]


@pytest.mark.parametrize("name, arguments, fragment", [
    ("read_puzzle_image", {"image": "not base64!"}, "image: not valid base64"),
    ("read_puzzle_image", {"image": base64.b64encode(b"GIF89a" + bytes(40)).decode()},
     "image: not a readable PNG or JPEG file"),
    ("read_puzzle_image", {"image": 7}, "image: expected a base64 string of a PNG or JPEG file, got int"),
    ("read_puzzle_image", {"image": _png(np.full((200, 200), 240))}, "image: the vision plugin refused the puzzle: "
                                                                     "no grid found"),
    ("read_puzzle_image", {"image": _png(np.full((40, 40), 240))}, "image too small: 40 x 40 px"),
    ("read_puzzle_image", {"image": _png(np.full((200, 200), 240)), "kind": "chess"}, "kind: must be one of"),
    ("read_puzzle_image", {"image": _png(np.full((200, 200), 240)), "size": 100}, "size: must be an integer in 4..31"),
    ("explain_solution", {"puzzle": PUZZLE4, "solution": [[2, 1, 3, 4]] + GRID4[1:]},
     "puzzle: the language plugin refused the puzzle: solution is invalid"),
    ("explain_solution", {"puzzle": PUZZLE4, "solution": [r[:] for r in PUZZLE4]}, "solution is unsolved: 4 blank"),
    ("explain_solution", {"puzzle": "1.34", "solution": GRID4}, "puzzle: expected rows of integers (Sudoku) or strings"),
    ("explain_solution", {"puzzle": [[1, 2], [3]], "solution": GRID4}, "puzzle: a Sudoku is square"),
    ("explain_solution", {"puzzle": PUZZLE4, "solution": GRID4, "style": "poem"}, "style: must be one of"),
    ("explain_solution", {"puzzle": ["S #", "  G"], "solution": ["Sx#", "  G"]}, "solution: cell (0, 1) is 'x'"),
    ("explain_solution", {"puzzle": PUZZLE4}, "missing argument 'solution'"),
])
def test_bad_input_is_a_tool_error_naming_the_problem(catalogue, name, arguments, fragment):
    [(error, _, text)] = call(catalogue, [(name, arguments)])
    assert error and fragment in text and "Error executing tool" not in text


def test_a_9x9_sudoku_is_refused_by_the_language_model(catalogue):
    puzzle, solution = sudoku.make_puzzle(9, np.random.default_rng(2))
    [(error, _, text)] = call(catalogue, [("explain_solution", {"puzzle": puzzle.tolist(),
                                                                "solution": solution.tolist()})])
    assert error and "Sudoku size 9x9 not supported by the language model" in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
                 st.binary(max_size=60).map(lambda b: base64.b64encode(b"\x89PNG\r\n\x1a\n" + b).decode())))
def test_decode_image_returns_an_image_or_names_the_argument(value):
    try:
        image = decode_image(value)
    except ValueError as exc:
        assert str(exc).startswith("image: ")
    else:
        assert image.dtype == np.uint8 and image.ndim == 2
