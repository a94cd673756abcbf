"""Run one exported HRM segment: ``runner(carry, inputs) -> (carry, logits, q_halt, q_continue)``.

The same call as :class:`plugins.hrm.inference.FastSegment`, so the plugin and the evaluation
code take either. ONNX Runtime needs the ``onnx`` extra; TorchScript needs only torch, but a
TorchScript archive holds pickled data and code that ``torch.jit.load`` runs, so it is loaded
only when the caller says the file is trusted (see :func:`plugins.hrm.export.read_export`).
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from .graph import INPUT_NAMES, OUTPUT_NAMES
from .inference import PARALLEL_MIN_TOKENS
from .model import HRM


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the HRM's ONNX runtime needs onnxruntime: pip install 'sage-irp[onnx]'") from None
    return onnxruntime


def _outputs(values: list[Any]) -> tuple[Any, ...]:
    z_H, z_L, logits, q_halt, q_continue = (torch.as_tensor(v) for v in values)
    return {"z_H": z_H, "z_L": z_L}, logits, q_halt, q_continue


#: ONNX Runtime fusions an export may leave off to stay within parity: its fused RMSNorm
#: (SimplifiedLayerNormalization) is 12-15 % faster at batch 1 and rounds no worse than the plain
#: ops on the Sudoku checkpoints, but puts maze11_any's logits 1.3e-4 from eager float32 (5.7e-5
#: without it; the parity target is 1e-4). The export tries the graph with every fusion first and
#: records which ones it had to leave off (:class:`plugins.hrm.export.ExportInfo`).
PRECISE = ("SimplifiedLayerNormFusion",)


class OnnxSegment:
    """One segment on an ONNX Runtime CPU session built from the graph's bytes, with ONNX
    Runtime's full graph optimisations except the fusions named in ``disabled``.

    ``threads`` (default: torch's) work across the batch, not inside each node: a batch of at
    least ``PARALLEL_MIN_TOKENS`` tokens per part is cut into up to ``threads`` row blocks run at
    once, each on one intra-op thread (``session.run`` releases the GIL; rows are independent,
    so the answer is the same). On 2 cores at sudoku4 batch 64 that is 9.5 ms against 19 ms on
    ONNX Runtime's own two sleeping intra-op threads (15.5 ms spinning): its nodes are too small
    to split, and a batch-1 call is faster on one thread (0.46 against 0.69 ms)."""

    def __init__(self, data: bytes, threads: int | None = None, disabled: tuple[str, ...] = ()) -> None:
        ort = _onnxruntime()
        opts = ort.SessionOptions()
        self.threads = int(threads or torch.get_num_threads())
        self.disabled = tuple(disabled)
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle pool threads sleep instead of spinning: the cores are shared with other work
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"],
                                                disabled_optimizers=list(self.disabled))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(f"ONNX Runtime cannot load this HRM segment graph: {exc}") from None
        names = tuple(i.name for i in self.session.get_inputs()), tuple(o.name for o in self.session.get_outputs())
        if names != (INPUT_NAMES, OUTPUT_NAMES):
            raise ValueError(f"not an HRM segment graph: inputs/outputs {names}, expected {(INPUT_NAMES, OUTPUT_NAMES)}")
        self._pool = (ThreadPoolExecutor(self.threads - 1, thread_name_prefix="sage-onnx")
                      if self.threads > 1 else None)

    def __call__(self, carry: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[Any, ...]:
        feed = {"inputs": np.ascontiguousarray(inputs.detach().numpy(), dtype=np.int64),
                "z_H": np.ascontiguousarray(carry["z_H"].detach().numpy(), dtype=np.float32),
                "z_L": np.ascontiguousarray(carry["z_L"].detach().numpy(), dtype=np.float32)}
        rows, tokens = feed["z_H"].shape[:2]
        parts = min(self.threads, rows * tokens // PARALLEL_MIN_TOKENS, rows)
        if parts < 2 or self._pool is None:
            return _outputs(self.session.run(None, feed))
        cuts = np.linspace(0, rows, parts + 1).astype(int)
        blocks = [{k: v[a:b] for k, v in feed.items()} for a, b in zip(cuts[:-1], cuts[1:])]
        others = [self._pool.submit(self.session.run, None, block) for block in blocks[1:]]
        results = [self.session.run(None, blocks[0])] + [f.result() for f in others]
        return _outputs([np.concatenate(parts_of) for parts_of in zip(*results)])


class TorchScriptSegment:
    """One segment on a TorchScript module; build it only from a trusted archive's bytes."""

    def __init__(self, data: bytes) -> None:
        self.module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        self.module.eval()

    def __call__(self, carry: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[Any, ...]:
        with torch.inference_mode():
            return _outputs(list(self.module(inputs, carry["z_H"], carry["z_L"])))


class RuntimeModel:
    """An HRM whose ``segment`` runs on another forward; every other attribute (config, initial
    carry, buffers) is the model's, so exports are measured by the same evaluation code
    (:func:`plugins.hrm.evaluate.run_bare`) as the eager model."""

    def __init__(self, model: HRM, forward: Any) -> None:
        self.model = model
        self.forward = forward

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def segment(self, carry: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[Any, ...]:
        return self.forward(carry, batch["inputs"])
