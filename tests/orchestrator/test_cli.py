"""`sage run`, `sage resume`, `sage plot`, `sage demo` (registered through sage_register_commands)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path


from orchestrator import Orchestrator, Pipeline
from persistence import SessionStore

SAGE = [sys.executable, "-c", "from sage_core.cli import main; main()"]
EXAMPLE = Path(__file__).parents[2] / "examples" / "pipelines" / "toy_chain.toml"


def sage(*args, timeout=120):
    return subprocess.run([*SAGE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


def test_commands_are_registered_through_the_hook():
    from sage_core.cli import build_cli

    commands = build_cli().commands
    assert {"run", "resume", "plot", "demo"} <= set(commands)
    assert "sage_register_commands" in __import__("sage_core").get_registry().hooks_of("orchestrator")


def test_run_json_then_plot(tmp_path):
    out = sage("run", EXAMPLE, "--budget", "150", "--session", "cli1", "--json", "--store", tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["session"] == "cli1" and data["budget"] == 150 and data["atp_spent"] <= 150
    assert set(data["nodes"]) == {"coarse", "fine", "side"}
    assert data["nodes"]["coarse"]["reason"] == "max_steps" and data["nodes"]["coarse"]["steps"] == 40
    store = SessionStore(root=tmp_path)
    assert store.load("cli1").orchestrator["done"] is True
    assert (tmp_path / "trust.msgpack").exists()  # trust carried to the next session
    png = tmp_path / "energy.png"
    out = sage("plot", "cli1", "--out", png, "--store", tmp_path)
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_run_plain_lines_when_not_a_terminal(tmp_path):
    out = sage("run", EXAMPLE, "--store", tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("session ")
    assert sum(line.startswith("halt ") for line in lines) == 3
    assert any(line.strip().startswith("coarse") and "max_steps" in line for line in lines)
    assert "\x1b[" not in out.stdout  # no terminal control codes


def test_resume_continues_a_checkpointed_session(tmp_path):
    store = SessionStore(root=tmp_path)
    reference = Orchestrator(Pipeline.from_toml(EXAMPLE)).run()
    o = Orchestrator(Pipeline.from_toml(EXAMPLE))
    session = o.start(store=store, session="half")
    for _ in range(30):
        o.step()
    o.checkpoint(store)
    out = sage("resume", session, "--json", "--store", tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for name, node in reference.nodes.items():
        assert data["nodes"][name]["steps"] == node.steps
        assert data["nodes"][name]["energy"] == node.energy


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[nodes.a]\nplugin = 'nope'\n")
    out = sage("run", bad, "--store", tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("sage: error:") and "node 'a': unknown plugin 'nope'" in out.stderr
    out = sage("resume", "missing", "--store", tmp_path)
    assert out.returncode == 2 and "missing" in out.stderr


def test_live_display_table_shows_every_node():
    from rich.console import Console

    from orchestrator.cli import _Display

    o = Orchestrator(Pipeline.from_toml(EXAMPLE))
    o.start(budget=100)
    o.step()
    console = Console(width=200, record=True)
    console.print(_Display(o, live=False)._table())
    text = console.export_text()
    for name in ("coarse", "fine", "side", "running", "pending", "ATP allocated"):
        assert name in text


def test_toy_demo_runs_checkpoints_resumes_quickly(tmp_path):
    t0 = time.perf_counter()
    out = sage("demo", "--toy", "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "checkpoint 1" in out.stdout and "bit-identical" in out.stdout
    assert "coarse: 60 steps" in out.stdout
    assert time.perf_counter() - t0 < 30


def test_hrm_demo_solves_held_out_puzzles_and_resumes_in_a_fresh_process(tmp_path):
    out = sage("demo", "sudoku-text", "--task", "sudoku4", "--n", "2", "--mode", "bare", "--store", tmp_path / "store",
               "--out", tmp_path / "pics")
    assert out.returncode == 0, out.stderr
    from PIL import Image

    with Image.open(tmp_path / "pics" / "energy.png") as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    assert f"energy per step of every node: {tmp_path / 'pics' / 'energy.png'}" in out.stdout
    assert "2 held-out sudoku4 puzzles" in out.stdout and "verified: 2/2 puzzles" in out.stdout
    assert "resuming with `sage resume` in a fresh process" in out.stdout and "bit-identical" in out.stdout
    (session,) = [info.id for info in SessionStore(root=tmp_path / "store").list()]
    snapshot = SessionStore(root=tmp_path / "store").load(session)
    assert set(snapshot.nodes) == {"puzzle0", "puzzle1"}
    assert all(min(node["energies"]) < 1.0 for node in snapshot.orchestrator["nodes"].values())
