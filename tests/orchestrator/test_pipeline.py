"""Pipeline construction from Python and TOML, and validation errors that name the node or edge."""

import textwrap

import pytest

from bridges import bridge
from orchestrator import Orchestrator, Pipeline, PipelineError
from plugins.toy import QuadraticDescent
from sage_core import MaxSteps


def toml(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_python_construction_runs_chain_and_feeds_input():
    p = Pipeline("chain")
    p.add_node("a", "toy", config={"dim": 4}, halt={"max_steps": 5})
    p.add_node("b", QuadraticDescent(dim=4, lr=0.2), halt=MaxSteps(3))
    p.add_edge("a", "b", "identity")
    assert [n.name for n in p.nodes] == ["a", "b"]
    result = Orchestrator(p).run()
    assert result["a"].steps == 5 and result["b"].steps == 3
    # b started from a's final x: its first energy is b's energy of a's final state
    plugin_b = p.node("b").plugin
    from sage_core import IRPState

    assert result["b"].energies[0] == plugin_b.energy(IRPState(x=result["a"].state.x))


def test_context_edge_delivers_value_under_key():
    seen = {}

    class Spy(QuadraticDescent):
        name = "spy"

        def init_state(self, x0, ctx):
            seen.update(ctx)
            return super().init_state(x0, ctx)

    p = Pipeline()
    p.add_node("a", "toy", halt={"max_steps": 2})
    p.add_node("b", Spy(), halt={"max_steps": 1}, seed=11)
    p.add_edge("a", "b", "energy", to="confidence")
    result = Orchestrator(p).run()
    assert seen == {"seed": 11, "confidence": result["a"].energy}


def test_toml_construction_and_settings(tmp_path):
    path = toml(tmp_path, """
        [pipeline]
        name = "t"
        budget = 50
        scheduler = "round_robin"
        [nodes.a]
        plugin = "toy"
        config = { dim = 4 }
        halt = { max_steps = 10, threshold = 1e-9, plateau = { eps = 1e-12, window = 4 }, diverging = 3 }
        floor = 5
        [nodes.b]
        plugin = "toy"
        config = { dim = 4 }
        input = [1.0, 2.0, 3.0, 4.0]
        [[edges]]
        from = "a"
        to = "b"
        into = "prior"
    """)
    p = Pipeline.from_toml(path)
    assert p.name == "t" and p.settings == {"budget": 50, "scheduler": "round_robin"}
    assert p.node("a").floor == 5 and p.node("b").input == [1.0, 2.0, 3.0, 4.0]
    assert p.to_dict()["edges"] == [{"from": "a", "to": "b", "bridge": "identity", "into": "prior", "streaming": False}]
    o = Orchestrator(p)
    assert o.scheduler.name == "round_robin"
    result = o.run()
    assert result.budget == 50 and result.atp_spent <= 50
    assert Pipeline.from_dict(p.to_dict()).to_dict() == p.to_dict()


def test_example_pipelines_load():
    from pathlib import Path

    files = sorted((Path(__file__).parents[2] / "examples" / "pipelines").glob("*.toml"))
    assert files
    for path in files:
        assert Pipeline.from_toml(path).graph.number_of_nodes() >= 1


@pytest.mark.parametrize("text, needle", [
    ("[nodes.a]\nplugin = 'nosuch'\n", "node 'a': unknown plugin 'nosuch'"),
    ("[nodes.a]\nplugin = 'toy'\n[nodes.b]\nplugin = 'toy'\n[[edges]]\nfrom='a'\nto='b'\nbridge='nosuch'\n",
     "edge 'a'->'b': unknown bridge 'nosuch'"),
    ("[nodes.a]\nplugin = 'toy'\n[[edges]]\nfrom='ghost'\nto='a'\n",
     "edge 'ghost'->'a': source node 'ghost' is not in the pipeline"),
    ("[nodes.a]\nplugin = 'toy'\n[nodes.b]\nplugin = 'toy'\n[[edges]]\nfrom='a'\nto='b'\n[[edges]]\nfrom='b'\nto='a'\n",
     "edge 'b'->'a' would close the cycle a -> b -> a with no feedback edge"),
    ("[nodes.a]\nplugin = 'toy'\nconfig = { dim = 0 }\n", "node 'a': plugin 'toy' rejected its config"),
    ("[nodes.a]\nplugin = 'toy'\nhalt = { max_step = 3 }\n", "node 'a': bad halt options"),
    ("[nodes.a]\nplugin = 'toy'\ncolour = 'red'\n", "node 'a': unknown key(s) ['colour']"),
    ("[nodes.a]\nplugin = 'toy'\n[nodes.b]\nplugin = 'toy'\n[nodes.c]\nplugin = 'toy'\n"
     "[[edges]]\nfrom='a'\nto='c'\n[[edges]]\nfrom='b'\nto='c'\n", "node 'c' already gets its input from 'a'"),
    ("[nodes.a]\nplugin = 'toy'\n[nodes.b]\nplugin = 'toy'\n[[edges]]\nfrom='a'\nto='b'\nstreaming=true\ninto='h'\n",
     "edge 'a'->'b': streaming edges need the target plugin to define receive"),
    ("[nodes.a]\nplugin = 'toy'\n[nodes.b]\nplugin = 'toy'\n[[edges]]\nfrom='a'\nto='b'\nbridge='flatten'\n",
     "bridge 'flatten' reads 'tensor' but node 'a' (toy) outputs 'vector'"),
    ("[pipeline]\nname='x'\n", "needs a [nodes.NAME] table"),
    ("nodes = 3\n[pipeline]\n", "needs a [nodes.NAME] table"),
    ("[nodes.a]\nplugin = 'toy'\n[bogus]\n", "unknown top-level table(s) ['bogus']"),
    ("[nodes.a\n", "not valid TOML"),
])
def test_validation_errors_name_the_culprit(tmp_path, text, needle):
    with pytest.raises(PipelineError) as info:
        Pipeline.from_toml(toml(tmp_path, text))
    assert needle in str(info.value)
    assert str(tmp_path / "p.toml") in str(info.value)


def test_bridge_kind_mismatch_on_target_input():
    @bridge("to_grid", source_kind="vector", target_kind="grid")
    def to_grid(state):
        return state.x

    p = Pipeline()
    p.add_node("a", "toy")
    p.add_node("b", "toy")
    with pytest.raises(PipelineError, match=r"edge 'a'->'b': bridge 'to_grid' produces 'grid' but node 'b' \(toy\) takes 'vector'"):
        p.add_edge("a", "b", to_grid)
    p.add_edge("a", "b", to_grid, to="grid_hint")  # into context: no input-kind check
    assert p.spec is None  # a callable bridge cannot be written back to TOML
    with pytest.raises(PipelineError, match="holds Python objects"):
        p.to_dict()


def test_duplicate_node_and_self_loop_and_non_plugin():
    p = Pipeline()
    p.add_node("a", "toy")
    with pytest.raises(PipelineError, match="node 'a' is defined twice"):
        p.add_node("a", "toy")
    with pytest.raises(PipelineError, match="cannot feed itself"):
        p.add_edge("a", "a")
    with pytest.raises(PipelineError, match="node 'z': .* is not an IRP plugin"):
        p.add_node("z", object())
    with pytest.raises(PipelineError, match="has no nodes"):
        Pipeline().validate()


def test_run_inputs_are_checked():
    p = Pipeline()
    p.add_node("a", "toy", config={"dim": 2}, halt={"max_steps": 2})
    p.add_node("b", "toy", config={"dim": 2})
    p.add_edge("a", "b")
    o = Orchestrator(p)
    with pytest.raises(PipelineError, match="unknown node"):
        o.run({"zz": [1.0, 1.0]})
    with pytest.raises(PipelineError, match="node 'b' gets its input from an edge"):
        o.run({"b": [1.0, 1.0]})
    result = o.run({"a": [3.0, -1.0]})
    assert result["a"].energies[0] == p.node("a").plugin.energy(
        p.node("a").plugin.init_state([3.0, -1.0], {}))


def test_kinds_are_checked_against_accepted_tuples_and_context_kinds():
    class Grid(QuadraticDescent):
        name = "grid_reader"
        output_kind = "sudoku_grid"

    class Solver(QuadraticDescent):
        name = "solver"
        input_kind = ("sudoku_grid", "maze_grid")
        output_kind = "solved_puzzle"
        context_kinds = {"hint": "cell_conflicts"}

    to_grid = bridge("to_grid", source_kind="sudoku_grid", target_kind="sudoku_grid")(lambda s: s.x)
    to_text = bridge("to_text", source_kind="solved_puzzle", target_kind="text")(lambda s: str(s.x))
    p = Pipeline()
    p.add_node("read", Grid())
    p.add_node("solve", Solver())
    p.add_edge("read", "solve", to_grid)
    with pytest.raises(PipelineError, match=r"edge 'solve'->'read': bridge 'to_grid' reads 'sudoku_grid' but node "
                                            r"'solve' \(solver\) outputs 'solved_puzzle'"):
        p.add_edge("solve", "read", to_grid, feedback=True)
    q = Pipeline()
    q.add_node("a", Solver())
    q.add_node("b", Solver())
    with pytest.raises(PipelineError, match=r"bridge 'to_text' produces 'text' but node 'b' \(solver\) takes "
                                            r"\('sudoku_grid', 'maze_grid'\)"):
        q.add_edge("a", "b", to_text)
    with pytest.raises(PipelineError, match=r"takes 'cell_conflicts' as 'hint'"):
        q.add_edge("a", "b", to_text, to="hint")


def test_bridges_read_the_plugins_output_value():
    class Boxed(QuadraticDescent):
        name = "boxed"
        output_kind = "box"

        def output(self, state):
            return {"value": state.x.tolist(), "step": state.step}

    seen = {}

    class Spy(QuadraticDescent):
        name = "spy"

        def init_state(self, x0, ctx):
            seen["box"] = ctx["box"]
            return super().init_state(None, ctx)

    p = Pipeline()
    p.add_node("a", Boxed(dim=3), halt={"max_steps": 2})
    p.add_node("b", Spy(dim=3), halt={"max_steps": 1})
    p.add_edge("a", "b", "identity", to="box")
    result = Orchestrator(p).run()
    assert seen["box"] == {"value": result["a"].state.x.tolist(), "step": 2}


def test_a_bridge_chain_from_toml_is_checked_link_by_link_and_round_trips(tmp_path):
    path = toml(tmp_path, """
        [nodes.a]
        plugin = "toy"
        halt = { max_steps = 2 }
        [nodes.b]
        plugin = "toy"
        halt = { max_steps = 1 }
        [[edges]]
        from = "a"
        to = "b"
        bridge = ["identity", "flatten"]
    """)
    p = Pipeline.from_toml(path)
    assert p.out_edges("a")[0].bridge.name == "identity+flatten"
    assert Pipeline.from_dict(p.to_dict()).out_edges("a")[0].bridge_name == ["identity", "flatten"]
    bad = toml(tmp_path, """
        [nodes.a]
        plugin = "toy"
        [nodes.b]
        plugin = "toy"
        [[edges]]
        from = "a"
        to = "b"
        bridge = ["energy", "flatten"]
    """)
    with pytest.raises(PipelineError, match=r"edge 'a'->'b': bridge 'energy' produces 'scalar' but the next one, "
                                            r"'flatten', reads 'tensor'"):
        Pipeline.from_toml(bad)
