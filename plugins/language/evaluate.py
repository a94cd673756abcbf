"""Held-out evaluation of the explanation model: share of true claims, share of explanations
entirely true, coverage, parse failures and speed, for mask-predict (plain or energy-guided) and
for the autoregressive baseline. Speed is output tokens per second of wall time and per
CPU-second of the decoding process (one torch thread; the second is what a shared machine
measures reliably)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from plugins.puzzles.claims import check_explanation

from .checkpoint import load_model
from .corpus import TEST_SEED, Corpus, generate
from .decode import Judged, ar_decode, mask_predict
from .model import Explainer
from .vocab import MASK_ID, PAD_ID, render


def held_out(n: int, count: int, seed: int = TEST_SEED) -> Corpus:
    """``count`` held-out puzzles of size n (seed 9001; training uses 0, validation 9002)."""
    return generate(n, count, seed)


def _summary(results: Sequence, tokens: int, seconds: float, cpu: float) -> dict[str, float]:
    claims = sum(len(r.claims) for r in results)
    return {"puzzles": len(results),
            "claims_true": sum(r.n_true for r in results) / max(1, claims),
            "entirely_true": float(np.mean([r.all_true for r in results])),
            "coverage": float(np.mean([r.coverage for r in results])),
            "parse_failures": sum(r.parse_failures for r in results),
            "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
            "cpu_seconds": cpu, "tokens_per_cpu_s": tokens / max(cpu, 1e-9)}


def eval_nat(model: Explainer, corpus: Corpus, iters: int, guided: bool = True, batch: int = 50) -> dict:
    """Mask-predict with ``iters`` iterations over the corpus; timed end to end (checker included)."""
    torch.set_num_threads(1)
    judged: list[Judged] = []
    used: list[np.ndarray] = []
    tokens, seconds, cpu = 0, 0.0, 0.0
    for i in range(0, len(corpus), batch):
        sl = slice(i, i + batch)
        t0, c0 = time.perf_counter(), time.process_time()
        js, slots, u = mask_predict(model, corpus.puzzles[sl], corpus.solutions[sl], iters, guided)
        seconds, cpu = seconds + time.perf_counter() - t0, cpu + time.process_time() - c0
        tokens += int(((slots != PAD_ID) & (slots != MASK_ID)).sum())
        judged.extend(js)
        used.append(u)
    out = _summary([j.result for j in judged], tokens, seconds, cpu)
    out["mean_iterations"] = float(np.concatenate(used).mean())
    return out


def eval_ar(model: Explainer, corpus: Corpus, batch: int = 50) -> dict:
    """Greedy autoregressive decoding over the corpus; timed decoding only."""
    torch.set_num_threads(1)
    results = []
    tokens, seconds, cpu = 0, 0.0, 0.0
    n = corpus.n
    for i in range(0, len(corpus), batch):
        sl = slice(i, i + batch)
        t0, c0 = time.perf_counter(), time.process_time()
        slots = ar_decode(model, corpus.puzzles[sl], corpus.solutions[sl])
        seconds, cpu = seconds + time.perf_counter() - t0, cpu + time.process_time() - c0
        for k, sample in enumerate(slots):
            tokens += sum(len(s) for s in sample)
            text, _ = render(sample)
            p, s = corpus.puzzles[i + k].reshape(n, n), corpus.solutions[i + k].reshape(n, n)
            results.append(check_explanation(p, s, text))
    return _summary(results, tokens, seconds, cpu)


def run_eval(checkpoint: str | Path | None = None, n: int = 500, size: int = 6, iters: int = 10,
             guided: bool = True) -> dict:
    """``sage eval language``: the figures of one checkpoint on ``n`` held-out puzzles."""
    model = load_model(checkpoint)
    corpus = held_out(size, n)
    if model.cfg.decoder == "ar":
        return {"decoder": "ar", "size": size, **eval_ar(model, corpus)}
    return {"decoder": "nat", "size": size, "iterations": iters, "guided": guided,
            **eval_nat(model, corpus, iters, guided)}
