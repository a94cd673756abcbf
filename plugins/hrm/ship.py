"""Ship a trained run as a named checkpoint with a model card.

    python -m plugins.hrm.ship --run runs/sudoku4 --name sudoku4 [--n 1000]

Copies ``RUN/last/model.safetensors`` (weights + config metadata) to
``plugins/hrm/checkpoints/NAME/`` and writes ``card.md`` with the config, data seed,
training time, held-out accuracy (bare with ACT, bare always-max, IRP), the learning curve and
the command that reproduces it. ``--halt-margin auto`` picks the inference ACT margin on the
validation split first (:func:`~plugins.hrm.evaluate.tune_halt_margin`).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import attrs
import torch

from .checkpoint import CHECKPOINT_DIR, TRAIN_STATE, load_pretrained, load_train_state, read_metadata, save_model
from .evaluate import EVAL_SEED, run_eval, slice_distribution, tune_halt_margin
from .tasks import get_task
from .train import RECIPES, RUN_SUMMARY, TrainArgs, generate_mixture


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="the training run to ship (required unless --slices-only)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--slices-only", action="store_true",
                    help="measure the shipped checkpoint NAME on the input slices and add them to its card, nothing else")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--which", choices=["best", "last"], default="best",
                    help="RUN/best (highest validation exact) or RUN/last")
    ap.add_argument("--halt-margin", default=None, type=_margin_arg,
                    help="inference ACT margin: a number, or 'auto' to pick it on the validation split "
                         "(default: keep the trained config's)")
    ap.add_argument("--recipe", default=None,
                    help="the recipe the run used, for the reproduce command (default: as recorded by the run)")
    ap.add_argument("--hardware", default=None,
                    help="where the run trained, for the card (default: this machine, one core)")
    ap.add_argument("--slice-n", type=int, default=500, help="puzzles per input slice measured for the card")
    ap.add_argument("--max-segments", type=int, default=None,
                    help="inference ceiling on ACT segments (default: the trained config's); raising it is the "
                         "HRM paper's inference-time scaling, with no retraining")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.slices_only:
        add_slices(a.name, a.slice_n)
        return
    if a.run is None:
        ap.error("--run is required (or --slices-only)")
    run = Path(a.run)
    state = load_train_state(run)  # before any slow work: a wrong --run fails at once
    if state is not None:
        meta = state[1]
    elif (run / RUN_SUMMARY).is_file():  # the resumable state was not kept (e.g. brought back from an accelerator)
        meta = json.loads((run / RUN_SUMMARY).read_text())
    else:
        ap.error(f"{run} has neither a training state ({TRAIN_STATE}) nor a run summary ({RUN_SUMMARY}): "
                 "not a training run directory")
    which = a.which if (run / a.which / "model.safetensors").is_file() else "last"
    model = load_pretrained(run / which)
    picked = json.loads(read_metadata(run / which).get("extra", "{}"))
    trained_segments = model.cfg.max_segments
    if a.max_segments is not None:
        if a.max_segments < 1:
            ap.error(f"--max-segments must be >= 1, not {a.max_segments}")
        model.cfg = attrs.evolve(model.cfg, max_segments=a.max_segments)
    margin_table = None
    if a.halt_margin == "auto":
        task = get_task(model.cfg.task)
        dists = [None, *(slice_distribution(task, **kw) for kw in INPUT_SLICES.get(task.name, []))]
        margin, margin_table = tune_halt_margin(model, task, generate_mixture(task, a.n, EVAL_SEED + 1, "test", dists)[0])
        model.cfg = attrs.evolve(model.cfg, halt_margin=margin)
    elif a.halt_margin is not None:
        model.cfg = attrs.evolve(model.cfg, halt_margin=a.halt_margin)
    args = meta["args"]
    hardware = a.hardware or (f"a 2-core CPU, one torch thread, {platform.machine()}, torch {torch.__version__}"
                              if args.get("device", "cpu") == "cpu" and args.get("clock", "cpu") == "cpu"
                              else f"device {args.get('device', 'cpu')}, {platform.machine()}")
    dest = CHECKPOINT_DIR / a.name
    path = save_model(model, dest, extra={"it": picked.get("it", meta["it"]), "run_it": meta["it"],
                                         "train_seconds": meta["elapsed"], "data_seed": args["seed"]})
    for d in (CHECKPOINT_DIR, dest):  # packages, so that package-data "*.safetensors" ships them
        (d / "__init__.py").touch()
    size = path.stat().st_size
    assert size <= 5 * 1024 * 1024, f"checkpoint is {size} bytes > 5 MB"
    r = run_eval(model.cfg.task, checkpoint=str(path), n=a.n)
    slices = [run_eval(model.cfg.task, checkpoint=str(path), n=a.slice_n, **kw) for kw in INPUT_SLICES.get(model.cfg.task, [])]
    save_model(model, dest, extra={**json.loads(read_metadata(path)["extra"]), "eval_n": a.n, "eval_seed": r["seed"],
                                   "exact_bare": r["exact_bare"], "exact_irp": r["exact_irp"]})
    curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()] if (run / "curve.jsonl").exists() else []
    cfg = model.cfg.to_dict()
    recipe_name = a.recipe or args.get("recipe") or model.cfg.task
    rec = RECIPES[recipe_name]
    n_params = sum(p.numel() for p in model.parameters())
    overrides = {k: v for k, v in args["model"].items() if rec["model"].get(k) != v}
    defaults = attrs.asdict(TrainArgs())
    used = {k: args.get(k, defaults[k]) for k in ("n_train", "lr", "decay_start", "decay_iters", "grad_clip", "ema",
                                                   "device", "clock")}
    extra_opts = "".join(f" --{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f" --{k.replace('_', '-')} {v}"
                         for k, v in used.items() if v != rec.get(k, defaults[k]))
    cmd = (f"sage train hrm --task {recipe_name} --out runs/{a.name} --minutes 600 --seed {args['seed']}"
           f" --max-iters {picked.get('it', meta['it'])}{extra_opts}"
           + (f" --model '{json.dumps(overrides)}'" if overrides else ""))
    shipped_s = picked.get("elapsed_s", meta["elapsed"])  # CPU seconds of training behind the shipped weights
    lines = [
        f"# HRM checkpoint `{a.name}`",
        "",
        ("TRM-style variant (one network, halt head only) of the " if model.cfg.variant == "trm" else "")
        + f"Hierarchical Reasoning Model trained "
        + (f"from the shipped `{args['init']}` weights" if args.get("init") else "from scratch")
        + f" on `{model.cfg.task}` ({hardware}), {n_params:,} parameters, float32, `model.safetensors` "
        f"{size / 1024:.0f} KiB (config in the safetensors metadata; no pickle).",
        "",
        "## Held-out accuracy",
        "",
        f"`sage eval hrm --task {model.cfg.task} --checkpoint plugins/hrm/checkpoints/{a.name} --n {a.n}` "
        f"(test split, seed {r['seed']}; test puzzles are disjoint from every training puzzle by hash bucket):",
        "",
        "| metric | value |",
        "|---|---|",
        f"| exact, bare model, ACT halting | {r['exact_bare']:.4f} |",
        f"| exact, bare model, always {r['max_segments']} segments | {r['exact_bare_max']:.4f} |",
        f"| exact, IRP refinement (verified) | {r['exact_irp']:.4f} |",
        f"| cell accuracy (ACT answer vs label) | {r['cell_accuracy']:.4f} |",
        f"| mean segments with ACT (max {r['max_segments']}) | {r['mean_segments']:.2f} |",
        f"| IRP mean segments (cap {r['irp_max_steps']}) | {r['irp_mean_segments']:.2f} |",
        f"| eval puzzles/s (batch 256, all segments) | {r['puzzles_per_s']:.1f} |",
        "",
        "For Sudoku, exact = the decoded grid has zero violated constraints (equivalently equals the unique "
        "solution); for mazes, exact = a valid S->G path of shortest length.",
        "",
        *([f"Inference runs up to {model.cfg.max_segments} ACT segments; training ran up to {trained_segments} "
            "(the HRM paper's inference-time scaling: a higher segment ceiling at inference, same weights).", ""]
          if model.cfg.max_segments != trained_segments else []),
        *margin_lines(model.cfg.halt_margin, margin_table, a.n),
        *slice_lines(model.cfg.task, a.name, slices),
        "## Training",
        "",
        f"- data: task `{model.cfg.task}`, {args['n_train']} generated training puzzles, data seed {args['seed']}, "
        + (f"drawn evenly from {json.dumps(args['data'])} (tasks.Distribution; {{}} = the task's own), "
           if args.get("data") else "")
        + "augmented on the fly by task symmetries"
        + ("; a puzzle with several completions is labelled, at every step, with the completion nearest the "
           "model's answer (`sudoku.complete_guided`)" if args.get("relabel") else ""),
        f"- shipped weights: `{which}` of the run = iteration {picked.get('it', meta['it'])} "
        f"(`best` = highest exact on the validation split, test seed {EVAL_SEED + 1}, never the reported seed)",
        f"- {meta['it']} iterations in the run (one segment each, deep supervision) at batch {args['batch_size']}, "
        f"AdamW lr {args['lr']:g} (warmup {args['warmup']}, cosine decay to {args.get('lr_min_ratio', 0.1):g}x by iteration "
        f"{args.get('decay_iters', 0)} if > 0), weight decay {args['weight_decay']:g}"
        + (f", gradient norm clipped to {args['grad_clip']:g}" if args.get("grad_clip") else "")
        + (f", shipped weights are an EMA of the trained ones (decay {args['ema']:g})" if args.get("ema") else "")
        + "; "
        f"{meta['puzzles_done']} puzzles completed",
        f"- training time: {shipped_s / 60:.1f} min of "
        + ("CPU time" if args.get("clock", "cpu") == "cpu" else "wall time")
        + f" to the shipped weights (the training steps, excluding periodic evaluation) on {hardware}"
        + (f"; the run went on to {meta['elapsed'] / 60:.1f} min" if shipped_s < meta["elapsed"] else ""),
        "",
        "Reproduce:",
        "",
        "```",
        cmd,
        f"python -m plugins.hrm.ship --run runs/{a.name} --name {a.name}"
        + (f" --max-segments {a.max_segments}" if a.max_segments is not None else "")
        + (f" --halt-margin {a.halt_margin}" if a.halt_margin is not None else ""),
        "```",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(cfg, indent=2),
        "```",
        "",
        f"## Learning curve (held-out eval during training, {args.get('eval_n', 256)} puzzles)",
        "",
        "| iteration | minutes | exact (ACT) | exact (max) | mean segments |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {c['it']} | {c['minutes']:.1f} | {c['exact_bare']:.3f} | {c['exact_bare_max']:.3f} | {c['mean_segments']:.2f} |"
              for c in curve]
    notes = run / "NOTES.md"  # free-form notes on the run (sessions, deviations), appended verbatim
    if notes.is_file():
        lines += ["", "## Notes on this run", "", notes.read_text().strip()]
    (dest / "card.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(r))


#: The input slices every card reports beyond the task's own test set (issue: the HRM on every
#: input a user gives): Sudoku with more blanks than training used (several completions, any
#: valid one counts), mazes with S and G anywhere, by S-G distance bucket.
INPUT_SLICES: dict[str, list[dict]] = {
    "sudoku4": [{"blanks": (13, 15)}],
    "sudoku6": [{"blanks": (27, 30)}],
    "maze11": [{"sg_distance": b} for b in ((1, 2), (3, 5), (6, 10), (11, 20), (21, 10**6))],
}


def add_slices(name: str, n: int) -> None:
    """Measure the shipped checkpoint ``name`` on its task's input slices (n puzzles each) and put
    the section into its card, before ``## Training`` (replacing an earlier one)."""
    card = CHECKPOINT_DIR / name / "card.md"
    task = load_pretrained(CHECKPOINT_DIR / name).cfg.task
    slices = [run_eval(task, checkpoint=str(CHECKPOINT_DIR / name), n=n, **kw) for kw in INPUT_SLICES.get(task, [])]
    text = card.read_text()
    head, sep, rest = text.partition("## Every input (slices)")
    if sep:  # an earlier section: drop it up to the next heading
        rest = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head.rstrip("\n") + "\n\n" + rest.lstrip("\n")
    before, mark, after = text.partition("## Training")
    card.write_text(before + "\n".join(slice_lines(task, name, slices)) + "\n" + mark + after)
    print(f"{card}: {len(slices)} slices added")


def slice_lines(task: str, name: str, slices: list[dict]) -> list[str]:
    """Card section: bare and IRP exact on each input slice of :data:`INPUT_SLICES`."""
    if not slices:
        return []
    flag = "--blanks" if slices[0].get("blanks") else "--sg-distance"

    def label(r: dict) -> str:
        lo, hi = r["blanks"] or r["sg_distance"]
        return f"{lo}-{hi}" if hi < 10**6 else f"{lo}-"

    return ["## Every input (slices)", "",
            f"`sage eval hrm --task {task} --checkpoint plugins/hrm/checkpoints/{name} {flag} LO-HI --n {slices[0]['n']}` "
            "(test split, seed 9001; " + ("blanks drawn at random from a random grid, so a puzzle may have several "
                                          "completions and any valid one counts" if flag == "--blanks" else
                                          "S and G on any two open cells, centres or corridors, at that many moves")
            + "):", "",
            f"| {flag[2:]} | bare exact (ACT) | bare exact (always max) | IRP exact | mean segments (ACT) |",
            "|---|---|---|---|---|",
            *(f"| {label(r)} | {r['exact_bare']:.4f} | {r['exact_bare_max']:.4f} | {r['exact_irp']:.4f} | "
              f"{r['mean_segments']:.2f} of {r['max_segments']} |" for r in slices), ""]


def _margin_arg(text: str) -> str | float:
    """``--halt-margin``: 'auto' or a number."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def margin_lines(margin: float, table: list[dict[str, float]] | None, n: int) -> list[str]:
    """Card paragraph on the inference ACT rule and, when it was searched, the validation
    figures of the reference rule (margin 0), of the pick and of the largest margin tried."""
    if table is None and margin == 0:
        return []
    text = (f"ACT at inference halts when q_halt - q_continue > {margin:g} (the reference rule is > 0; "
            "training always uses the reference rule).")
    if table is None:
        return [text, ""]
    rows = {row["margin"]: row for row in table if row["margin"] in (0.0, margin, table[-1]["margin"])}
    return [text + f" The margin was picked on {n} validation puzzles (seed {EVAL_SEED + 1}; drawn evenly from the "
            "task's own distribution and each input slice below) as the one with the highest bare exact, ties to "
            "fewer segments:", "",
            "| margin | validation exact (ACT) | mean segments |", "|---|---|---|",
            *(f"| {m:g} | {row['exact']:.3f} | {row['mean_segments']:.2f} |" for m, row in sorted(rows.items())), ""]


if __name__ == "__main__":
    main()
