"""Benchmark of the vision plugin on held-out images (evaluation fonts, evaluation seed).

Per level (clean, mild, hard) and case (4x4, 6x6, 9x9 Sudoku, 11x11 maze): accuracy on digit
cells (S/G for mazes) and on blank cells (open/wall), share of grids read exactly, and ms per grid,
for the encoder alone, after latent refinement and with solver feedback. Tesseract 5 (psm 10,
digit whitelist) reads the same cell crops side by side in the same run when it is installed
(``apt-get install tesseract-ocr``); it is slow (seconds per grid), so it reads the first
``--tesseract-n`` images of each Sudoku case. ``--solve`` adds mild 6x6 images solved end to end
through the HRM (vision -> hrm through the plugin registry, with the HRM's complaint fed back).

    .venv/bin/python bench/vision.py                 # 200 images per level and case
    .venv/bin/python bench/vision.py --n 50 --level mild --solve
    .venv/bin/python bench/vision.py --checkpoint runs/vision3/model.safetensors   # a candidate model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import torch

from plugins.vision import data
from plugins.vision.evaluate import CASES, STAGES, evaluate, solve_end_to_end
from plugins.vision.image import to_gray
from plugins.vision.locate import cells, locate


def tesseract_cell(patch: np.ndarray, folder: str) -> int:
    """Tesseract's digit for one cell crop (darkness patch), 0 when it reads nothing."""
    from PIL import Image

    inner = patch[3:-3, 3:-3]  # without the grid-line fragments at the cell's edges
    img = Image.fromarray((255 - 255 * inner).astype(np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)
    framed = Image.new("L", (136, 136), 255)
    framed.paste(img, (20, 20))
    path = os.path.join(folder, "cell.png")
    framed.save(path)
    out = subprocess.run(["tesseract", path, "stdout", "--psm", "10", "-c", "tessedit_char_whitelist=123456789"],
                         capture_output=True, text=True, timeout=30).stdout
    digits = [c for c in out if c.isdigit()]
    return int(digits[0]) if digits else 0


def tesseract_case(size: int, level: str, n: int) -> dict[str, float]:
    """Tesseract on the cell crops our locator cuts from the first ``n`` images of a case."""
    right_d = total_d = right_b = total_b = exact = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        for s in data.eval_samples("sudoku", size, level, n):
            truth = data.labels(s.grid, "sudoku")
            patches = cells(locate(to_gray(s.image), kind="sudoku", size=size))
            got = np.array([tesseract_cell(p, folder) for p in patches])
            ok = got == truth
            digit = truth > 0
            right_d, total_d = right_d + int(ok[digit].sum()), total_d + int(digit.sum())
            right_b, total_b = right_b + int(ok[~digit].sum()), total_b + int((~digit).sum())
            exact += int(ok.all())
    return {"digit_acc": right_d / total_d, "blank_acc": right_b / total_b, "exact": exact / n,
            "ms_per_grid": 1000 * (time.perf_counter() - t0) / n, "n": n,
            "cpu_ms_per_grid": 1000 * (time.process_time() - c0) / n}  # Tesseract's own CPU is in child processes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="images per level and case")
    ap.add_argument("--level", action="append", choices=["clean", "mild", "hard"], help="repeatable [all]")
    ap.add_argument("--tesseract-n", type=int, default=10, help="images per Sudoku case for Tesseract (0 = skip)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 = this machine's cores)")
    ap.add_argument("--solve", action="store_true", help="also solve mild 6x6 images end to end through the HRM")
    ap.add_argument("--checkpoint", default=None, help="a cell model .safetensors (default: the shipped one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    levels = args.level or ["clean", "mild", "hard"]
    print(f"vision bench: {args.n} held-out images per level and case, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, model {args.checkpoint or 'shipped'}")
    results = evaluate(levels, CASES, n=args.n, checkpoint=args.checkpoint)
    have_tesseract = shutil.which("tesseract") is not None and args.tesseract_n > 0
    tess: dict[str, dict[str, float]] = {}
    if have_tesseract:
        for level in levels:
            for kind, size in CASES:
                if kind == "sudoku":
                    tess[f"{level}/{kind}{size}"] = tesseract_case(size, level, min(args.tesseract_n, args.n))
    print(f"{'case':>16} {'reader':>10} {'digits':>9} {'blanks':>9} {'exact':>7} {'ms/grid':>9} {'CPU ms':>8}")
    for key, r in results.items():
        rows = [(stage, r[stage]) for stage in STAGES]
        if key in tess:
            rows.append(("tesseract*", tess[key]))
        for name, s in rows:
            print(f"{key:>16} {name:>10} {s['digit_acc']:9.4%} {s['blank_acc']:9.4%} {s['exact']:7.1%} "
                  f"{s['ms_per_grid']:9.1f} {s.get('cpu_ms_per_grid', float('nan')):8.1f}")
        if r["not_found"]:
            print(f"{key:>16} grids not located or sized right: {r['not_found']} of {r['n']}")
    if have_tesseract:
        print(f"* Tesseract read the first {args.tesseract_n} images of each Sudoku case (same cell crops)")
    else:
        why = "--tesseract-n 0" if args.tesseract_n <= 0 else "`tesseract` is not installed (apt-get install tesseract-ocr)"
        print(f"Tesseract column skipped: {why}")
    out = {"reading": results, "tesseract": tess}
    if args.solve:
        out["solve"] = s = solve_end_to_end(n=args.n, checkpoint=args.checkpoint)
        print(f"end to end, mild 6x6 through the HRM: {s['solved']:.1%} solved of {s['n']} "
              f"({s['fed_back']} fed back), {s['ms_per_grid']:.0f} ms per image")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
