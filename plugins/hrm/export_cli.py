"""``sage export hrm``: one ACT segment of a checkpoint as ONNX or TorchScript, parity printed."""

from __future__ import annotations

from pathlib import Path

import click

from .export import FORMATS, ExportRejected, export_checkpoint


@click.command("hrm")
@click.option("--checkpoint", required=True, help="shipped checkpoint name (e.g. sudoku4), directory or .safetensors file")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True)
@click.option("--int8", is_flag=True, help="ONNX Runtime dynamic int8 quantisation; written only if held-out "
                                           "exact accuracy drops by at most 0.5 points")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="file to write")
@click.option("--n", "n_eval", type=int, default=1000, show_default=True,
              help="held-out puzzles for the int8 accuracy check")
@click.option("--threads", type=int, default=None, help="ONNX Runtime threads for the checks [torch's count]")
def export_hrm(checkpoint: str, fmt: str, int8: bool, out: Path, n_eval: int, threads: int | None) -> None:
    """Export one HRM segment (carry in; carry, logits, q_halt, q_continue out; dynamic batch),
    load it back and check it against the eager model before writing."""
    try:
        export_checkpoint(checkpoint, fmt, out, int8=int8, n_eval=n_eval, threads=threads, log=click.echo)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    except ExportRejected as exc:
        raise click.ClickException(f"export rejected: {exc}") from None
    except (ValueError, ImportError) as exc:
        raise click.UsageError(str(exc)) from None
