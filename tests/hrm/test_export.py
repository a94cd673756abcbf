"""HRM export: ONNX/TorchScript round trips of every shipped checkpoint, the ONNX-runtime plugin
(conformance, same IRP behaviour, sessions resumed across runtimes), int8 gating, bad files."""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import sage_core
from sage_core.testing import check_plugin

from plugins.hrm import export as E
from plugins.hrm.checkpoint import CHECKPOINT_DIR, MODEL_FILE, load_pretrained, resolve
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.runtime import PRECISE, OnnxSegment

pytest.importorskip("onnxruntime")

SHIPPED = sorted(d.name for d in CHECKPOINT_DIR.iterdir() if (d / MODEL_FILE).is_file())
ONNX = functools.partial(HRMReasoner, runtime="onnx")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One float ONNX export per shipped checkpoint, written by export_checkpoint."""
    out = tmp_path_factory.mktemp("exports")
    made = {}
    for name in SHIPPED:
        made[name] = out / f"{name}.onnx"
        E.export_checkpoint(name, "onnx", made[name], log=lambda _: None, parity_batches=(1, 4))
    return made


@pytest.mark.parametrize("name", SHIPPED)
def test_onnx_round_trip_of_each_shipped_checkpoint(files: dict[str, Path], name: str) -> None:
    info, runner = E.load_runner(files[name])
    model = load_pretrained(name)
    assert info.format == "onnx" and not info.int8
    assert info.checkpoint_sha256 == E.file_sha256(resolve(name))
    assert info.config == model.cfg.to_dict()
    E.check_matches(info, model, resolve(name), str(files[name]))
    assert runner.disabled == info.onnx_fusions_off  # the fusions chosen at export are the ones run
    par = E.parity(model, runner, batch_sizes=(1, 5), segments=2)  # re-measured on the loaded file
    assert E.parity_refusal(par) is None
    assert par["logits"] <= E.PARITY_TOL * max(1.0, par["logits_scale"])
    if par["eager_vs_f64"] <= E.PARITY_TOL:  # where float32 itself is that close, so is the export
        assert par["logits"] <= E.PARITY_TOL, par
    # dynamic batch: batch 7 gives 7 rows, each equal to running that row alone
    x = torch.as_tensor(np.random.default_rng(0).integers(0, model.cfg.vocab, (7, model.cfg.seq_len)))
    carry, logits, qh, qc = runner(model.initial_carry(7), x)
    assert logits.shape == (7, model.cfg.seq_len, model.cfg.n_classes) and qh.shape == qc.shape == (7,)
    assert carry["z_H"].shape == (7, model.cfg.total_len, model.cfg.hidden)
    one = runner(model.initial_carry(1), x[3:4])
    assert torch.allclose(one[1][0], logits[3], atol=1e-4)


def test_the_export_keeps_every_fusion_that_stays_within_parity(files: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    info, runner = E.load_runner(files["sudoku4"])  # fused RMSNorm: 1.4e-5 from eager
    assert info.onnx_fusions_off == () and runner.disabled == ()
    model = load_pretrained("sudoku4")
    monkeypatch.setattr(E, "PARITY_TOL", 0.0)  # a tolerance the fused graph misses
    runner, par = E.fastest_within_parity(model, E.onnx_bytes(model), batch_sizes=(1,), segments=1)
    assert runner.disabled == PRECISE and par["logits"] > 0.0
    old = json.loads(info.to_json())
    del old["onnx_fusions_off"]  # a file written before the choice was recorded runs with them off
    assert E.ExportInfo.from_json(json.dumps(old), "old.onnx").onnx_fusions_off == PRECISE


@pytest.mark.parametrize("name", SHIPPED)
def test_torchscript_round_trip_of_each_shipped_checkpoint(tmp_path: Path, name: str) -> None:
    out = tmp_path / f"{name}.pt"
    info = E.export_checkpoint(name, "torchscript", out, log=lambda _: None, parity_batches=(1, 4))
    assert E.parity_refusal(info.parity) is None
    read, _ = E.read_export(out)  # the info comes back from the zip without unpickling
    assert read == info and read.format == "torchscript"
    with pytest.raises(ValueError, match="refusing to load a TorchScript archive"):
        E.load_runner(out)
    with pytest.raises(ValueError, match="takes ONNX exports"):
        HRMReasoner(runtime="onnx", exports={name: str(out)})
    _, runner = E.load_runner(out, trusted=True)
    model = load_pretrained(name)
    x = torch.as_tensor(np.random.default_rng(1).integers(0, model.cfg.vocab, (3, model.cfg.seq_len)))
    ref = model.segment(model.initial_carry(3), {"inputs": x})
    got = runner(model.initial_carry(3), x)
    assert (ref[1] - got[1]).abs().max() <= max(E.PARITY_TOL, 2 * info.parity["logits"])


def test_export_prints_parity_through_the_cli(tmp_path: Path) -> None:
    from sage_core.cli import build_cli

    cli = build_cli()
    out = tmp_path / "s4.onnx"
    r = CliRunner().invoke(cli, ["export", "hrm", "--checkpoint", "sudoku4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "parity vs eager float32" in r.output and "logits" in r.output and out.is_file()
    r = CliRunner().invoke(cli, ["export", "hrm", "--checkpoint", "sudoku4", "--format", "torchscript",
                                 "--int8", "--out", str(tmp_path / "x.pt")])
    assert r.exit_code != 0 and "int8 is offered for --format onnx" in r.output


def test_onnx_plugin_passes_the_conformance_kit() -> None:
    report = check_plugin(ONNX)
    assert report.passed and len(report.results) >= 8


@pytest.mark.parametrize("task, checkpoint, mode", [("sudoku4", None, "irp"), ("sudoku6", None, "irp"),
                                                    ("maze11", "maze11_trm", "bare"), ("maze11", None, "irp")])
def test_onnx_runtime_refines_like_eager(task: str, checkpoint: str | None, mode: str) -> None:
    """Same halting reason, steps, answers and energies (within float rounding) as the eager plugin."""
    kw = {"checkpoint": checkpoint, "mode": mode}
    eager, onnx = HRMReasoner(**kw), HRMReasoner(runtime="onnx", **kw)
    for i, puzzle in enumerate(HRMReasoner.held_out_puzzles(task, 4, seed=123)):
        a = sage_core.refine(eager, puzzle, {"seed": i, "max_steps": 10})
        b = sage_core.refine(onnx, puzzle, {"seed": i, "max_steps": 10})
        assert (a.decision.reason, a.state.step) == (b.decision.reason, b.state.step)
        assert np.array_equal(a.state.x["best"], b.state.x["best"])
        assert a.state.meta["act_halted"] == b.state.meta["act_halted"]
        assert np.allclose(a.history.energies, b.history.energies, atol=1e-4)


@pytest.mark.parametrize("first, second", [("eager", "onnx"), ("onnx", "eager")])
def test_sessions_resume_across_runtimes(first: str, second: str) -> None:
    a, b = HRMReasoner(runtime=first), HRMReasoner(runtime=second)
    ref = HRMReasoner(runtime=second)
    x0, ctx = HRMReasoner.example()
    for puzzle in [x0, *HRMReasoner.held_out_puzzles("sudoku6", 2, seed=5)]:
        s = a.init_state(puzzle, ctx)
        s = a.project(a.step(s))
        tensors, meta = a.export_state(s)
        resumed = b.import_state(tensors, json.loads(json.dumps(meta)))
        assert torch.equal(resumed.carry["z_H"], s.carry["z_H"])
        got = b.project(b.step(resumed))
        want = ref.project(ref.step(s))
        assert torch.allclose(got.carry["z_H"], want.carry["z_H"], atol=1e-4)
        assert np.array_equal(got.x["answer"], want.x["answer"]) and got.step == 2
        assert abs(b.energy(got) - ref.energy(want)) < 1e-4


def test_int8_export_records_accuracy_and_runs_in_the_plugin(tmp_path: Path) -> None:
    out = tmp_path / "s4_int8.onnx"
    info = E.export_checkpoint("sudoku4", "onnx", out, int8=True, n_eval=64, log=lambda _: None,
                               parity_batches=(1, 4))
    acc = info.accuracy
    assert info.int8 and acc["n"] == 64
    assert acc["float_exact_bare"] - acc["int8_exact_bare"] <= E.INT8_MAX_LOSS + 1e-12
    assert out.stat().st_size < 0.5 * len(E.onnx_bytes(load_pretrained("sudoku4")))
    plugin = HRMReasoner(checkpoint="sudoku4", runtime="onnx", exports={"sudoku4": str(out)})
    x0, ctx = HRMReasoner.example()
    r = sage_core.refine(plugin, x0, ctx)
    assert r.decision.policy == "verified"


def test_int8_is_not_written_when_it_loses_too_much(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "INT8_MAX_LOSS", -1.0)  # any result now counts as a loss beyond the limit
    out = tmp_path / "rejected.onnx"
    with pytest.raises(E.ExportRejected, match="int8 loses"):
        E.export_checkpoint("sudoku4", "onnx", out, int8=True, n_eval=50, log=lambda _: None, parity_batches=(1,))
    assert not out.exists()


def test_mismatched_export_is_a_clear_error(files: dict[str, Path]) -> None:
    plugin = HRMReasoner(runtime="onnx", exports={"sudoku6": str(files["sudoku4"])})
    state = plugin.init_state(HRMReasoner.held_out_puzzles("sudoku6", 1)[0], {})
    with pytest.raises(ValueError, match="exported from a checkpoint with SHA-256"):
        plugin.step(state)
    info, _ = E.read_export(files["sudoku4"])
    with pytest.raises(ValueError, match="config differs"):  # same file, another config
        E.check_matches(attrs.evolve(info, config={**info.config, "hidden": 1}), load_pretrained("sudoku4"),
                        resolve("sudoku4"), "x.onnx")


def test_corrupt_and_foreign_files_are_clear_errors(files: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    good = files["sudoku4"].read_bytes()
    cases = {
        "truncated.onnx": good[: len(good) // 3],
        "garbage.onnx": b"\x00\x01not a model at all" * 50,
        "empty.onnx": b"",
    }
    plain = onnx.load_model_from_string(good)
    del plain.metadata_props[:]
    cases["no_info.onnx"] = plain.SerializeToString()
    bad_json = onnx.load_model_from_string(good)
    bad_json.metadata_props[0].value = "{not json"
    cases["bad_info.onnx"] = bad_json.SerializeToString()
    external = onnx.load_model_from_string(good)
    external.graph.initializer[0].data_location = onnx.TensorProto.EXTERNAL
    cases["external.onnx"] = external.SerializeToString()
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x04cos\nsystem\n.")
    cases["zip.pt"] = (tmp_path / "zip.pt").read_bytes()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=str(path)):
            E.load_runner(path, trusted=True)
        with pytest.raises(ValueError):
            HRMReasoner(runtime="onnx", exports={"sudoku4": str(path)})
    with pytest.raises(ValueError, match="not an HRM segment graph"):  # a valid ONNX graph of another shape
        OnnxSegment(_identity_graph())


def _identity_graph() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "blob.onnx"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        E.read_export(path)


@given(st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=4), st.booleans())
def test_export_info_json_round_trip(parity: dict[str, float], int8: bool) -> None:
    info = E.ExportInfo(format="onnx", int8=int8, checkpoint="c", checkpoint_sha256="0" * 64,
                        config={"task": "sudoku4"}, parity=parity)
    assert E.ExportInfo.from_json(info.to_json(), "x") == info


def test_bad_runtime_arguments() -> None:
    with pytest.raises(ValueError, match="runtime must be 'eager' or 'onnx'"):
        HRMReasoner(runtime="tensorrt")
    with pytest.raises(ValueError, match="pass runtime='onnx'"):
        HRMReasoner(exports={"sudoku4": "x.onnx"})


def test_onnx_threads_cut_a_large_batch_into_row_blocks_with_the_same_answer() -> None:
    model = load_pretrained("sudoku4")
    data = E.onnx_bytes(model)
    one, two = OnnxSegment(data, threads=1), OnnxSegment(data, threads=2)
    calls: list[int] = []
    run = two.session.run

    class Spy:  # InferenceSession.run is read-only on the session object; wrap the session
        def run(self, names, feed):
            calls.append(len(feed["inputs"]))
            return run(names, feed)

    two.session = Spy()
    x = torch.as_tensor(np.random.default_rng(1).integers(0, model.cfg.vocab, (64, model.cfg.seq_len)))
    whole, cut = one(model.initial_carry(64), x), two(model.initial_carry(64), x)
    assert sorted(calls) == [32, 32]  # two row blocks at once
    assert torch.equal(whole[0]["z_H"], cut[0]["z_H"]) and all(torch.equal(a, b) for a, b in zip(whole[1:], cut[1:]))
    calls.clear()
    two(model.initial_carry(1), x[:1])
    assert calls == [1]  # a small batch is not cut
