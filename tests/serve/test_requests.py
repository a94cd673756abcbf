"""Request parsing: valid inputs come back typed, every bad one is a RequestError naming its field."""

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.service import (Limits, RequestError, SolveRequest, parse_image, parse_json, parse_puzzle, parse_run,
                                  parse_solve)

GRID = [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]
MAZE = ["#####", "#S  #", "# # #", "#  G#", "#####"]


def test_valid_solve_request_is_typed():
    req = parse_solve({"puzzle": GRID, "mode": "bare", "max_steps": 8, "seed": 3})
    assert req == SolveRequest(GRID, "bare", 8, "hrm", 3)
    assert req.context() == {"mode": "bare", "seed": 3, "max_steps": 8}
    assert parse_solve({"puzzle": MAZE}).puzzle == MAZE


@pytest.mark.parametrize("body, field", [
    ({}, "puzzle"),
    ({"puzzle": GRID, "extra": 1}, "extra"),
    ({"puzzle": "4300"}, "puzzle"),
    ({"puzzle": []}, "puzzle"),
    ({"puzzle": [[1, 2], [3]]}, "puzzle[1]"),
    ({"puzzle": [[0, 0], [0, 3]]}, "puzzle[1][1]"),
    ({"puzzle": [[0, 0], [0, -1]]}, "puzzle[1][1]"),
    ({"puzzle": [[0, 0], [0, True]]}, "puzzle[1][1]"),
    ({"puzzle": [[0, 0], [0, 1.0]]}, "puzzle[1][1]"),
    ({"puzzle": [[0, 0], [0, 10**400]]}, "puzzle[1][1]"),
    ({"puzzle": [[0, 0], "ab"]}, "puzzle[1]"),
    ({"puzzle": ["#S", "G"]}, "puzzle[1]"),
    ({"puzzle": ["#S", "Gx"]}, "puzzle[1]"),
    ({"puzzle": [[0] * 33] * 33}, "puzzle"),
    ({"puzzle": GRID, "mode": "fast"}, "mode"),
    ({"puzzle": GRID, "max_steps": 0}, "max_steps"),
    ({"puzzle": GRID, "max_steps": 65}, "max_steps"),
    ({"puzzle": GRID, "max_steps": "8"}, "max_steps"),
    ({"puzzle": GRID, "seed": -1}, "seed"),
    ({"puzzle": GRID, "plugin": 7}, "plugin"),
    ([GRID], "body"),
])
def test_bad_solve_request_names_the_field(body, field):
    with pytest.raises(RequestError) as err:
        parse_solve(body)
    assert err.value.field == field
    assert err.value.status == 422
    assert err.value.to_dict()["field"] == field


def test_huge_number_message_stays_short():
    with pytest.raises(RequestError) as err:
        parse_solve({"puzzle": GRID, "max_steps": 10**5000})
    assert len(err.value.message) < 100 and "about 5001 digits" in err.value.message


def test_json_body_limits():
    with pytest.raises(RequestError) as err:
        parse_json(b"x" * 101, Limits(max_body_bytes=100))
    assert err.value.status == 413
    deep = b"[" * 30000 + b"]" * 30000
    with pytest.raises(RequestError) as err:
        parse_json(deep)
    assert err.value.status == 422 and err.value.field == "body"
    with pytest.raises(RequestError) as err:
        parse_json(b"\xff\xfe{")
    assert err.value.field == "body"
    assert parse_json(b'{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize("body, field", [
    ({}, "pipeline"),
    ({"pipeline": "a", "toml": "b"}, "pipeline"),
    ({"pipeline": "../etc/passwd"}, "pipeline"),
    ({"toml": 3}, "toml"),
    ({"toml": "", "inputs": []}, "inputs"),
    ({"toml": "", "budget": -1}, "budget"),
    ({"toml": "", "budget": float("inf")}, "budget"),
    ({"toml": "", "budget": True}, "budget"),
])
def test_bad_run_request_names_the_field(body, field):
    with pytest.raises(RequestError) as err:
        parse_run(body)
    assert err.value.field == field


def test_run_request():
    req = parse_run({"pipeline": "toy_chain", "inputs": {"a": [1.0]}, "budget": 5})
    assert (req.pipeline, req.toml, req.inputs, req.budget) == ("toy_chain", None, {"a": [1.0]}, 5.0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40)


@settings(max_examples=150, deadline=None)
@given(puzzle=json_values, extra=st.dictionaries(st.sampled_from(["mode", "max_steps", "seed", "plugin", "x"]),
                                                  json_values, max_size=3))
def test_any_json_is_parsed_or_refused_with_a_field(puzzle, extra):
    body = {"puzzle": puzzle, **extra}
    try:
        req = parse_solve(body)
    except RequestError as err:
        assert err.status == 422 and err.field
        json.dumps(err.to_dict())  # always serialisable
        return
    n = len(req.puzzle)
    assert 1 <= n <= Limits().max_grid
    if isinstance(req.puzzle[0], list):
        assert all(len(row) == n and all(0 <= c <= n for c in row) for row in req.puzzle)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_or_are_refused(raw):
    try:
        parse_json(raw)
    except RequestError as err:
        assert err.status in (413, 422)


def png_base64(image: np.ndarray, fmt: str = "PNG") -> str:
    """``image`` (uint8) encoded as a base64 image file."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_image_is_decoded_to_gray_uint8():
    pytest.importorskip("PIL")
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255
    for fmt in ("PNG", "JPEG"):
        gray = parse_image(png_base64(rgb, fmt))
        assert gray.shape == (20, 30) and gray.dtype == np.uint8 and abs(int(gray.mean()) - 76) <= 2
    assert parse_image("data:image/png;base64," + png_base64(rgb)).shape == (20, 30)
    req = parse_solve({"image": png_base64(rgb), "seed": 2})
    assert req.puzzle is None and req.image.shape == (20, 30) and req.reader == "vision"


@pytest.mark.parametrize("value, words", [
    (7, "base64 string"), ("", "base64 string"), ("not base64!", "not valid base64"),
    (base64.b64encode(b"GIF89a" + b"\0" * 40).decode(), "not a readable"),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode(), "not a readable"),
])
def test_bad_images_are_refused(value, words):
    pytest.importorskip("PIL")
    with pytest.raises(RequestError) as err:
        parse_image(value)
    assert err.value.field == "image" and err.value.status == 422 and words in err.value.message


def test_image_size_is_checked_before_decoding():
    pytest.importorskip("PIL")
    bomb = png_base64(np.zeros((3000, 3000), np.uint8))  # ~9 kB of file, 9 megapixels
    assert len(bomb) < 20000
    with pytest.raises(RequestError) as err:
        parse_image(bomb)
    assert "3000 x 3000" in err.value.message
    assert parse_image(bomb, Limits(max_image_pixels=10**7)).shape == (3000, 3000)


def test_puzzle_and_image_are_exclusive():
    with pytest.raises(RequestError) as err:
        parse_solve({"puzzle": GRID, "image": "x"})
    assert err.value.field == "puzzle"
