"""Benchmark of ``sage demo throw`` (issue #15, demo 3): N seeded scenes end to end.

Per scene: the MuJoCo scene rendered headless (640 x 480), the ``vision_scene`` reader locating
the marker through the known camera, the ``world`` planner's throw with drag, both run by the
orchestrator from examples/pipelines/stone_throw.toml, and the plan replayed in MuJoCo. Printed:
target localisation error (cm), landing error in MuJoCo against the true target (cm; goal <= 10
cm) and against the plan's own predicted landing, and end-to-end seconds per scene (rendering,
pipeline and replay; pictures not drawn).

Needs the mujoco extra. Run: ``.venv/bin/python bench/demo_throw.py`` (``--n 10`` for fewer
scenes, ``--seed`` for the first seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.world import models as _headless  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)
from orchestrator.demo import read_spec  # noqa: E402
from orchestrator.demo_throw import GOAL, throw_once  # noqa: E402


def main() -> None:
    """Run the scenes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="scenes (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    args = parser.parse_args()
    spec = read_spec("stone_throw.toml")
    throw_once(spec, args.seed)  # warm-up: imports, the renderer's first context, torch.func
    rows = []
    for seed in range(args.seed, args.seed + args.n):
        o = throw_once(spec, seed)
        rows.append((o.localisation_error, o.landing_error, o.plan_gap, o.seconds))
        print(f"seed {seed:3d}: target {np.hypot(*o.target[:2]):5.2f} m, located {o.localisation_error * 100:5.2f} cm, "
              f"lands {o.landing_error * 100:5.2f} cm from the target ({o.plan_gap * 100:.3f} cm from the plan), "
              f"{o.seconds:.2f} s", flush=True)
    loc, land, gap, secs = (np.array(c) * s for c, s in zip(zip(*rows), (100, 100, 100, 1)))
    print(f"\nstone throw, {args.n} scenes (seeds {args.seed}-{args.seed + args.n - 1}):")
    print(f"  target localisation error: mean {loc.mean():.2f} cm, max {loc.max():.2f} cm")
    print(f"  landing error in MuJoCo:   mean {land.mean():.2f} cm, max {land.max():.2f} cm, "
          f"{np.mean(land <= GOAL * 100):.0%} within {GOAL * 100:.0f} cm")
    print(f"  MuJoCo vs planned landing: mean {gap.mean():.3f} cm, max {gap.max():.3f} cm")
    print(f"  end to end: mean {secs.mean():.2f} s, median {np.median(secs):.2f} s, max {secs.max():.2f} s per scene")


if __name__ == "__main__":
    main()
