"""VisionReader: reads a Sudoku or maze image into the grid the HRM takes, as an IRP plugin.

``init_state`` locates and rectifies the grid, cuts the cells and encodes each into a latent
(class logits + style). One IRP step is one analysis-by-synthesis iteration on the cells that
have not settled (see :mod:`plugins.vision.refine`), after the encoder has read each of them
once more through the next of :data:`VIEWS`; a cell settles once one class holds
:data:`SETTLE` of its probability. ``receive(state, "cell_conflicts", mask)`` re-reads the cells
a solver flags under the puzzle's constraints (:mod:`plugins.vision.feedback`).

State: ``x`` = {"cells" (N, CELL, CELL), "logits" (N, 14), "style" (N, S), "prior" (N, 14)
encoder log-probabilities (averaged over the looks so far), "energy" (N,) per cell, "settled"
(N,) bool, "views" (len(VIEWS), M, CELL, CELL) the further looks at the M cells unsettled at
the start, "view_of" (N,) each cell's row in them or -1}, all torch tensors;
``meta`` = kind, size, corners, current ``reading`` (the output grid), step limits, feedback count.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

import sage_core
from sage_core import HaltDecision, IRPPlugin, IRPState

from . import feedback, refine, showcase
from .image import ImageError, to_gray
from .locate import cells, locate
from .model import MAZE_BASE, CellNet, allowed, load

SETTLE = 0.99
#: The further looks at an unsettled cell, one per refinement step: (dx, dy) pixels and zoom
#: (a little closer, a little wider, one pixel to each side). Each look's belief joins the
#: cell's prior (the mean of the log-probabilities read so far) before the latent step.
VIEWS = ((0.0, 0.0, 0.92), (0.0, 0.0, 1.08), (1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (0.0, -1.0, 1.0))
DEFAULT_MAX_STEPS = len(VIEWS)
OUT_OF_RANGE = 0.9  #: confidence above which a digit beyond the grid's size is an input error
CHECKPOINT = Path(__file__).parent / "checkpoints" / "cells" / "model.safetensors"
KINDS = {"sudoku": "sudoku_grid", "maze": "maze_grid"}
_MAZE_CHARS = {0: "#", 1: " ", 2: "S", 3: "G"}


@functools.lru_cache(maxsize=4)
def cell_model(path: str | None = None) -> CellNet:
    """The cell model at ``path`` (default: the shipped one), loaded once."""
    model, _ = load(path or CHECKPOINT)
    return model


def reading_of(classes: np.ndarray, kind: str, size: int) -> Any:
    """The grid in the HRM's format: n x n ints (0 = blank) or maze strings."""
    grid = np.asarray(classes).reshape(size, size)
    if kind == "sudoku":
        return grid.astype(int).tolist()
    return ["".join(_MAZE_CHARS[int(c) - MAZE_BASE] for c in row) for row in grid]


def _check_digits(logits: torch.Tensor, kind: str, size: int) -> None:
    """Refuse a Sudoku whose cell surely shows a digit above its size (a 7 in a 4x4 grid)."""
    if kind != "sudoku" or size == 9:
        return
    p = torch.softmax(logits[:, :MAZE_BASE], -1)
    top = p.argmax(-1)
    bad = torch.nonzero((top > size) & (p.max(-1).values > OUT_OF_RANGE)).squeeze(1)
    if len(bad):
        i = int(bad[0])
        raise ImageError(f"digit outside 1..{size}: cell ({i // size}, {i % size}) of the {size} x {size} "
                         f"Sudoku shows a {int(top[i])}")


class VisionReader(IRPPlugin):
    """Reads Sudoku (4x4, 6x6, 9x9) and maze images cell by cell; refines by analysis by synthesis."""

    name: ClassVar[str] = "vision"
    version: ClassVar[str] = "1.0.0"
    api_version: ClassVar[int] = sage_core.API_VERSION
    input_kind: ClassVar[str] = "image"
    output_kind: str = "sudoku_grid"
    #: what ``receive`` takes: a pipeline's feedback edge into it is kind-checked when built
    context_kinds: ClassVar[dict[str, str]] = {"cell_conflicts": "cell_conflicts", "conflicts": "cell_conflicts"}

    def __init__(self, checkpoint: str | None = None, kind: str | None = None, max_steps: int | None = None) -> None:
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be 'sudoku', 'maze' or None (auto), got {kind!r}")
        self.checkpoint = checkpoint
        self.kind = kind
        self.output_kind = KINDS[kind or "sudoku"]
        self.max_steps = max_steps

    @property
    def model(self) -> CellNet:
        return cell_model(self.checkpoint)

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """A small rendered, noisy 4x4 Sudoku (numpy only: no Pillow needed) for the conformance kit."""
        from .examples import example_image

        return example_image(), {"seed": 0}

    # --- contract -----------------------------------------------------------------------
    def init_state(self, image: Any, ctx: Mapping[str, Any]) -> IRPState:
        kind = ctx.get("kind", self.kind)
        size = ctx.get("size")
        if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool)):
            raise ValueError(f"size must be an int (4, 6, 9 for Sudoku; odd for mazes), got {size!r}")
        found = locate(to_gray(image), kind=kind, size=None if size is None else int(size))
        patches = torch.from_numpy(cells(found))
        mask = allowed(found.kind, found.size)
        with torch.no_grad():
            logits, style = self.model.encode(patches)
            _check_digits(logits, found.kind, found.size)
            logits = logits.masked_fill(~mask, refine.MASKED)
            prior = torch.log_softmax(logits, -1)
            energy = refine.cell_energies(self.model, patches, logits, style, prior, mask)
        settled = refine.probabilities(logits, mask).max(-1).values >= SETTLE
        unsettled = torch.nonzero(~settled).squeeze(1)
        view_of = torch.full((len(patches),), -1, dtype=torch.long)
        view_of[unsettled] = torch.arange(len(unsettled))
        views = torch.stack([torch.from_numpy(cells(found, view))[unsettled] for view in VIEWS]) if len(unsettled) \
            else torch.zeros((len(VIEWS), 0) + tuple(patches.shape[1:]))
        meta = {"kind": found.kind, "size": found.size, "corners": (found.corners / found.scale).round(2).tolist(),
                "seed": int(ctx.get("seed", 0)), "max_steps": int(ctx.get("max_steps", self.max_steps or DEFAULT_MAX_STEPS)),
                "feedback": 0}
        x = {"cells": patches, "logits": logits, "style": style, "prior": prior, "energy": energy, "settled": settled,
             "views": views, "view_of": view_of}
        meta["reading"] = reading_of(logits.argmax(-1).numpy(), found.kind, found.size)
        return IRPState(x=x, step=0, meta=meta)

    def energy(self, state: IRPState) -> float:
        return float(state.x["energy"].double().sum())

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x, meta = state.x, state.meta
        active = torch.nonzero(~x["settled"]).squeeze(1)
        if len(active) == 0:
            return state.evolve(step=state.step + 1)
        mask = allowed(meta["kind"], meta["size"])
        logits, style, energy, prior = x["logits"].clone(), x["style"].clone(), x["energy"].clone(), x["prior"].clone()
        look = state.step  # looks so far beyond the first: this step reads VIEWS[look]
        if look < len(VIEWS):
            with torch.no_grad():
                seen, _ = self.model.encode(x["views"][look, x["view_of"][active]])
            seen = torch.log_softmax(seen.masked_fill(~mask, refine.MASKED), -1)
            prior[active] = (prior[active] * (look + 1) + seen) / (look + 2)
            logits[active] = prior[active]
        new_l, new_s, new_e = refine.descend(self.model, x["cells"][active], logits[active], style[active],
                                             prior[active], mask)
        logits[active], style[active], energy[active] = new_l, new_s, new_e
        settled = x["settled"].clone()
        settled[active] = refine.probabilities(new_l, mask).max(-1).values >= SETTLE
        new_x = {**x, "logits": logits, "style": style, "prior": prior, "energy": energy, "settled": settled}
        new_meta = {**meta, "reading": reading_of(logits.argmax(-1).numpy(), meta["kind"], meta["size"])}
        return state.evolve(x=new_x, step=state.step + 1, meta=new_meta)

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        if bool(state.x["settled"].all()):
            return HaltDecision("confident", f"every cell settled after {state.step} step(s)")
        if state.step >= state.meta["max_steps"]:
            # not "max_steps": on a pipeline's feedback cycle that halt would be final, and the
            # solver's conflicts could no longer be re-read where refinement left doubtful cells
            return HaltDecision("refined", f"{state.step} refinement steps (the reader's own limit)")
        return None

    # --- feedback -----------------------------------------------------------------------
    def receive(self, state: IRPState, key: str, value: Any) -> IRPState:
        """``key`` ``"cell_conflicts"``: an n x n bool mask of cells a solver finds in conflict;
        those cells are re-read so that no digit repeats in a row, column or box."""
        if key not in ("cell_conflicts", "conflicts"):
            raise ValueError(f"vision receives 'cell_conflicts' (n x n bools), not {key!r}")
        n, kind = state.meta["size"], state.meta["kind"]
        flagged = np.asarray(value, dtype=bool)
        if flagged.shape != (n, n):
            raise ValueError(f"cell_conflicts must be {n} x {n} bools, got shape {flagged.shape}")
        flagged = flagged.reshape(-1)
        if not flagged.any():
            return state
        x = state.x
        mask = allowed(kind, n)
        probs = refine.probabilities(x["logits"], mask).numpy().astype(np.float64)
        classes = feedback.reread(probs, flagged, kind, n)
        if classes is None:  # nothing valid: leave the flagged cells blank (Sudoku) for the solver
            if kind != "sudoku":
                return state.evolve(meta={**state.meta, "feedback": state.meta["feedback"] + 1})
            classes = probs.argmax(-1)
            classes[flagged] = 0
        changed = torch.from_numpy(flagged)
        chosen = torch.from_numpy(classes)
        sharp = torch.where(torch.arange(len(mask)) == chosen[:, None], 8.0, -8.0).masked_fill(~mask, refine.MASKED)
        logits = torch.where(changed[:, None], sharp, x["logits"])
        energy = x["energy"].clone()
        with torch.no_grad():
            idx = torch.nonzero(changed).squeeze(1)
            energy[idx] = refine.cell_energies(self.model, x["cells"][idx], logits[idx], x["style"][idx],
                                               x["prior"][idx], mask)
        settled = x["settled"] | changed
        new_x = {**x, "logits": logits, "energy": energy, "settled": settled}
        meta = {**state.meta, "feedback": state.meta["feedback"] + 1, "reading": reading_of(classes, kind, n)}
        return state.evolve(x=new_x, meta=meta)

    # --- helpers --------------------------------------------------------------------------
    @staticmethod
    def reading(state: IRPState) -> Any:
        """The current reading in the HRM's input format (``output_kind``)."""
        return state.meta["reading"]

    def output(self, state: IRPState) -> Any:
        """The reading (``output_kind``): what bridges and the next node of a pipeline read."""
        return self.reading(state)

    #: Demos reach these through the registry (plugins never import each other).
    render_held_out = staticmethod(showcase.render_held_out)

    @staticmethod
    def cell_centres(state: IRPState) -> tuple[np.ndarray, float]:
        """((n, n, 2) x, y pixel centres of the read grid's cells in the image, cell side in pixels)."""
        return showcase.cell_centres(state.meta["corners"], state.meta["size"])

    @staticmethod
    def beliefs(state: IRPState) -> np.ndarray:
        """(n, n, classes) probabilities of each cell over its grid's classes."""
        n, kind = state.meta["size"], state.meta["kind"]
        mask = allowed(kind, n)
        p = refine.probabilities(state.x["logits"], mask)[:, mask]
        return p.numpy().reshape(n, n, -1)
