"""The demo framework: names, --list, one clear line for a missing extra or plugin, --out/--seed,
and every demo pipeline under examples/ builds from its TOML."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import Pipeline
from orchestrator import demo as demos
from orchestrator.demo import DEMOS, Demo, DemoRun, demo_command, puzzle_nodes, read_spec, register_demo

EXAMPLES = Path(__file__).parents[2] / "examples" / "pipelines"


def invoke(*args):
    return CliRunner().invoke(demo_command, [str(a) for a in args])


@pytest.fixture
def fake_demo():
    seen = {}

    def run(demo_run: DemoRun) -> None:
        seen["run"] = demo_run

    added = []

    def add(name, **kwargs):
        added.append(register_demo(Demo(name, "test demo", "toy_demo.toml", run, **kwargs)))
        return seen

    yield add
    for demo in added:
        DEMOS.pop(demo.name)


def test_list_names_every_demo_and_its_pipeline_file():
    result = invoke("--list")
    assert result.exit_code == 0
    for name, demo in DEMOS.items():
        assert name in result.output and demo.pipeline in result.output


def test_an_unknown_demo_is_one_line_naming_the_demos():
    result = invoke("nope")
    assert result.exit_code == 1
    assert "no demo 'nope'; the demos are" in result.output and "sudoku-text" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("needs, plugins, line", [
    ((("no_such_module_for_sage", "mujoco"),), (), "needs no_such_module_for_sage: pip install 'sage-irp[mujoco]'"),
    ((), ("no_such_plugin",), "needs the 'no_such_plugin' plugin, which is not registered"),
])
def test_a_missing_part_is_one_line_saying_what_to_install(fake_demo, tmp_path, needs, plugins, line):
    seen = fake_demo("needy", needs=needs, plugins=plugins)
    result = invoke("needy", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "run" not in seen
    assert line in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_out_and_seed_reach_the_demo(fake_demo, tmp_path):
    seen = fake_demo("probe", plugins=("toy",))
    result = invoke("probe", "--out", tmp_path / "pics", "--seed", 17)
    assert result.exit_code == 0, result.output
    run = seen["run"]
    assert run.out == tmp_path / "pics" and run.out.is_dir() and run.seed == 17
    assert run.spec["pipeline"]["name"] == "toy-demo"
    assert f"pictures in {tmp_path / 'pics'}/" in result.output


@pytest.mark.parametrize("file", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_pipeline_builds_from_its_toml(file):
    needed = {entry["plugin"] for entry in read_spec(file).get("nodes", {}).values()}
    from sage_core import get_registry

    missing = needed - set(get_registry().plugins)
    if missing:
        pytest.skip(f"plugin(s) {sorted(missing)} not registered yet")
    pipeline = Pipeline.from_toml(EXAMPLES / file)
    assert pipeline.nodes


def test_the_puzzle_template_is_copied_per_puzzle():
    spec = puzzle_nodes(read_spec("sudoku_text.toml"), [[[1]], [[2]]], "bare")
    assert list(spec["nodes"]) == ["puzzle0", "puzzle1"]
    assert spec["nodes"]["puzzle1"]["input"] == [[2]] and spec["nodes"]["puzzle1"]["seed"] == 1
    assert spec["nodes"]["puzzle0"]["config"]["mode"] == "bare" and spec["pipeline"]["budget"] == 128


def test_the_default_demo_is_registered():
    assert demos.DEFAULT_DEMO in DEMOS


def test_maze_robot_pipeline_runs_a_short_maze_from_its_toml():
    """Reduced maze_robot.toml: one held-out maze planned by the HRM, its path handed to the world
    plugin as waypoints in metres (a few planner iterations only)."""
    from orchestrator import Orchestrator
    from sage_core import get_registry

    spec = read_spec("maze_robot.toml")
    maze = get_registry().plugin_class("hrm").held_out_puzzles("maze11", 1, seed=77)[0]
    spec["nodes"]["planner"]["input"] = maze
    spec["nodes"]["robot"]["halt"] = {"max_steps": 3}
    pipeline = Pipeline.from_dict(spec)
    result = Orchestrator(pipeline).run()
    planner = pipeline.node("planner").plugin.output(result["planner"].state)
    assert result["planner"].reason == "verified" and planner["verified"]
    path = planner["solution"]
    assert maze[path[0][0]][path[0][1]] == "S" and maze[path[-1][0]][path[-1][1]] == "G"
    assert not result["robot"].failed and result["robot"].steps == 3
    waypoints = result["robot"].state.meta["task"]["waypoints"]
    assert len(waypoints) == len(path) and waypoints[0] == [0.0, 0.0]
    (r0, c0), (r1, c1) = path[0], path[1]
    assert waypoints[1] == [float(c1 - c0), float(r0 - r1)]  # 1 m cells, y up
