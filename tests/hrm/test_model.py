"""HRM model: batched == unbatched, one-step gradient, init, checkpoints, resumable training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plugins.hrm import checkpoint as ckpt
from plugins.hrm.config import HRMConfig
from plugins.hrm.model import HRM, stablemax_cross_entropy, token_loss
from plugins.hrm.train import Trainer, recipe

TINY = {"hidden": 32, "heads": 2, "H_layers": 1, "L_layers": 1, "max_segments": 3}


def tiny(task: str = "sudoku4", **kw) -> HRM:
    torch.manual_seed(0)
    return HRM(HRMConfig.for_task(task, **{**TINY, **kw}))


def test_init_and_buffers() -> None:
    m = tiny()
    assert torch.all(m.q_head.weight == 0) and torch.all(m.q_head.bias == -5)
    assert "H_init" in m.state_dict() and "L_init" in m.state_dict()
    assert "rope_cos" not in m.state_dict()
    w = m.L.layers[0].mlp.down.weight
    std = 1 / w.shape[1] ** 0.5
    assert w.abs().max() <= 2 * std / 0.879 + 1e-6  # truncated
    assert abs(w.std().item() - std) < 0.25 * std  # LeCun scale
    assert all(p.dtype == torch.float32 for p in m.parameters())


@pytest.mark.parametrize("task, variant", [("sudoku6", "hrm"), ("maze11", "hrm"), ("sudoku4", "trm")])
def test_batched_equals_unbatched(task: str, variant: str) -> None:
    m = tiny(task, variant=variant).eval()
    cfg = m.cfg
    x = torch.randint(0, cfg.vocab, (5, cfg.seq_len), generator=torch.Generator().manual_seed(1))
    carry = m.initial_carry(5)
    with torch.inference_mode():
        for _ in range(2):
            carry, logits, qh, qc = m.segment(carry, {"inputs": x})
        for i in range(5):
            c1 = m.initial_carry(1)
            for _ in range(2):
                c1, l1, h1, q1 = m.segment(c1, {"inputs": x[i:i + 1]})
            torch.testing.assert_close(l1[0], logits[i], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(c1["z_H"][0], carry["z_H"][i], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(h1[0], qh[i], atol=1e-4, rtol=1e-4)


def test_one_step_gradient_and_detached_carry() -> None:
    m = tiny()
    x = torch.randint(0, m.cfg.vocab, (2, m.cfg.seq_len))
    carry, logits, qh, qc = m.segment(m.initial_carry(2), {"inputs": x})
    assert not carry["z_H"].requires_grad and not carry["z_L"].requires_grad
    (logits.sum() + qh.sum()).backward()
    assert m.embed.weight.grad is not None and m.L.layers[0].attn.qkv.weight.grad is not None
    assert m.prefix.grad is not None
    # the graph holds only the last L and H update: 1 L-stack and 1 H-stack call
    calls = {"L": 0, "H": 0}
    hooks = [m.L.register_forward_hook(lambda *a: calls.__setitem__("L", calls["L"] + 1)),
             m.H.register_forward_hook(lambda *a: calls.__setitem__("H", calls["H"] + 1))]
    grad_calls = {"L": 0, "H": 0}
    hooks += [m.L.register_forward_hook(lambda mod, i, o: grad_calls.__setitem__("L", grad_calls["L"] + o.requires_grad)),
              m.H.register_forward_hook(lambda mod, i, o: grad_calls.__setitem__("H", grad_calls["H"] + o.requires_grad))]
    m.segment(m.initial_carry(2), {"inputs": x})
    for h in hooks:
        h.remove()
    assert calls == {"L": m.cfg.H_cycles * m.cfg.L_cycles, "H": m.cfg.H_cycles}
    assert grad_calls == {"L": 1, "H": 1}


def test_trm_variant_trains_through_last_recursion() -> None:
    m = tiny(variant="trm")
    assert m.H is None
    x = torch.randint(0, m.cfg.vocab, (2, m.cfg.seq_len))
    carry, logits, qh, qc = m.segment(m.initial_carry(2), {"inputs": x})
    assert torch.all(qc == 0) and not carry["z_H"].requires_grad
    logits.sum().backward()
    assert m.L.layers[0].mlp.down.weight.grad is not None


def test_reset_carry() -> None:
    m = tiny()
    c = {k: torch.randn_like(v) for k, v in m.initial_carry(3).items()}
    r = m.reset_carry(c, torch.tensor([True, False, True]))
    assert torch.equal(r["z_H"][0], m.H_init.expand_as(r["z_H"][0]))
    assert torch.equal(r["z_L"][1], c["z_L"][1])


def test_losses() -> None:
    logits = torch.randn(2, 5, 4)
    labels = torch.randint(0, 4, (2, 5))
    sm = stablemax_cross_entropy(logits, labels)
    assert sm.shape == (2, 5) and torch.all(sm > 0)
    good = torch.nn.functional.one_hot(labels, 4).float() * 20
    assert stablemax_cross_entropy(good, labels).mean() < sm.mean()
    cfg = HRMConfig.for_task("sudoku4")
    torch.testing.assert_close(token_loss(cfg, logits, labels),
                               torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none"))


def test_checkpoint_round_trip(tmp_path) -> None:
    m = tiny("sudoku6", loss="stablemax")
    path = ckpt.save_model(m, tmp_path / "c")
    assert path.name == "model.safetensors" and path.stat().st_size < 5e6
    m2 = ckpt.load_pretrained(tmp_path / "c")
    assert m2.cfg == m.cfg
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    meta = ckpt.read_metadata(path)
    assert json.loads(meta["hrm_config"])["loss"] == "stablemax"
    assert b"pickle" not in path.read_bytes()[:2000]
    with pytest.raises(FileNotFoundError, match="no HRM checkpoint"):
        ckpt.load_pretrained(tmp_path / "missing")


def _train(out, iters: int, **kw) -> Trainer:
    args = recipe("sudoku4", out=str(out), seed=3, n_train=64, batch_size=8, eval_n=8, max_iters=iters,
                  eval_every=10**9, ckpt_every_s=10**9, model=TINY, **kw)
    t = Trainer(args, log=lambda s: None)
    t.run(progress=False)
    return t


@pytest.mark.parametrize("kw", [{}, {"ema": 0.9, "grad_clip": 0.5}], ids=["plain", "ema-clip"])
def test_training_resume_is_deterministic(tmp_path, kw) -> None:
    full = _train(tmp_path / "a", 12, **kw)
    _train(tmp_path / "b", 6, **kw)
    resumed = _train(tmp_path / "b", 12, **kw)  # picks up at iteration 6
    assert resumed.it == full.it == 12
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    for k, v in full.eval_model.state_dict().items():
        assert torch.equal(v, resumed.eval_model.state_dict()[k]), k
    assert torch.equal(full.inputs, resumed.inputs) and torch.equal(full.steps, resumed.steps)
    assert (tmp_path / "b" / "last" / "model.safetensors").is_file()
    lines = (tmp_path / "b" / "curve.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "exact_bare" in json.loads(lines[-1])


def _assert_same_training(a: Trainer, b: Trainer) -> None:
    assert a.it == b.it
    for m, n in ((a.model, b.model), (a.eval_model, b.eval_model)):
        for k, v in m.state_dict().items():
            assert torch.equal(v, n.state_dict()[k]), k
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.carry["z_L"], b.carry["z_L"])


def test_resume_reads_only_the_atomic_training_state(tmp_path) -> None:
    """The exports ``last``/``ema`` may lag or lead (a run killed between writes): resume does not
    read them, so it stays bit-exact; a damaged state file is a clear error."""
    full = _train(tmp_path / "a", 12, ema=0.9)
    _train(tmp_path / "b", 6, ema=0.9)
    for sub in ("last", "ema"):  # exports from some other iteration
        ckpt.save_model(tiny(), tmp_path / "b" / sub)
    _assert_same_training(full, _train(tmp_path / "b", 12, ema=0.9))
    state = tmp_path / "b" / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt training state"):
        _train(tmp_path / "b", 14, ema=0.9)


def test_resume_from_the_older_two_file_layout(tmp_path) -> None:
    """A run written before the single-file state (tensors + train_state.msgpack, weights in
    last/ and ema/) resumes bit-exactly and is rewritten in the new layout."""
    import msgpack
    from safetensors.torch import load_file, save_file

    full = _train(tmp_path / "a", 12, ema=0.9)
    run = tmp_path / "b"
    _train(run, 6, ema=0.9)
    tensors = load_file(str(run / "train_state.safetensors"))
    (run / "train_state.msgpack").write_bytes(tensors.pop("meta.msgpack").numpy().tobytes())
    assert msgpack.unpackb((run / "train_state.msgpack").read_bytes())["it"] == 6
    save_file({k: v for k, v in tensors.items() if not k.startswith(("model.", "ema."))}, str(run / "train_state.safetensors"))
    _assert_same_training(full, _train(run, 12, ema=0.9))
    assert not (run / "train_state.msgpack").exists()
    assert "meta.msgpack" in load_file(str(run / "train_state.safetensors"))


def test_ema_weights_are_evaluated_and_shipped_as_best(tmp_path) -> None:
    t = _train(tmp_path, 5, ema=0.5)
    live, ema = t.model.state_dict(), t.ema_model.state_dict()
    assert t.eval_model is t.ema_model
    assert any(not torch.equal(live[k], ema[k]) for k in live)  # an average, not a copy
    best = ckpt.load_pretrained(tmp_path / "best").state_dict()
    assert all(torch.equal(best[k], ema[k]) for k in ema)  # evaluated at the end: the EMA was saved
    # decay 0: the EMA is the live model after every step
    t0 = _train(tmp_path / "zero", 3, ema=1e-12)
    assert all(torch.allclose(v, t0.ema_model.state_dict()[k]) for k, v in t0.model.state_dict().items())


def test_grad_clip_bounds_the_update(tmp_path) -> None:
    """Clipping to a norm far below Adam's eps makes the first update tiny; unclipped, the
    same step moves the weights much further (Adam alone would normalise the scale away)."""
    start = _train(tmp_path / "s", 0).model.state_dict()
    clipped = _train(tmp_path / "c", 1, grad_clip=1e-6).model.state_dict()
    free = _train(tmp_path / "f", 1).model.state_dict()
    move = lambda sd: sum(float((sd[k] - start[k]).abs().sum()) for k in start)  # noqa: E731
    assert 0 < move(clipped) < move(free)


@pytest.mark.parametrize("pos", ["rope2d", "learned"])
def test_position_options_batched_and_round_trip(tmp_path, pos: str) -> None:
    m = tiny("maze11", pos_encoding=pos, class_weights=[0.2, 1, 3]).eval()
    x = torch.randint(0, m.cfg.vocab, (3, m.cfg.seq_len), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        _, logits, _, _ = m.segment(m.initial_carry(3), {"inputs": x})
        _, l1, _, _ = m.segment(m.initial_carry(1), {"inputs": x[1:2]})
    torch.testing.assert_close(l1[0], logits[1], atol=1e-4, rtol=1e-4)
    path = ckpt.save_model(m, tmp_path / "c")
    m2 = ckpt.load_pretrained(tmp_path / "c")
    assert m2.cfg == m.cfg and m2.cfg.class_weights == (0.2, 1.0, 3.0) and m2.cfg.pos_encoding == pos
    assert json.loads(ckpt.read_metadata(path)["hrm_config"])["class_weights"] == [0.2, 1.0, 3.0]
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert ("pos_embed" in m.state_dict()) == (pos == "learned")


def test_rope2d_depends_on_grid_offset_only() -> None:
    """With 2-D rotary, a q.k score depends only on the (row, column) offset of the two cells."""
    from plugins.hrm.model import rope_angles, rotate_half

    cfg = HRMConfig.for_task("maze11", hidden=32, heads=2, pos_encoding="rope2d", rope_theta=100.0)
    emb = rope_angles(cfg)
    cos, sin = emb.cos(), emb.sin()
    assert torch.all(emb[0] == 0)  # prefix unrotated
    q, k = torch.randn(16), torch.randn(16)

    def score(a: int, b: int) -> float:  # a, b: grid cells (row-major), +1 for the prefix
        qa = q * cos[a + 1] + rotate_half(q) * sin[a + 1]
        kb = k * cos[b + 1] + rotate_half(k) * sin[b + 1]
        return float(qa @ kb)

    side = 11
    cell = lambda r, c: r * side + c  # noqa: E731
    # same offset (down 1) anywhere on the grid -> same score; 1-D neighbours across a row break differ
    assert abs(score(cell(2, 3), cell(3, 3)) - score(cell(7, 9), cell(8, 9))) < 1e-4
    assert abs(score(cell(2, 3), cell(2, 4)) - score(cell(5, 0), cell(5, 1))) < 1e-4
    assert abs(score(cell(2, 10), cell(3, 0)) - score(cell(2, 3), cell(2, 4))) > 1e-3
    # 1-D rope: the flattened offset, so (row r, last col) -> (row r+1, col 0) looks like a right neighbour
    cfg1 = HRMConfig.for_task("maze11", hidden=32, heads=2)
    e1 = rope_angles(cfg1)
    assert torch.allclose(e1[cell(3, 0) + 1] - e1[cell(2, 10) + 1], e1[cell(2, 4) + 1] - e1[cell(2, 3) + 1])


def test_class_weighted_sequence_loss() -> None:
    from plugins.hrm.model import sequence_loss

    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[0, 1, 2, 2, 0], [1, 1, 1, 0, 2]])
    plain = HRMConfig.for_task("maze11")
    torch.testing.assert_close(sequence_loss(plain, logits, labels), token_loss(plain, logits, labels).mean(-1))
    w = HRMConfig.for_task("maze11", class_weights=(0.0, 1.0, 3.0))
    tl = token_loss(plain, logits, labels)
    wt = torch.tensor([0.0, 1.0, 3.0])[labels]
    torch.testing.assert_close(sequence_loss(w, logits, labels), (wt * tl).sum(-1) / wt.sum(-1))
    with pytest.raises(ValueError, match="class_weights"):
        HRMConfig.for_task("maze11", class_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="square grid"):
        HRMConfig(seq_len=10, pos_encoding="rope2d")


def test_local_attention_window() -> None:
    from plugins.hrm.model import local_attention_mask

    m = tiny("maze11", attn_window=1, pos_encoding="rope2d").eval()
    assert "attn_mask" not in m.state_dict()
    mask = local_attention_mask(m.cfg)
    assert mask.shape == (122, 122) and mask[0].all() and mask[:, 0].all()
    assert int(mask[1 + 5 * 11 + 5].sum()) == 1 + 9  # prefix + 3x3 neighbourhood
    assert not mask[1 + 2 * 11 + 10, 1 + 3 * 11 + 0]  # end of a row is not next to the next row's start
    # one L pass: a cell's output depends on its neighbourhood (and the prefix) only
    x = torch.randint(0, 4, (1, 121), generator=torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[0, 10 * 11 + 10] = (x[0, 10 * 11 + 10] + 1) % 4
    c = m.initial_carry(1)
    with torch.inference_mode():
        e1, e2 = m.input_embedding(x), m.input_embedding(x2)
        a = m.L(c["z_L"], c["z_H"] + e1, m.rope_cos, m.rope_sin, m.attn_mask)
        b = m.L(c["z_L"], c["z_H"] + e2, m.rope_cos, m.rope_sin, m.attn_mask)
    changed = (a - b).abs().amax(-1)[0, 1:].view(11, 11) > 1e-6
    assert changed[10, 10] and changed[9, 9] and not changed[:8].any() and not changed[:, :8].any()
    _, logits, _, _ = tiny("maze11", attn_window=1).segment(tiny("maze11", attn_window=1).initial_carry(2),
                                                            {"inputs": x.expand(2, -1)})
    assert logits.shape == (2, 121, 3)
