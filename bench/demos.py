"""The three demos' benchmarks in one run (issue 15): the visual puzzle solver
(``bench/demo_visual.py``: 200 held-out pictures per level, with and without feedback), the maze
robot (``bench/demo_robot.py``: 50 held-out mazes) and the stone throw (``bench/demo_throw.py``:
50 scenes). Each part is its own script and prints its own figures and targets; this runs them
one after another (one process each, so one's memory and threads do not weigh on the next).

    nice .venv/bin/python bench/demos.py [--visual-n 200] [--robot-n 50] [--throw-n 50] [--only robot]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {"visual": ("demo_visual.py", "visual_n", 200), "robot": ("demo_robot.py", "robot_n", 50),
         "throw": ("demo_throw.py", "throw_n", 50)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for part, (_, dest, default) in PARTS.items():
        parser.add_argument(f"--{part}-n", dest=dest, type=int, default=default, help=f"{part}: inputs [{default}]")
    parser.add_argument("--only", action="append", choices=sorted(PARTS), help="run only these parts")
    args = parser.parse_args()
    failed = []
    for part in args.only or list(PARTS):
        script, dest, _ = PARTS[part]
        print(f"\n=== {part}: bench/{script} --n {getattr(args, dest)} ===", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / script), "--n", str(getattr(args, dest))])
        print(f"({part}: {time.perf_counter() - t0:.0f} s)", flush=True)
        if done.returncode != 0:
            failed.append(part)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
