"""One ACT segment of an HRM as a plain tensor-in, tensor-out module, written for export.

``SegmentGraph(model)(inputs, z_H, z_L) -> (z_H, z_L, logits, q_halt, q_continue)`` equals
``model.segment`` (up to float rounding) for both variants (HRM and TRM), every positional
encoding and local attention windows, but is shaped for graph runtimes (ONNX Runtime,
TorchScript), where each node costs a fixed dispatch overhead that dominates at batch 1:

* q, k, their rotated copies and v come from one MatMul: ``rotate_half`` is a fixed linear map
  R of each head's features, so ``rotate_half(x W_q^T) = x (R W_q)^T`` and the rotated weight
  rows are precomputed; the attention scale is folded into the q rotary tables;
* attention is MatMul, Add (the local-window bias, if any), Softmax, MatMul: no
  ``scaled_dot_product_attention`` decomposition;
* each RMSNorm is written as ``x / sqrt(mean(x^2) + eps) * 1`` over a ones weight, the pattern
  ONNX Runtime fuses into one ``SimplifiedLayerNormalization`` node (parameter-free in the
  model; the ones weight keeps the fusion's shape).

Weights are copied into the module when it is built (an export is a snapshot).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import HRM, Block, ReasoningModule

INPUT_NAMES = ("inputs", "z_H", "z_L")
OUTPUT_NAMES = ("z_H_out", "z_L_out", "logits", "q_halt", "q_continue")


def rotate_half_matrix(head_dim: int, heads: int) -> torch.Tensor:
    """(d, d) matrix R with ``rotate_half(v) = v @ R.T`` for each head's ``head_dim`` features."""
    half = head_dim // 2
    r = torch.zeros(head_dim, head_dim)
    r[torch.arange(half), torch.arange(half, head_dim)] = -1.0
    r[torch.arange(half, head_dim), torch.arange(half)] = 1.0
    return torch.block_diag(*([r] * heads))


class _GraphBlock(nn.Module):
    """A post-norm transformer block with the rotary projection folded into one weight."""

    def __init__(self, block: Block, rot: torch.Tensor, seq: int) -> None:
        super().__init__()
        w = block.attn.qkv.weight.detach()
        d = w.shape[1]
        wq, wk, wv = w[:d], w[d:2 * d], w[2 * d:]
        # shapes as constants (only the batch axis is dynamic): no Shape/Gather/Concat nodes
        self.d, self.seq, self.heads, self.head_dim = d, seq, block.attn.heads, block.attn.head_dim
        self.eps = block.eps
        self.inter = block.mlp.down.weight.shape[1]
        # x @ w_in.T = [q | k | rot(q) | rot(k) | v]
        self.w_in = nn.Parameter(torch.cat((wq, wk, rot @ wq, rot @ wk, wv)).t().contiguous(), requires_grad=False)
        self.w_out = nn.Parameter(block.attn.out.weight.detach().t().contiguous(), requires_grad=False)
        self.w_gate_up = nn.Parameter(block.mlp.gate_up.weight.detach().t().contiguous(), requires_grad=False)
        self.w_down = nn.Parameter(block.mlp.down.weight.detach().t().contiguous(), requires_grad=False)
        self.norm_weight = nn.Parameter(torch.ones(d), requires_grad=False)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.norm_weight

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        d, S, H, hd = self.d, self.seq, self.heads, self.head_dim
        proj = torch.matmul(x, self.w_in)
        qk = proj[..., :2 * d] * cos + proj[..., 2 * d:4 * d] * sin  # rotary; q already scaled
        q, k = qk.reshape(-1, S, 2 * H, hd).transpose(1, 2).split(H, dim=1)  # (B, H, S, hd) each
        v = proj[..., 4 * d:].reshape(-1, S, H, hd).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2))
        if bias is not None:
            scores = scores + bias
        y = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(-1, S, d)
        x = self._norm(x + torch.matmul(y, self.w_out))
        gate_up = torch.matmul(x, self.w_gate_up)
        g, u = gate_up[..., :self.inter], gate_up[..., self.inter:]
        return self._norm(x + torch.matmul(F.silu(g) * u, self.w_down))


class _Embedding(nn.Module):
    """The model's input embedding (token table, task prefix, learned positions) and nothing else."""

    forward = HRM.input_embedding

    def __init__(self, model: HRM) -> None:
        super().__init__()
        self.cfg, self.embed_scale, self.embed, self.prefix = model.cfg, model.embed_scale, model.embed, model.prefix
        if model.cfg.pos_encoding == "learned":
            self.pos_embed = model.pos_embed


class _GraphModule(nn.Module):
    def __init__(self, module: ReasoningModule, rot: torch.Tensor, seq: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_GraphBlock(b, rot, seq) for b in module.layers)

    def forward(self, h: torch.Tensor, injection: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        h = h + injection
        for layer in self.layers:
            h = layer(h, cos, sin, bias)
        return h


class SegmentGraph(nn.Module):
    """``forward(inputs, z_H, z_L) -> (z_H, z_L, logits, q_halt, q_continue)``: one segment of ``model``."""

    def __init__(self, model: HRM) -> None:
        super().__init__()
        if type(model) is not HRM:
            raise TypeError(f"SegmentGraph exports the stock HRM class, got {type(model).__name__}")
        cfg = self.cfg = model.cfg
        model = model.eval()
        self.embedding = _Embedding(model)
        hd = cfg.hidden // cfg.heads
        rot = rotate_half_matrix(hd, cfg.heads)
        self.L = _GraphModule(model.L, rot, cfg.total_len)
        self.H = _GraphModule(model.H, rot, cfg.total_len) if model.H is not None else None
        cos = model.rope_cos.repeat(1, cfg.heads)  # (T, d)
        sin = model.rope_sin.repeat(1, cfg.heads)
        scale = hd ** -0.5
        self.register_buffer("cos", torch.cat((cos * scale, cos), -1))  # [q | k]
        self.register_buffer("sin", torch.cat((sin * scale, sin), -1))
        mask = model.attn_mask
        self.register_buffer("bias", None if mask is None else torch.zeros(mask.shape).masked_fill(~mask, float("-inf")))
        self.lm_head = model.lm_head
        self.q_head = model.q_head

    def forward(self, inputs: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        x = self.embedding(inputs)
        cos, sin, bias = self.cos, self.sin, self.bias
        if self.H is None:  # TRM: one network serves both updates; no continue head
            for _ in range(cfg.H_cycles):
                for _ in range(cfg.L_cycles):
                    z_L = self.L(z_L, z_H + x, cos, sin, bias)
                z_H = self.L(z_H, z_L, cos, sin, bias)
        else:
            for _ in range(cfg.H_cycles):
                for _ in range(cfg.L_cycles):
                    z_L = self.L(z_L, z_H + x, cos, sin, bias)
                z_H = self.H(z_H, z_L, cos, sin, bias)
        logits = self.lm_head(z_H[:, cfg.n_prefix:])
        q = self.q_head(z_H[:, 0])
        q_halt = q[:, 0]
        q_continue = q[:, 1] if self.H is not None else torch.zeros_like(q_halt)
        return z_H, z_L, logits, q_halt, q_continue
