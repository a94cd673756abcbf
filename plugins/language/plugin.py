"""LanguageExplainer: the ``language`` IRP plugin, text that explains a solution claim by claim.

Sudoku (4x4, 6x6): one IRP step is one mask-predict iteration of the trained model: re-mask
slot tokens and predict them again, each slot projected onto the claim grammar (the well-formed
claim the model scores highest that is not banned; ``grammar=False`` for raw argmax tokens).
Energy-guided (the default) re-masks only what the checker rejected (a rejected claim's tokens,
its digit kept where it is right; the order keys of verified claims that depend on it) and bans
what the rejection rules out: a wrong digit everywhere, a right digit's claims at the order keys
where they would not hold given the other claims (:func:`plugins.language.decode.guide`).
Plain re-masking takes the least confident tokens (N (T - t) / T of them at iteration t of
T = ``max_steps``).
Energy = false claims + blank cells no claim speaks of + (1 - mean token confidence) of the
best text so far (the one ``output`` gives; refinement continues from the current tokens), so
energy < 1 means every claim is verified. Mazes and world plans are phrased by the symbolic
explainer in one step and checked the same way.

State ``x``: ``puzzle``/``solution`` (n*n,), ``tokens`` (S, SLOT_LEN) int64, ``conf`` float32,
``rejected`` (S,) bool, ``choice`` (S,) each slot's claim (key, digit, reason) index and
``banned`` (S, claims) the claims the checker rejected there (maze: ``maze``, ``path``; plan:
``figures``); ``meta``: the text, the
checker's counts and the settings. Steps are deterministic (argmax), so a resumed session is
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

import sage_core
from sage_core import HaltDecision, IRPPlugin, IRPState
from sage_core.halting import Plateau
from sage_core.history import EnergyHistory

from plugins.puzzles import maze, sudoku
from plugins.puzzles.claims import CheckResult, check_explanation
from plugins.puzzles.explain import check_solved, maze_text, path_cells

from .checkpoint import DEFAULT, load_model
from .corpus import encoder_inputs
from .decode import blank_cells, guide, initial_tokens, judge, predict, remask, schedule, slot_digits
from .grammar import n_semantics
from .plan import check_plan, plan_figures, plan_text
from .summary import summarize
from .vocab import SIZES, SLOT_LEN

STYLES = ("steps", "summary")


def parse_input(x0: Any) -> tuple[str, dict[str, Any]]:
    """(kind, fields) of an input: ``sudoku`` (puzzle, solution grids), ``maze`` (lines, path
    cells) or ``plan`` (figures); a ValueError naming the problem otherwise."""
    if not isinstance(x0, Mapping):
        raise ValueError(f"language input must be a dict (a solved puzzle or a plan), got {type(x0).__name__}")
    if "puzzle" not in x0:
        return "plan", {"figures": plan_figures(x0)}
    if "solution" not in x0 or x0["solution"] is None:
        raise ValueError("solved puzzle has no 'solution': the puzzle is unsolved")
    if x0.get("verified") is False:
        raise ValueError("solved puzzle is marked verified=False: explain only verified solutions")
    puzzle = x0["puzzle"]
    if isinstance(puzzle, (list, tuple)) and puzzle and all(isinstance(r, str) for r in puzzle):
        grid = maze.parse(list(puzzle))
        cells = path_cells(grid, x0["solution"])
        if maze.violations(_mask(grid, cells), grid):
            raise ValueError("maze path is not a shortest path from S to G")
        return "maze", {"maze": list(puzzle), "path": np.asarray(cells, dtype=np.int64)}
    p, s = check_solved(puzzle, x0["solution"])
    if p.shape[0] not in SIZES:
        raise ValueError(f"Sudoku size {p.shape[0]}x{p.shape[0]} not supported by the language model: "
                         f"expected one of {[f'{n}x{n}' for n in SIZES]}")
    return "sudoku", {"puzzle": p.reshape(-1), "solution": s.reshape(-1)}


def _mask(grid: np.ndarray, cells: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(grid.shape, dtype=bool)
    for r, c in cells:
        mask[r, c] = True
    return mask


class LanguageExplainer(IRPPlugin):
    """Explains a solved Sudoku (mask-predict model), a maze path or a world plan in checked text."""

    name: ClassVar[str] = "language"
    version: ClassVar[str] = "1.0.0"
    api_version: ClassVar[int] = sage_core.API_VERSION
    input_kind: ClassVar[tuple[str, ...]] = ("solved_puzzle", "plan")
    output_kind: ClassVar[str] = "text"

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        p, s = sudoku.make_puzzle(4, np.random.default_rng(0))
        return {"puzzle": p.tolist(), "solution": s.tolist(), "verified": True}, {"max_steps": 4}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        kind, fields = parse_input(x0)
        style = ctx.get("style", "steps")
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        max_steps = int(ctx.get("max_steps", 10))
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        max_len = ctx.get("max_len")
        meta = {"kind": kind, "style": style, "max_len": None if max_len is None else int(max_len),
                "max_steps": max_steps, "guided": bool(ctx.get("guided", True)),
                "grammar": bool(ctx.get("grammar", True)),
                "checkpoint": str(ctx.get("checkpoint", DEFAULT)), "text": "", "n_false": 0, "missing": 0}
        if kind == "sudoku":
            cells = blank_cells(fields["puzzle"][None])[0]
            tokens, conf = initial_tokens(cells[None])
            n = int(round(len(fields["puzzle"]) ** 0.5))
            x = {**fields, "tokens": tokens[0].numpy(), "conf": conf[0].numpy().astype(np.float32),
                 "rejected": np.zeros(len(cells), dtype=bool), "choice": np.full(len(cells), -1, dtype=np.int64),
                 "banned": np.zeros((len(cells), n_semantics(n)), dtype=bool)}
            meta["missing"] = len(cells)
            energy = len(cells) + 1.0
        else:
            x, energy = fields, 1.0
            meta["missing"] = 1
        return IRPState(x=x, step=0, energy=energy, meta=meta)

    def energy(self, state: IRPState) -> float:
        return float(state.energy)

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        m = state.meta
        if m["kind"] != "sudoku":
            return self._symbolic(state)
        x = state.x
        n = int(round(len(x["puzzle"]) ** 0.5))
        model = load_model(m["checkpoint"])
        cells = blank_cells(x["puzzle"][None])
        tokens, conf = torch.as_tensor(x["tokens"])[None], torch.as_tensor(x["conf"])[None]
        choice, banned = torch.as_tensor(x["choice"])[None], torch.as_tensor(x["banned"]).clone()[None]
        if state.step:
            count = schedule((cells >= 0).sum(1) * SLOT_LEN, state.step, m["max_steps"])
            rejected = rekey = keep_digit = None
            if m["guided"]:
                rejected = torch.as_tensor(x["rejected"])[None]
                rekey, keep_digit = guide(banned, rejected, choice, slot_digits(x["solution"][None], cells),
                                          [(x["puzzle"].reshape(n, n), x["solution"].reshape(n, n))], cells)
            tokens = remask(tokens, conf, cells, count, rejected, rekey, keep_digit)
        enc = encoder_inputs(x["puzzle"][None], x["solution"][None])
        with torch.no_grad():
            mem = model.encode(enc["given"], enc["digit"])
        tokens, conf, choice = predict(model, mem, cells, tokens, conf, choice,
                                       banned if m["guided"] else None, m["grammar"])
        j = judge(x["puzzle"].reshape(n, n), x["solution"].reshape(n, n), tokens[0], cells[0], conf[0])
        new_x = {**x, "tokens": tokens[0].numpy(), "conf": conf[0].numpy().astype(np.float32),
                 "rejected": j.rejected, "choice": choice[0].numpy(), "banned": banned[0].numpy()}
        if j.energy >= state.energy:  # keep the best text so far; refinement goes on from the current one
            return state.evolve(x=new_x, step=state.step + 1, meta={**m, "current_energy": float(j.energy)})
        return state.evolve(x=new_x, step=state.step + 1, energy=float(j.energy),
                            meta={**m, **self._counts(j.result), "text": j.text, "current_energy": float(j.energy)})

    def _symbolic(self, state: IRPState) -> IRPState:
        """Maze or plan: the symbolic explainer's text, checked."""
        x, m = state.x, state.meta
        if m["kind"] == "maze":
            grid = maze.parse(x["maze"])
            text = maze_text(grid, x["path"])
            result = check_explanation(x["maze"], x["path"], text)
        else:
            text = plan_text(x["figures"])
            result = check_plan(x["figures"], text)
        return state.evolve(step=state.step + 1, energy=float(result.n_false),
                            meta={**m, **self._counts(result), "text": text})

    @staticmethod
    def _counts(result: CheckResult) -> dict[str, int]:
        return {"n_false": result.n_false, "missing": len(result.missing), "n_claims": len(result.claims)}

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        """Verified text (energy < 1) or the step limit, read off the state."""
        if state.step and state.energy is not None and state.energy < 1.0:
            return HaltDecision("verified", f"every claim verified after {state.step} step(s)")
        if state.step >= state.meta["max_steps"]:
            return HaltDecision("max_steps", f"reached {state.meta['max_steps']} steps")
        return None

    def halt(self, history: EnergyHistory) -> HaltDecision | None:
        """Plateau: the (best) energy did not move over the last four steps."""
        return Plateau(1e-9, window=4).check(history)

    def output(self, state: IRPState) -> str:
        """The text in the session's style, cut to ``max_len`` characters at a claim boundary."""
        m = state.meta
        text = m["text"]
        if m["style"] == "summary" and m["kind"] == "sudoku" and text:
            n = int(round(len(state.x["puzzle"]) ** 0.5))
            text = summarize(state.x["puzzle"].reshape(n, n), state.x["solution"].reshape(n, n), text)
        limit = m["max_len"]
        if limit is None or len(text) <= limit:
            return text
        lines, out = text.split("\n"), ""
        for i, line in enumerate(lines):
            more = f"\n... ({len(lines) - i} more)"
            if len(out) + len(line) + 1 + len(more) > limit:
                return (out + more).lstrip("\n")[:limit]
            out += ("\n" if out else "") + line
        return out

    @staticmethod
    def checked_claims(state: IRPState) -> list[tuple[str, bool]]:
        """Each claim of the current text with the claim checker's verdict (True: it holds)."""
        x, m = state.x, state.meta
        if m["kind"] == "plan":
            result = check_plan(x["figures"], m["text"])
        elif m["kind"] == "maze":
            result = check_explanation(x["maze"], x["path"], m["text"])
        else:
            n = int(round(len(x["puzzle"]) ** 0.5))
            result = check_explanation(x["puzzle"].reshape(n, n), x["solution"].reshape(n, n), m["text"])
        return [(claim.text, claim.true) for claim in result.claims]
