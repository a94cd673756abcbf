"""HRM export benchmark: ms per ACT segment at batch 1 and 64 for the eager serving forward
(FastSegment), ONNX Runtime float32 and int8, TorchScript (and optionally torch.compile), in one
run with the same thread count; held-out exact accuracy of each; file sizes.

    python bench/export.py [--checkpoint sudoku4] [--threads 2] [--repeats 5] [--n 1000]
                           [--compile] [--json]

Targets (issue 19): batch-1 segment <= 0.6 ms with some runtime; batch 64 no slower than
eager; float32 parity <= 1e-4 on logits; int8 within 0.5 points of float exact accuracy.

Timing: in each repeat every runner is timed in turn on the same inputs and carry (batch 1:
200 calls, batch 64: 10 calls, after a warm-up call), so they share the machine's load; the
table gives the median over repeats and the range. The machine is shared, so the load average
is printed before and after. Accuracy: bare exact (ACT halting) on ``--n`` held-out puzzles
(test split, evaluation seed), run through each runner by the same evaluation code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from plugins.hrm.checkpoint import load_pretrained, resolve
from plugins.hrm.export import export_checkpoint, held_out_accuracy, load_runner
from plugins.hrm.graph import SegmentGraph
from plugins.hrm.inference import FastSegment
from plugins.hrm.tasks import get_task
from plugins.hrm.evaluate import EVAL_SEED

CALLS = {1: 200, 64: 10}


def _compiled(model):
    """torch.compile of the export graph (inductor, CPU), with the runners' call signature."""
    graph = torch.compile(SegmentGraph(model).eval(), dynamic=False)

    def run(carry, inputs):
        with torch.inference_mode():
            z_H, z_L, logits, qh, qc = graph(inputs, carry["z_H"], carry["z_L"])
        return {"z_H": z_H, "z_L": z_L}, logits, qh, qc

    return run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="sudoku4")
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000, help="held-out puzzles for accuracy")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    model = load_pretrained(args.checkpoint)
    cfg = model.cfg
    tmp = Path(tempfile.mkdtemp(prefix="hrm-export-bench-"))
    quiet = lambda _: None  # noqa: E731
    files = {"checkpoint (safetensors)": resolve(args.checkpoint)}
    infos = {}
    for name, fmt, int8, suffix in (("ORT fp32", "onnx", False, ".onnx"), ("ORT int8", "onnx", True, "_int8.onnx"),
                                    ("TorchScript", "torchscript", False, ".pt")):
        files[name] = tmp / f"{args.checkpoint}{suffix}"
        infos[name] = export_checkpoint(args.checkpoint, fmt, files[name], int8=int8, n_eval=args.n,
                                        threads=args.threads, log=quiet)
    runners = {"eager FastSegment": FastSegment(model)}
    for name in infos:
        runners[name] = load_runner(files[name], threads=args.threads, trusted=True)[1]  # files made above
    compile_s = {}
    if args.compile:
        runners["torch.compile"] = _compiled(model)
    x_all, _ = get_task(cfg.task).generate(64, EVAL_SEED, "test")
    feeds = {b: (model.initial_carry(b), torch.as_tensor(x_all[:b])) for b in CALLS}
    for name, run in runners.items():  # warm up (and compile) every runner at both sizes
        t0 = time.perf_counter()
        for carry, x in feeds.values():
            run(carry, x)
        compile_s[name] = time.perf_counter() - t0
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in CALLS} for name in runners}
    for _ in range(args.repeats):
        for b, (carry, x) in feeds.items():
            for name, run in runners.items():
                t0 = time.perf_counter()
                for _ in range(CALLS[b]):
                    run(carry, x)
                times[name][b].append((time.perf_counter() - t0) / CALLS[b] * 1e3)
    acc = {name: held_out_accuracy(model, run, n=args.n)["exact_bare"] for name, run in runners.items()}
    out = {
        "checkpoint": args.checkpoint, "threads": args.threads, "repeats": args.repeats, "n": args.n,
        "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0],
        "ms": {name: {str(b): {"median": statistics.median(t), "min": min(t), "max": max(t)} for b, t in bt.items()}
               for name, bt in times.items()},
        "exact_bare": acc,
        "first_call_s": compile_s,
        "bytes": {name: Path(p).stat().st_size for name, p in files.items()},
        "parity_logits": {name: info.parity["logits"] for name, info in infos.items()},
        "int8_accuracy_check": infos["ORT int8"].accuracy,
    }
    if args.json:
        print(json.dumps(out))
        return out
    print(f"checkpoint {args.checkpoint}, {args.threads} threads (torch and ONNX Runtime), {args.repeats} repeats, "
          f"load average {load_before:.1f} before / {out['load_avg_after']:.1f} after")
    print(f"{'runtime':<20}{'batch 1 ms (range)':>24}{'batch 64 ms (range)':>26}{'exact %':>10}{'logit parity':>14}")
    for name in runners:
        cells = [f"{m['median']:.3f} ({m['min']:.3f}-{m['max']:.3f})" for m in out["ms"][name].values()]
        par = out["parity_logits"].get(name)
        print(f"{name:<20}{cells[0]:>24}{cells[1]:>26}{100 * acc[name]:>10.1f}{'' if par is None else f'{par:.1e}':>14}")
    if args.compile:
        print(f"torch.compile first calls (compiling batch 1 and 64): {compile_s['torch.compile']:.1f} s")
    print("file sizes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in out["bytes"].items()))
    return out


if __name__ == "__main__":
    main()
