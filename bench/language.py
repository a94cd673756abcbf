"""Benchmark of the language plugin: mask-predict explanations (energy-guided and plain
confidence re-masking, 1, 2, 4 and 10 iterations) side by side with the autoregressive decoder
of the same size trained on the same data for the same CPU time, on held-out 6x6 and 4x4
puzzles (seed 9001). Each configuration runs in its own process with one torch thread
(``--workers`` at a time), so timings compare one core against one core. Speed is output
tokens per CPU-second of the decoding process (robust on a shared machine) and per wall second;
the ratio at equal truth uses CPU-seconds.

    .venv/bin/python bench/language.py                  # 500 puzzles per size, shipped nat / ar
    .venv/bin/python bench/language.py --n 50 --workers 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor


def _run(job: tuple[str, int, int, int, bool, str]) -> dict:
    decoder, size, n, iters, guided, ckpt = job
    import torch

    torch.set_num_threads(1)
    from plugins.language.checkpoint import load_model
    from plugins.language.evaluate import eval_ar, eval_nat, held_out

    model = load_model(ckpt)
    corpus = held_out(size, n)
    if decoder == "ar":
        r = eval_ar(model, corpus)
        return {"decoder": "ar", "size": size, "iters": None, "mode": "autoregressive", **r}
    r = eval_nat(model, corpus, iters, guided)
    return {"decoder": "nat", "size": size, "iters": iters, "mode": "guided" if guided else "plain", **r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="held-out puzzles per size")
    ap.add_argument("--sizes", default="6,4")
    ap.add_argument("--iters", default="1,2,4,10")
    ap.add_argument("--nat", default="nat", help="mask-predict checkpoint")
    ap.add_argument("--ar", default="ar", help="autoregressive checkpoint")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", dest="json_out", default=None, help="also write the rows here")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    iters = [int(s) for s in a.iters.split(",")]
    jobs = [("ar", s, a.n, 0, False, a.ar) for s in sizes]
    jobs += [("nat", s, a.n, k, g, a.nat) for s in sizes for g in (True, False) for k in iters]
    jobs.sort(key=lambda j: -(j[1] ** 2 * max(j[3], 3)))  # longest first
    rows = []
    with ProcessPoolExecutor(a.workers) as pool:
        for row in pool.map(_run, jobs):  # rows kept as they come, so a stopped run leaves its figures
            rows.append(row)
            if a.json_out:
                with open(a.json_out, "w") as fh:
                    json.dump(rows, fh, indent=1)
    print(f"held-out puzzles per size: {a.n}; one torch thread per configuration")
    head = f"{'size':>4} {'decoder':>15} {'iters':>5} {'claims true':>11} {'entirely':>8} {'coverage':>8} " \
           f"{'parse fail':>10} {'mean it':>7} {'tok/CPU-s':>9} {'tok/s wall':>10}"
    print(head)
    for s in sizes:
        for r in sorted((r for r in rows if r["size"] == s), key=lambda r: (r["mode"], r["iters"] or 0)):
            print(f"{s:>4} {r['mode']:>15} {r['iters'] or '-':>5} {r['claims_true']:>11.4f} {r['entirely_true']:>8.4f} "
                  f"{r['coverage']:>8.4f} {r['parse_failures']:>10} {r.get('mean_iterations', float('nan')):>7.2f} "
                  f"{r['tokens_per_cpu_s']:>9.0f} {r['tokens_per_s']:>10.0f}")
    for s in sizes:
        ar = next(r for r in rows if r["size"] == s and r["decoder"] == "ar")
        guided = {r["iters"]: r for r in rows if r["size"] == s and r["mode"] == "guided"}
        plain = {r["iters"]: r for r in rows if r["size"] == s and r["mode"] == "plain"}
        k = max(iters)
        print(f"{s}x{s}: entirely true within {k} iterations: guided {guided[k]['entirely_true']:.4f}, "
              f"plain {plain[k]['entirely_true']:.4f} (target >= 0.99 for 6x6; guided > plain)")
        equal = [i for i in iters if guided[i]["entirely_true"] >= ar["entirely_true"]]
        if equal:
            i = min(equal)
            print(f"{s}x{s}: at equal truth (guided, {i} iterations, {guided[i]['entirely_true']:.4f} >= "
                  f"autoregressive {ar['entirely_true']:.4f}): {guided[i]['tokens_per_cpu_s']:.0f} vs "
                  f"{ar['tokens_per_cpu_s']:.0f} tokens/CPU-s = "
                  f"{guided[i]['tokens_per_cpu_s'] / ar['tokens_per_cpu_s']:.2f}x (target >= 2x)")
        else:
            print(f"{s}x{s}: mask-predict never reaches the autoregressive decoder's truth "
                  f"({ar['entirely_true']:.4f} entirely true)")


if __name__ == "__main__":
    main()
