"""Run in a subprocess by test_resume.py: `python resume_script.py MODE STORE_DIR OUT [SESSION]`.

MODE "reference" runs the session uninterrupted; "first" runs 60 rounds and checkpoints;
"resume" loads the checkpoint in this new process (with a different global RNG) and finishes.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orchestrator import Orchestrator, Pipeline  # noqa: E402
from sage_core import get_registry  # noqa: E402
from tests.orchestrator.conftest import _TestPlugins  # noqa: E402
from tests.orchestrator.fakes import make_store  # noqa: E402

get_registry().add(_TestPlugins(), name="orchestrator-test-plugins")


def pipeline():
    p = Pipeline("resume")
    p.add_node("noisy", "global_noise", config={"lr": 0.05}, halt={"max_steps": 80})
    p.add_node("seeded", "toy", config={"lr": 0.1, "noise": 1e-3}, seed=3, halt={"max_steps": 200})
    p.add_node("next", "toy", halt={"max_steps": 20, "threshold": 1e-12})
    p.add_node("pricey", "costly", config={"cost": 1.5, "lr": 0.02}, halt={"max_steps": 500})
    p.add_edge("noisy", "next")
    return p


def dump(result, out):
    save_file({name: node.state.x.contiguous() for name, node in result.nodes.items()}, out + ".safetensors")
    Path(out + ".json").write_text(json.dumps({
        "energies": {n: list(r.energies) for n, r in result.nodes.items()},
        "alloc": {n: r.allocation for n, r in result.nodes.items()},
        "reasons": {n: r.reason for n, r in result.nodes.items()},
        "trust": result.trust, "spent": result.atp_spent, "session": result.session,
    }))


def main():
    mode, root, out = sys.argv[1:4]
    store = make_store(Path(root))
    torch.manual_seed(1234)
    if mode == "reference":
        dump(Orchestrator(pipeline()).run(budget=400, session="ref"), out)
    elif mode == "first":
        o = Orchestrator(pipeline())
        session = o.start(budget=400, store=store, session="s1")
        for _ in range(60):
            o.step()
        o.checkpoint(store)
        Path(out + ".session").write_text(session)
    elif mode == "resume":
        torch.manual_seed(999)  # the checkpoint must restore the global RNG
        o = Orchestrator(pipeline())
        o.resume(store, sys.argv[4])
        dump(o.finish(), out)


if __name__ == "__main__":
    main()
