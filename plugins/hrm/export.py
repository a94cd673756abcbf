"""Export one ACT segment of a checkpoint to ONNX or TorchScript, checked against the eager model.

An export is one file: the graph of :class:`plugins.hrm.graph.SegmentGraph` (inputs ``inputs``
(B, L) int64, ``z_H``/``z_L`` (B, T, hidden) float32; outputs the new carry, logits, q_halt,
q_continue; the batch axis dynamic) and an :class:`ExportInfo` (JSON: the config, the
checkpoint's SHA-256, the parity measured when it was written, int8 accuracy if quantised). In
ONNX the info is the model's ``metadata_props[sage_export]``; in TorchScript the archive entry
``extra/sage_export.json``, read with :mod:`zipfile` without unpickling anything.

Loading is safe for ONNX (a protobuf; initializers stored outside the file are refused, so a
hostile file cannot make the runtime read other files). A TorchScript archive is zip + pickle +
code that ``torch.jit.load`` runs, so :func:`load_runner` reads its info but refuses to load the
archive unless the caller passes ``trusted=True`` (only for files you made yourself).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch

from .checkpoint import load_pretrained, resolve
from .evaluate import EVAL_SEED, evaluate_bare
from .graph import INPUT_NAMES, OUTPUT_NAMES, SegmentGraph
from .model import HRM
from .runtime import PRECISE, OnnxSegment, RuntimeModel, TorchScriptSegment
from .tasks import get_task

EXPORT_FORMAT = "sage-hrm-segment/1"
META_KEY = "sage_export"
TS_META_ENTRY = "sage_export.json"
FORMATS = ("onnx", "torchscript")
OPSET = 17
PARITY_TOL = 1e-4  #: max |logits - eager logits| a float32 export may have
INT8_MAX_LOSS = 0.005  #: int8 is written only if it loses at most 0.5 points of held-out exact accuracy


class ExportRejected(ValueError):
    """An export failed its check (parity, or int8 accuracy); nothing was written."""


@attrs.frozen
class ExportInfo:
    """What an export file records about itself."""

    format: str
    int8: bool
    checkpoint: str
    checkpoint_sha256: str
    config: dict[str, Any]
    parity: dict[str, float]
    accuracy: dict[str, Any] = attrs.field(factory=dict)
    #: ONNX Runtime fusions the runtime leaves off for this graph (chosen at export for parity;
    #: files written before this field was recorded were checked with the PRECISE ones off)
    onnx_fusions_off: tuple[str, ...] = attrs.field(default=PRECISE, converter=tuple)
    torch_version: str = torch.__version__
    export_format: str = EXPORT_FORMAT

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> ExportInfo:
        try:
            d = json.loads(text)
            if d.get("export_format") != EXPORT_FORMAT:
                raise ValueError(f"export format {d.get('export_format')!r}, expected {EXPORT_FORMAT!r}")
            return cls(**d)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{source}: bad HRM export metadata ({exc}); re-export it with 'sage export hrm'") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- building graphs --------------------------------------------------------------------

def _example(model: HRM, batch: int = 2) -> tuple[torch.Tensor, ...]:
    carry = model.initial_carry(batch)
    return torch.zeros(batch, model.cfg.seq_len, dtype=torch.long), carry["z_H"], carry["z_L"]


def onnx_bytes(model: HRM) -> bytes:
    """The segment graph of ``model`` as ONNX (opset 17, dynamic batch), without export info."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notices
        torch.onnx.export(SegmentGraph(model).eval(), _example(model), buf, dynamo=False, opset_version=OPSET,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES})
    return buf.getvalue()


def _traced(model: HRM) -> torch.jit.ScriptModule:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(SegmentGraph(model).eval(), _example(model), check_trace=False)


def _torchscript_bytes(module: torch.jit.ScriptModule, info: ExportInfo | None) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, buf, _extra_files={TS_META_ENTRY: info.to_json()} if info else {})
    return buf.getvalue()


def quantize_int8(data: bytes) -> bytes:
    """ONNX Runtime dynamic quantisation: MatMul weights int8 (per channel), activations
    quantised per call; the rest of the graph stays float32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8)
        return dst.read_bytes()


def _with_info_onnx(data: bytes, info: ExportInfo) -> bytes:
    import onnx

    proto = onnx.load_model_from_string(data)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {META_KEY: info.to_json()})
    return proto.SerializeToString()


# --- checks ------------------------------------------------------------------------------

def parity(model: HRM, runner: Callable[..., tuple[Any, ...]], batch_sizes: tuple[int, ...] = (1, 64),
           segments: int = 3) -> dict[str, float]:
    """Max |runner - HRM.segment| per output over held-out puzzles at each batch size, for
    ``segments`` segments from the initial carry (each fed the eager carry); the largest eager
    logit (``logits_scale``); and the float32 floor: max |logits - float64 HRM.segment| of the
    eager model (``eager_vs_f64``) and of the runner (``export_vs_f64``)."""
    task = get_task(model.cfg.task)
    inputs, _ = task.generate(max(batch_sizes), EVAL_SEED, "test")
    exact = copy.deepcopy(model).double()
    worst = dict.fromkeys(("logits", "q_halt", "q_continue", "z_H", "z_L", "eager_vs_f64", "export_vs_f64",
                           "logits_scale"), 0.0)
    with torch.inference_mode():
        for b in batch_sizes:
            x = torch.as_tensor(inputs[:b], dtype=torch.long)
            carry = model.initial_carry(b)
            for _ in range(segments):
                ref = model.segment(carry, {"inputs": x})
                got = runner(carry, x)
                f64 = exact.segment({k: v.double() for k, v in carry.items()}, {"inputs": x})[1]
                pairs = {"z_H": (ref[0]["z_H"], got[0]["z_H"]), "z_L": (ref[0]["z_L"], got[0]["z_L"]),
                         "logits": (ref[1], got[1]), "q_halt": (ref[2], got[2]), "q_continue": (ref[3], got[3]),
                         "eager_vs_f64": (ref[1], f64), "export_vs_f64": (got[1], f64)}
                for name, (r, g) in pairs.items():
                    if r.shape != g.shape:
                        raise ExportRejected(f"{name}: shape {tuple(g.shape)} from the export, {tuple(r.shape)} eager")
                    worst[name] = max(worst[name], float((r.double() - g.double()).abs().max()))
                worst["logits_scale"] = max(worst["logits_scale"], float(ref[1].abs().max()))
                carry = ref[0]
    return worst


def parity_refusal(par: dict[str, float]) -> str | None:
    """Why a float32 export's :func:`parity` is not good enough, or None: its logits are within
    PARITY_TOL of eager's, absolute, or relative to the largest logit where that exceeds 1 (a
    deep model's float32 rounding alone can exceed 1e-4 absolute: eager float32 is itself
    ``eager_vs_f64`` away from the float64 answer)."""
    allowed = PARITY_TOL * max(1.0, par["logits_scale"])
    if par["logits"] <= allowed:
        return None
    return (f"logits differ from eager by {par['logits']:.2e}, more than {PARITY_TOL:.0e} x max(1, largest "
            f"logit {par['logits_scale']:.1f})")


def fastest_within_parity(model: HRM, data: bytes, threads: int | None = None,
                          batch_sizes: tuple[int, ...] = (1, 64), segments: int = 3) -> tuple[OnnxSegment, dict[str, float]]:
    """(runner, parity) of a float32 graph: with every ONNX Runtime fusion if its logits are
    within PARITY_TOL of eager's, else with the :data:`~plugins.hrm.runtime.PRECISE` ones off."""
    runner = OnnxSegment(data, threads)
    par = parity(model, runner, batch_sizes, segments)
    if par["logits"] > PARITY_TOL:
        runner = OnnxSegment(data, threads, PRECISE)
        par = parity(model, runner, batch_sizes, segments)
    return runner, par


def onnx_runner_for(model: HRM, checkpoint_path: str | Path, file: str | Path | None = None,
                    threads: int | None = None) -> OnnxSegment:
    """An ONNX Runtime segment of ``model``: from an export ``file`` (checked to be of this
    checkpoint) or exported in memory and checked against eager (batch 1 and 3, one segment)."""
    if file is not None:
        info, runner = load_runner(file, threads)
        check_matches(info, model, checkpoint_path, str(file))
        return runner
    runner, par = fastest_within_parity(model, onnx_bytes(model), threads, batch_sizes=(1, 3), segments=1)
    refusal = parity_refusal(par)
    if refusal:
        raise RuntimeError(f"the in-memory ONNX export of {checkpoint_path} fails its parity check: {refusal}")
    return runner


def held_out_accuracy(model: HRM, forward: Callable[..., tuple[Any, ...]] | None = None,
                      n: int = 1000, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Bare exact accuracy (ACT halting, as the plugin's bare mode) and always-max of ``model``
    on ``n`` held-out puzzles, run on ``forward`` (default: the eager ``HRM.segment``)."""
    task = get_task(model.cfg.task)
    x, y = task.generate(n, seed, "test")
    subject = model if forward is None else RuntimeModel(model, forward)
    r = evaluate_bare(subject, task, x, y)  # type: ignore[arg-type]
    return {"n": n, "seed": seed, "exact_bare": r["exact_bare"], "exact_bare_max": r["exact_bare_max"]}


def check_matches(info: ExportInfo, model: HRM, checkpoint_path: str | Path, source: str) -> None:
    """Raise a ValueError naming the difference if the export was not made from this checkpoint."""
    sha = file_sha256(checkpoint_path)
    if info.checkpoint_sha256 != sha:
        raise ValueError(f"{source} was exported from a checkpoint with SHA-256 {info.checkpoint_sha256[:12]}..., "
                         f"{checkpoint_path} has {sha[:12]}...: re-export it with "
                         f"'sage export hrm --checkpoint {info.checkpoint}'")
    cfg = model.cfg.to_dict()
    diff = sorted(k for k in set(cfg) | set(info.config) if cfg.get(k) != info.config.get(k))
    if diff:
        raise ValueError(f"{source}: config differs from checkpoint {checkpoint_path} in {diff}")


# --- files -------------------------------------------------------------------------------

def read_export(path: str | Path) -> tuple[ExportInfo, bytes]:
    """(info, file bytes) of an export, checked without running or unpickling anything."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read HRM export {path}: {exc}") from None
    if data[:4] == b"PK\x03\x04":
        return _read_torchscript_info(data, str(path)), data
    return _read_onnx_info(data, str(path)), data


def _read_onnx_info(data: bytes, source: str) -> ExportInfo:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: not an ONNX model or a TorchScript archive (corrupt or truncated? {exc})") from None
    if not proto.graph.node:
        raise ValueError(f"{source}: not an HRM export (an empty or non-ONNX file)")
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ValueError(f"{source}: refers to tensor data in other files ({external[:3]}); HRM exports embed all weights")
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ValueError(f"{source}: an ONNX model without HRM export info; export it with 'sage export hrm'")
    info = ExportInfo.from_json(props[META_KEY], source)
    if info.format != "onnx":
        raise ValueError(f"{source}: an ONNX file whose info says format {info.format!r}")
    return info


def _read_torchscript_info(data: bytes, source: str) -> ExportInfo:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/" + TS_META_ENTRY)]
            if len(names) != 1:
                raise ValueError(f"{source}: a zip archive without HRM export info; export it with 'sage export hrm'")
            text = z.read(names[0]).decode("utf-8")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError, KeyError, EOFError) as exc:
        raise ValueError(f"{source}: corrupt TorchScript archive ({exc})") from None
    info = ExportInfo.from_json(text, source)
    if info.format != "torchscript":
        raise ValueError(f"{source}: a TorchScript archive whose info says format {info.format!r}")
    return info


def load_runner(path: str | Path, threads: int | None = None, trusted: bool = False) -> tuple[ExportInfo, Any]:
    """(info, runner) of an export file; a TorchScript file only with ``trusted=True``."""
    info, data = read_export(path)
    if info.format == "onnx":
        return info, OnnxSegment(data, threads, info.onnx_fusions_off)
    if not trusted:
        raise ValueError(f"{path}: refusing to load a TorchScript archive: it holds pickled data and code that "
                         "torch.jit.load runs; pass trusted=True only for a file you made, or use an ONNX export")
    try:
        return info, TorchScriptSegment(data)
    except RuntimeError as exc:
        raise ValueError(f"{path}: TorchScript cannot load this archive ({exc})") from None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_checkpoint(checkpoint: str, fmt: str, out: str | Path, int8: bool = False, n_eval: int = 1000,
                      threads: int | None = None, log: Callable[[str], None] = print,
                      parity_batches: tuple[int, ...] = (1, 64)) -> ExportInfo:
    """Export ``checkpoint``'s segment as ``fmt`` to ``out``, load it back and check parity (and
    int8 accuracy against float on ``n_eval`` held-out puzzles); raises :class:`ExportRejected`
    and writes nothing if a check fails."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if int8 and fmt != "onnx":
        raise ValueError("int8 is offered for --format onnx (ONNX Runtime dynamic quantisation)")
    path = resolve(checkpoint)
    model = load_pretrained(path)
    info = ExportInfo(format=fmt, int8=int8, checkpoint=str(checkpoint), checkpoint_sha256=file_sha256(path),
                      config=model.cfg.to_dict(), parity={})
    if fmt == "onnx" and not int8:
        data = onnx_bytes(model)
        runner, par = fastest_within_parity(model, data, threads, parity_batches)
    else:  # int8 is judged by held-out accuracy, with every fusion on
        if fmt == "onnx":
            data = quantize_int8(onnx_bytes(model))
            runner = OnnxSegment(data, threads)
        else:
            traced = _traced(model)
            runner = TorchScriptSegment(_torchscript_bytes(traced, None))
        par = parity(model, runner, parity_batches)
    fusions_off = runner.disabled if isinstance(runner, OnnxSegment) else ()
    log(f"parity vs eager float32 (max abs, batch {' and '.join(map(str, parity_batches))}, 3 segments): "
        + ", ".join(f"{k} {v:.2e}" for k, v in par.items() if k in ("logits", "q_halt", "q_continue", "z_H", "z_L"))
        + (f"; ONNX Runtime fusions left off for parity: {', '.join(fusions_off)}" if fusions_off else ""))
    accuracy: dict[str, Any] = {}
    if int8:
        ref = held_out_accuracy(model, None, n=n_eval)
        got = held_out_accuracy(model, runner, n=n_eval)
        loss = ref["exact_bare"] - got["exact_bare"]
        accuracy = {"float_exact_bare": ref["exact_bare"], "int8_exact_bare": got["exact_bare"],
                    "float_exact_bare_max": ref["exact_bare_max"], "int8_exact_bare_max": got["exact_bare_max"],
                    "n": n_eval, "seed": ref["seed"]}
        log(f"held-out exact (bare, ACT), n = {n_eval}: float {100 * ref['exact_bare']:.1f} %, "
            f"int8 {100 * got['exact_bare']:.1f} % ({-100 * loss:+.1f} points)")
        if loss > INT8_MAX_LOSS + 1e-12:
            raise ExportRejected(f"int8 loses {100 * loss:.1f} points of held-out exact accuracy "
                                 f"(more than {100 * INT8_MAX_LOSS:.1f}); not written")
    elif par["logits"] > PARITY_TOL:
        log(f"parity target missed: logits {par['logits']:.2e} > {PARITY_TOL:.0e} (largest logit "
            f"{par['logits_scale']:.1f}); float32 floor: eager is {par['eager_vs_f64']:.2e} from float64, "
            f"the export {par['export_vs_f64']:.2e}")
        refusal = parity_refusal(par)
        if refusal:
            raise ExportRejected(refusal + "; not written")
    info = attrs.evolve(info, parity=par, accuracy=accuracy, onnx_fusions_off=fusions_off)
    data = _with_info_onnx(data, info) if fmt == "onnx" else _torchscript_bytes(traced, info)
    out = Path(out)
    _write(out, data)
    log(f"wrote {out} ({len(data) / 1e6:.2f} MB, {fmt}{' int8' if int8 else ''}, checkpoint {checkpoint} "
        f"sha256 {info.checkpoint_sha256[:12]}...)")
    return info


__all__ = ["EXPORT_FORMAT", "ExportInfo", "ExportRejected", "FORMATS", "INT8_MAX_LOSS", "PARITY_TOL",
           "check_matches", "export_checkpoint", "fastest_within_parity", "file_sha256", "held_out_accuracy", "load_runner",
           "onnx_bytes", "onnx_runner_for", "parity", "parity_refusal", "quantize_int8", "read_export"]
