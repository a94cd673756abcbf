"""HRMReasoner: the HRM as an IRP plugin. One IRP step = one ACT segment.

State layout (everything a resumed session needs, exported bit-exactly):

* ``x``: ``{"puzzle": (L,) int64 tokens as given, "inputs": (L,) tokens the model sees in
  the current attempt (the puzzle under the attempt's symmetry), "answer": (L,) decoded answer
  of the last segment, "best": (L,) lowest-energy answer so far (both in the puzzle's own
  orientation), "conf": (2,) float32 mean confidence of answer / best}``.
* ``carry``: ``{"z_H", "z_L"}``: the H/L recurrent states, (1, T, hidden) float32.
* ``meta``: task, mode, seed, attempt, segment counters, ACT flags, violation counts.

Modes (``ctx["mode"]``): ``"bare"`` is the model alone (halts on ACT or max segments);
``"irp"`` (default) adds refinement: segments continue past the ACT halt up to the max, then
the model restarts under a random symmetry of the task (digit permutation, transposition,
band/stack shuffles; dihedral maps for mazes) and the lowest-energy answer is kept, up to
``ctx["max_steps"]`` segments in all (default 4 attempts' worth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

import sage_core
from sage_core import HaltDecision, IRPPlugin, IRPState

from .checkpoint import default_checkpoint, load_pretrained
from .inference import FastSegment, threads_for
from .model import HRM
from plugins.puzzles import explain, maze, sudoku

from .tasks import Task, get_task

CONF_WEIGHT = 0.5  # energy = violations + CONF_WEIGHT * (1 - confidence) < violations + 1


def parse_puzzle(puzzle: Any) -> tuple[Task, np.ndarray]:
    """(task, flat input tokens) for a Sudoku grid (0 = blank) or a maze (list of strings)."""
    if isinstance(puzzle, (list, tuple)) and puzzle and all(isinstance(r, str) for r in puzzle):
        grid = maze.parse(list(puzzle))
        n = grid.shape[0]
        if grid.shape[1] != n:
            raise ValueError(f"maze must be square, got {grid.shape[0]} rows of {grid.shape[1]} columns")
        name = f"maze{n}"
        try:
            task = get_task(name)
        except ValueError:
            raise ValueError(f"maze size {n}x{n} not supported: expected 11x11 or 13x13") from None
        return task, grid.reshape(-1).astype(np.int64)
    try:
        arr = np.asarray(puzzle)
    except Exception as exc:  # ragged nested lists
        raise ValueError(f"Sudoku grid must be an n x n array of ints: {exc}") from None
    if arr.dtype == object or arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"Sudoku grid must be square n x n (n in 4, 6, 9), got shape {getattr(arr, 'shape', None)}")
    n = arr.shape[0]
    if n not in sudoku.BOXES:
        raise ValueError(f"Sudoku size {n}x{n} not supported: expected 4x4, 6x6 or 9x9")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"Sudoku cells must be integers 0..{n} (0 = blank), got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() > n:
        raise ValueError(f"Sudoku cells must be in 0..{n} (0 = blank), found {int(arr.min())}..{int(arr.max())}")
    return get_task(f"sudoku{n}"), arr.reshape(-1).astype(np.int64)


class HRMReasoner(IRPPlugin):
    """Hierarchical Reasoning Model solving Sudoku (4x4, 6x6, 9x9) and mazes, one segment per step."""

    name: ClassVar[str] = "hrm"
    version: ClassVar[str] = "1.0.0"
    api_version: ClassVar[int] = sage_core.API_VERSION
    input_kind: ClassVar[tuple[str, ...]] = ("sudoku_grid", "maze_grid")
    output_kind: ClassVar[str] = "solved_puzzle"

    _model_cache: ClassVar[dict[str, HRM]] = {}
    _fast_cache: ClassVar[dict[int, FastSegment]] = {}
    #: ONNX Runtime segments by (model id, export file or ""): (model, runner)
    _onnx_cache: ClassVar[dict[tuple[int, str], tuple[HRM, Any]]] = {}

    def __init__(self, checkpoint: str | None = None, mode: str = "irp", max_steps: int | None = None,
                 runtime: str = "eager", exports: Mapping[str, str] | None = None, on_conflict: str = "raise") -> None:
        """``runtime="onnx"`` runs each segment on ONNX Runtime (extra ``onnx``): the graph is
        exported in memory, or read from ``exports`` ({checkpoint name or task: file made by
        ``sage export hrm``}, checked to be of that checkpoint), e.g. an int8 export.
        ``on_conflict="report"`` starts a Sudoku whose givens have no solution instead of raising:
        its answer stays unverified (a ``cell_conflicts`` bridge can send the clash upstream) until
        a corrected grid arrives through ``receive(state, "input", grid)``."""
        if on_conflict not in ("raise", "report"):
            raise ValueError(f"on_conflict must be 'raise' or 'report', got {on_conflict!r}")
        self.on_conflict = on_conflict
        self.checkpoint = checkpoint
        self.default_mode = mode
        self.default_max_steps = max_steps
        if runtime not in ("eager", "onnx"):
            raise ValueError(f"runtime must be 'eager' or 'onnx', got {runtime!r}")
        if exports and runtime != "onnx":
            raise ValueError("exports= are ONNX export files: pass runtime='onnx' too")
        self.runtime = runtime
        self.exports = {str(k): str(v) for k, v in (exports or {}).items()}
        if runtime == "onnx":
            from .export import read_export
            from .runtime import _onnxruntime

            _onnxruntime()  # the missing extra is one clear error now, not at the first step
            for file in self.exports.values():
                if read_export(file)[0].format != "onnx":  # a corrupt or foreign file fails here too
                    raise ValueError(f"{file}: a TorchScript export; runtime='onnx' takes ONNX exports")

    # --- model --------------------------------------------------------------------------
    def model_for(self, task: str, checkpoint: str | None = None) -> HRM:
        key = checkpoint or self.checkpoint or default_checkpoint(task)
        if key not in self._model_cache:
            try:
                model = load_pretrained(key)
            except FileNotFoundError as exc:
                raise ValueError(f"no HRM checkpoint for task {task!r}: {exc}") from None
            self._model_cache[key] = model
        model = self._model_cache[key]
        if model.cfg.task != task:
            raise ValueError(f"checkpoint {key!r} was trained on {model.cfg.task!r}, puzzle is {task!r}")
        return model

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """A held-out 4x4 Sudoku and a context, for the conformance kit."""
        return [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]], {"seed": 0}

    # --- contract -----------------------------------------------------------------------
    def init_state(self, puzzle: Any, ctx: Mapping[str, Any]) -> IRPState:
        return self.init_state_batch([puzzle], [ctx])[0]

    def init_state_batch(self, puzzles: Sequence[Any], ctxs: Sequence[Mapping[str, Any]]) -> list[IRPState]:
        """:meth:`init_state` of many sessions: inputs checked one by one (the first bad one
        raises, naming its index), the blank answers' verification done as one array call per task."""
        if len(puzzles) != len(ctxs):
            raise ValueError(f"init_state_batch got {len(puzzles)} puzzles and {len(ctxs)} contexts")
        made = []
        for k, (puzzle, ctx) in enumerate(zip(puzzles, ctxs)):
            try:
                made.append(self._parse_session(puzzle, ctx))
            except ValueError as exc:
                if len(puzzles) == 1:  # init_state: the message as is
                    raise
                raise ValueError(f"puzzle {k}: {exc}") from None
        out: list[IRPState | None] = [None] * len(made)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, (task, _, meta) in enumerate(made):
            groups.setdefault((task.name, meta["checkpoint"]), []).append(i)
        for (task_name, ck), idx in groups.items():
            task = made[idx[0]][0]
            # one initial carry shared by the group's sessions: carries are never written in place
            # (a segment concatenates them into a new batch), so sharing costs no copies
            carry = self.model_for(task_name, ck).initial_carry(1)
            tokens = np.stack([made[i][1] for i in idx])
            blanks = task.project(np.zeros_like(tokens), tokens)
            viol = task.violations(blanks, tokens).tolist()
            confs = np.zeros((len(idx), 2), dtype=np.float32)
            for j, i in enumerate(idx):
                _, tok, meta = made[i]
                meta["violations"] = meta["best_violations"] = viol[j]
                x = {"puzzle": tok, "inputs": tok, "answer": blanks[j], "best": blanks[j], "conf": confs[j]}
                out[i] = IRPState(x=x, step=0, meta=meta, carry=dict(carry))
        return out  # type: ignore[return-value]

    def _parse_session(self, puzzle: Any, ctx: Mapping[str, Any]) -> tuple[Task, np.ndarray, dict[str, Any]]:
        """(task, input tokens, initial meta) of one session; raises ValueError naming a bad input."""
        task, tokens = parse_puzzle(puzzle)
        if (task.kind == "sudoku" and self.on_conflict == "raise"
                and not sudoku.has_solution(tokens.reshape(task.size, task.size))):
            raise ValueError("Sudoku has no solution (its givens already conflict)")
        ckpt = ctx.get("checkpoint")
        model = self.model_for(task.name, ckpt)
        mode = str(ctx.get("mode", self.default_mode))
        if mode not in ("bare", "irp"):
            raise ValueError(f"mode must be 'bare' or 'irp', got {mode!r}")
        S = model.cfg.max_segments
        max_steps = int(ctx.get("max_steps", self.default_max_steps or (S if mode == "bare" else 4 * S)))
        meta = {
            "task": task.name, "mode": mode, "seed": int(ctx.get("seed", 0)), "checkpoint": ckpt,
            "max_steps": max_steps, "max_segments": S, "attempt": 0, "segment": 0,
            "act_halted": False, "violations": 0, "best_violations": 0, "best_attempt": -1,
        }
        return task, tokens, meta

    def energy(self, state: IRPState) -> float:
        meta = state.meta
        return float(meta["best_violations"]) + CONF_WEIGHT * (1.0 - float(state.x["conf"][1]))

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        """Verified answer, ACT halt (bare mode) or max segments, read off the state."""
        m = state.meta
        if state.step == 0:
            return None
        if m["best_violations"] == 0:
            return HaltDecision("verified", f"answer verified after {state.step} segment(s)")
        if m["mode"] == "bare" and m["act_halted"]:
            return HaltDecision("act", f"ACT halted (q_halt - q_continue > halt margin) after {state.step} segment(s)")
        if state.step >= m["max_steps"]:
            return HaltDecision("max_segments", f"reached {m['max_steps']} segments")
        return None

    def project(self, state: IRPState) -> IRPState:
        return self.project_batch([state])[0]

    def project_batch(self, states: Sequence[IRPState]) -> list[IRPState]:
        """:meth:`project` of many states: one array call per task; a state that already
        satisfies the constraints is returned as is."""
        out = list(states)
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(states):
            groups.setdefault(s.meta["task"], []).append(i)
        for task_name, idx in groups.items():
            task = get_task(task_name)
            puzzles = np.stack([states[i].x["puzzle"] for i in idx])
            answers = np.stack([states[i].x["answer"] for i in idx])
            bests = np.stack([states[i].x["best"] for i in idx])
            ans_p, best_p = task.project(answers, puzzles), task.project(bests, puzzles)
            changed = ((ans_p != answers) | (best_p != bests)).any(-1).tolist()
            for j, i in enumerate(idx):
                if changed[j]:
                    out[i] = states[i].evolve(x={**states[i].x, "answer": ans_p[j], "best": best_p[j]})
        return out

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        return self.step_batch([state])[0]

    # --- stepping -----------------------------------------------------------------------
    def _prepare(self, state: IRPState) -> tuple[np.ndarray, dict[str, torch.Tensor], dict[str, Any], dict | None]:
        """Inputs, carry and meta for the next segment; a new attempt under a symmetry when due."""
        m = dict(state.meta)
        task = get_task(m["task"])
        inputs, carry = state.x["inputs"], state.carry
        sym = self._symmetry(task, m)
        restart = m["mode"] == "irp" and m["segment"] >= m["max_segments"]
        if restart:
            m["attempt"] += 1
            m["segment"] = 0
            m["act_halted"] = False
            sym = self._symmetry(task, m)
            inputs = task.apply_symmetry(state.x["puzzle"], sym)
            model = self.model_for(m["task"], m["checkpoint"])
            carry = model.initial_carry(1)
        return inputs, carry, m, sym

    @staticmethod
    def _symmetry(task: Task, meta: Mapping[str, Any]) -> dict | None:
        if meta["attempt"] == 0:
            return None
        return task.random_symmetry(sage_core.step_rng(meta["seed"], meta["attempt"], stream=7))

    def forward_for(self, model: HRM) -> FastSegment:
        """The serving forward of ``model`` (:class:`FastSegment`: ``HRM.segment`` with fewer,
        cheaper kernels, equal within float tolerance; ``HRM.segment`` itself for models it
        does not cover); with ``runtime="onnx"`` an ONNX Runtime segment of the same call."""
        if self.runtime == "onnx":
            return self._onnx_for(model)
        fast = self._fast_cache.get(id(model))
        if fast is None or fast.model is not model:
            fast = self._fast_cache[id(model)] = FastSegment(model)
        return fast

    def _onnx_for(self, model: HRM) -> Any:
        from .checkpoint import resolve
        from .export import onnx_runner_for

        key = next(k for k, m in self._model_cache.items() if m is model)
        file = self.exports.get(key) or self.exports.get(model.cfg.task)
        cached = self._onnx_cache.get((id(model), file or ""))
        if cached is None or cached[0] is not model:
            cached = self._onnx_cache[(id(model), file or "")] = (model, onnx_runner_for(model, resolve(key), file))
        return cached[1]

    def step_batch(self, states: list[IRPState]) -> list[IRPState]:
        """Step many sessions as one batch (grouped by model); equal to stepping each alone
        (up to the float rounding of the batched forward). The per-session work around the one
        forward pass is array code over the whole batch; the Python loop only assembles states."""
        out: list[IRPState | None] = [None] * len(states)
        groups: dict[tuple[str, Any], list[int]] = {}
        for i, s in enumerate(states):
            groups.setdefault((s.meta["task"], s.meta.get("checkpoint")), []).append(i)
        for (task_name, ck), idx in groups.items():
            model = self.model_for(task_name, ck)
            forward = self.forward_for(model)  # made outside threads_for: an ONNX runner takes torch's threads
            with threads_for(len(idx) * model.cfg.total_len):  # one intra-op thread for a small batch
                self._step_group(states, idx, model, forward, get_task(task_name), out)
        return out  # type: ignore[return-value]

    def _step_group(self, states: list[IRPState], idx: list[int], model: HRM, forward: Any, task: Task,
                    out: list[IRPState | None]) -> None:
        """:meth:`step_batch` of the sessions ``idx`` of ``states`` (one task, ``model`` run on
        ``forward``) into ``out``."""
        prepared = [self._prepare(states[i]) for i in idx]
        x = torch.from_numpy(np.stack([p[0] for p in prepared]).astype(np.int64, copy=False))
        if len(prepared) == 1:
            carry = prepared[0][1]
        else:
            carry = {k: torch.cat([p[1][k] for p in prepared]) for k in ("z_H", "z_L")}
        new_carry, logits, qh, qc = forward(carry, x)
        with torch.inference_mode():
            conf, pred = logits.float().softmax(-1).max(-1)
            halt = model.act_halt(qh, qc)
        puzzles = np.stack([states[i].x["puzzle"] for i in idx])
        answers = pred.numpy().copy()
        for j, p in enumerate(prepared):
            if p[3] is not None:
                answers[j] = task.invert_symmetry(answers[j], p[3], label=True)
        answers = task.project(answers, puzzles)
        viol = task.violations(answers, puzzles).tolist()
        confs = np.empty((len(idx), 2), dtype=np.float32)  # rows: [answer, best] confidence
        confs[:, 0] = conf.numpy().mean(-1)
        conf_l, halt_l = confs[:, 0].tolist(), halt.tolist()  # the float32 values, exactly
        # each session owns a copy of its row: a view would keep the whole batch's carry
        # alive for as long as any one session (or its result) is kept
        z_H, z_L = new_carry["z_H"].split(1), new_carry["z_L"].split(1)
        for j, i in enumerate(idx):
            s = states[i]
            inputs, _, m, _ = prepared[j]
            ans, c, v = answers[j], conf_l[j], viol[j]
            m["segment"] += 1
            m["act_halted"] = halt_l[j] or m["segment"] >= m["max_segments"]
            m["violations"] = v
            sx = s.x
            best, best_c = sx["best"], float(sx["conf"][1])
            if s.step == 0 or (v, -c) < (m["best_violations"], -best_c):
                best, best_c = ans.copy(), c
                m["best_violations"] = v
                m["best_attempt"] = m["attempt"]
            confs[j, 1] = best_c
            new_x = {"puzzle": sx["puzzle"], "inputs": inputs, "answer": ans, "best": best, "conf": confs[j]}
            out[i] = IRPState(x=new_x, step=s.step + 1, energy=None, meta=m,
                              carry={"z_H": z_H[j].clone(), "z_L": z_L[j].clone()})

    def energy_batch(self, states: list[IRPState]) -> list[float]:
        """:meth:`energy` of many states in one call (bit-identical: the same float64 operations)."""
        n = len(states)
        v = np.fromiter((s.meta["best_violations"] for s in states), dtype=np.float64, count=n)
        c = np.fromiter((s.x["conf"][1] for s in states), dtype=np.float64, count=n)
        return (v + CONF_WEIGHT * (1.0 - c)).tolist()

    def receive(self, state: IRPState, key: str, value: Any) -> IRPState:
        """``key`` ``"input"``: a corrected puzzle (e.g. a re-read image) replaces the session's
        puzzle; the session starts over on it with the same settings, its segment count kept (so
        ``max_steps`` bounds the whole session). The same puzzle again changes nothing."""
        if key != "input":
            raise ValueError(f"hrm receives a new puzzle as 'input', not {key!r}")
        task, tokens = parse_puzzle(value)
        if task.name == state.meta["task"] and np.array_equal(tokens, state.x["puzzle"]):
            return state
        m = state.meta
        ctx = {"seed": m["seed"], "mode": m["mode"], "max_steps": m["max_steps"], "checkpoint": m["checkpoint"]}
        return self.init_state(value, ctx).evolve(step=state.step)

    def output(self, state: IRPState) -> dict[str, Any]:
        """The ``solved_puzzle`` value: ``{"puzzle", "solution", "verified"}``, the solution as an
        n x n grid, or for a maze the path as (row, col) cells from S to G (unverified: the cells
        the model marked, row by row)."""
        task = get_task(state.meta["task"])
        puzzle = state.x["puzzle"].reshape(task.size, task.size)
        verified = state.step > 0 and state.meta["best_violations"] == 0
        if task.kind == "sudoku":
            return {"puzzle": puzzle.tolist(), "solution": self.solution(state).tolist(), "verified": verified}
        on_path = state.x["best"].reshape(task.size, task.size) == maze.PATH
        cells = explain.path_cells(puzzle, on_path) if verified else [tuple(map(int, c)) for c in np.argwhere(on_path)]
        return {"puzzle": maze.render(puzzle, np.zeros_like(on_path)), "solution": cells, "verified": verified}

    # --- helpers --------------------------------------------------------------------------
    @staticmethod
    def solution(state: IRPState) -> Any:
        """The best answer in the user's format: an n x n int grid, or maze strings with 'o' on the path."""
        task = get_task(state.meta["task"])
        best = state.x["best"].reshape(task.size, task.size)
        if task.kind == "sudoku":
            return (best + 1).astype(np.int64)
        return maze.render(state.x["puzzle"].reshape(task.size, task.size), best == maze.PATH)

    @staticmethod
    def held_out_puzzles(task: str, n: int, seed: int = 9001) -> list[Any]:
        """``n`` puzzles of the held-out split in the user's format (grid or maze strings)."""
        t = get_task(task)
        inputs, _ = t.generate(n, seed, "test")
        if t.kind == "sudoku":
            return [row.reshape(t.size, t.size).tolist() for row in inputs]
        return [maze.render(row.reshape(t.size, t.size), np.zeros((t.size, t.size), dtype=bool)) for row in inputs]
