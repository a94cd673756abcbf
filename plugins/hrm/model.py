"""Hierarchical Reasoning Model (HRM) in plain PyTorch, float32, CPU friendly.

Faithful to the published architecture: scaled token embedding plus a learned task prefix;
two recurrent modules H (slow) and L (fast), each a stack of non-causal post-norm
transformer blocks (parameter-free RMSNorm, SwiGLU, rotary positions,
``F.scaled_dot_product_attention``). Within a segment L is updated ``L_cycles`` times per H
update, with the input embedding injected at every L update, and H is updated from L
``H_cycles`` times. Only the last L and H update carry gradient (one-step gradient); the
carry returned by :meth:`HRM.segment` is detached. A Q head on the first H position predicts
(halt, continue) logits for ACT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import HRMConfig

_TRUNC_STD_FIX = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def trunc_lecun_(w: torch.Tensor, fan_in: int | None = None, std: float | None = None) -> torch.Tensor:
    """Truncated normal (at 2 std) with exact standard deviation ``std`` (LeCun: 1/sqrt(fan_in))."""
    if std is None:
        std = 1.0 / math.sqrt(fan_in if fan_in is not None else w.shape[-1])
    s = std / _TRUNC_STD_FIX
    with torch.no_grad():
        nn.init.trunc_normal_(w, mean=0.0, std=s, a=-2 * s, b=2 * s)
    return w


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Linear(nn.Linear):
    def __init__(self, i: int, o: int, bias: bool = False) -> None:
        super().__init__(i, o, bias=bias)
        trunc_lecun_(self.weight, fan_in=i)
        if bias:
            nn.init.zeros_(self.bias)


class Attention(nn.Module):
    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.hidden // cfg.heads
        self.qkv = Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        B, S, _ = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        return self.out(y.transpose(1, 2).reshape(B, S, -1))


class SwiGLU(nn.Module):
    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__()
        inter = int(round(cfg.expansion * cfg.hidden * 2 / 3 / 16)) * 16
        self.gate_up = Linear(cfg.hidden, 2 * inter)
        self.down = Linear(inter, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * u)


class Block(nn.Module):
    """Post-norm transformer block: x = norm(x + attn(x)); x = norm(x + mlp(x))."""

    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__()
        self.eps = cfg.rms_eps
        self.attn = Attention(cfg)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = rms_norm(x + self.attn(x, cos, sin, mask), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks applied to ``hidden + injection``."""

    def __init__(self, cfg: HRMConfig, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(cfg) for _ in range(layers))

    def forward(self, h: torch.Tensor, injection: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        h = h + injection
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return h


def rope_angles(cfg: HRMConfig) -> torch.Tensor:
    """Rotary angles (total_len, head_dim); pair (i, i + head_dim/2) rotates by column i.

    ``rope``: position p of the flattened sequence (prefix first). ``rope2d``: the grid cell
    (r, c) rotates the first half of the pairs by r and the second half by c (each half with its
    own frequency ladder); prefix positions are unrotated. ``learned``: all zero (no rotary).
    """
    hd = cfg.hidden // cfg.heads
    if cfg.pos_encoding == "learned":
        return torch.zeros(cfg.total_len, hd)
    if cfg.pos_encoding == "rope2d":
        q = hd // 2  # rotated pairs per head, split between the two axes
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, q, 2, dtype=torch.float32) / q))
        side = int(round(cfg.seq_len ** 0.5))
        pos = torch.arange(cfg.seq_len)
        rows, cols = (pos // side).float(), (pos % side).float()
        freqs = torch.cat((torch.outer(rows, inv), torch.outer(cols, inv)), dim=-1)
        freqs = torch.cat((torch.zeros(cfg.n_prefix, q), freqs), dim=0)
    else:
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.outer(torch.arange(cfg.total_len, dtype=torch.float32), inv)
    return torch.cat((freqs, freqs), dim=-1)


def local_attention_mask(cfg: HRMConfig) -> torch.Tensor:
    """(total_len, total_len) bool, True = may attend: grid cells see the cells within
    Chebyshev distance ``attn_window`` on the square grid; prefix positions see and are seen by all."""
    side = int(round(cfg.seq_len ** 0.5))
    pos = torch.arange(cfg.seq_len)
    r, c = pos // side, pos % side
    near = torch.maximum((r[:, None] - r[None]).abs(), (c[:, None] - c[None]).abs()) <= cfg.attn_window
    m = torch.ones(cfg.total_len, cfg.total_len, dtype=torch.bool)
    m[cfg.n_prefix:, cfg.n_prefix:] = near
    return m


class HRM(nn.Module):
    def __init__(self, cfg: HRMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.embed_scale = math.sqrt(d)
        self.embed = nn.Embedding(cfg.vocab, d)
        trunc_lecun_(self.embed.weight, std=1.0 / self.embed_scale)
        self.prefix = nn.Parameter(torch.zeros(cfg.n_task_ids, cfg.n_prefix, d))
        # TRM variant: one network (self.L) serves both updates; no H stack
        self.H = ReasoningModule(cfg, cfg.H_layers) if cfg.variant == "hrm" else None
        self.L = ReasoningModule(cfg, cfg.L_layers)
        self.lm_head = Linear(d, cfg.n_classes)
        self.q_head = Linear(d, 2, bias=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        # fixed initial states, saved with the weights
        self.register_buffer("H_init", trunc_lecun_(torch.empty(d), std=1.0))
        self.register_buffer("L_init", trunc_lecun_(torch.empty(d), std=1.0))
        if cfg.pos_encoding == "learned":  # reference option: learned absolute positions, no rotary
            self.pos_embed = nn.Parameter(trunc_lecun_(torch.empty(cfg.total_len, d), std=1.0 / self.embed_scale))
        emb = rope_angles(cfg)
        self.register_buffer("rope_cos", emb.cos(), persistent=False)
        self.register_buffer("rope_sin", emb.sin(), persistent=False)
        self.register_buffer("attn_mask", local_attention_mask(cfg) if cfg.attn_window > 0 else None, persistent=False)

    # --- carry ------------------------------------------------------------------------
    def initial_carry(self, batch_size: int) -> dict[str, torch.Tensor]:
        shape = (batch_size, self.cfg.total_len, self.cfg.hidden)
        return {"z_H": self.H_init.expand(shape).clone(), "z_L": self.L_init.expand(shape).clone()}

    def reset_carry(self, carry: dict[str, torch.Tensor], reset: torch.Tensor) -> dict[str, torch.Tensor]:
        """Carry with the rows where ``reset`` (bool, (B,)) is true set back to the initial states."""
        m = reset.view(-1, 1, 1)
        return {"z_H": torch.where(m, self.H_init, carry["z_H"]), "z_L": torch.where(m, self.L_init, carry["z_L"])}

    def act_halt(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """The inference ACT decision per row: q_halt - q_continue > ``cfg.halt_margin``."""
        return (q_halt - q_continue) > self.cfg.halt_margin

    # --- forward ----------------------------------------------------------------------
    def input_embedding(self, inputs: torch.Tensor, task_id: torch.Tensor | None = None) -> torch.Tensor:
        B = inputs.shape[0]
        tok = self.embed(inputs) * self.embed_scale
        if task_id is None:
            pre = self.prefix[0].expand(B, -1, -1)
        else:
            pre = self.prefix[task_id]
        x = torch.cat((pre * self.embed_scale, tok), dim=1)
        if self.cfg.pos_encoding == "learned":
            x = 0.7071067811865476 * (x + self.pos_embed * self.embed_scale)
        return x

    def segment(self, carry: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        """One ACT segment: returns (new_carry (detached), logits (B, L, C), q_halt (B,), q_continue (B,))."""
        cfg = self.cfg
        x = self.input_embedding(batch["inputs"], batch.get("task_id"))
        cos, sin = self.rope_cos, self.rope_sin
        z_H, z_L = carry["z_H"], carry["z_L"]
        if cfg.variant == "trm":
            return self._trm_segment(z_H, z_L, x)
        with torch.no_grad():
            for h in range(cfg.H_cycles):
                for l in range(cfg.L_cycles):
                    if h == cfg.H_cycles - 1 and l == cfg.L_cycles - 1:
                        break
                    z_L = self.L(z_L, z_H + x, cos, sin, self.attn_mask)
                if h < cfg.H_cycles - 1:
                    z_H = self.H(z_H, z_L, cos, sin, self.attn_mask)
        # one-step gradient: only the final L and H updates are differentiated
        z_L = self.L(z_L, z_H + x, cos, sin, self.attn_mask)
        z_H = self.H(z_H, z_L, cos, sin, self.attn_mask)
        logits = self.lm_head(z_H[:, cfg.n_prefix:])
        q = self.q_head(z_H[:, 0]).float()
        return {"z_H": z_H.detach(), "z_L": z_L.detach()}, logits, q[:, 0], q[:, 1]

    def _trm_segment(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor):
        """TRM-style segment (optional variant): one network; ``H_cycles`` recursions of
        (``L_cycles`` latent updates z = net(z, y + x), then y = net(y, z)); all but the last
        recursion without grad, full backprop through the last. Halt head only: q_continue = 0."""
        cfg = self.cfg
        cos, sin = self.rope_cos, self.rope_sin
        for h in range(cfg.H_cycles):
            ctx = torch.enable_grad() if h == cfg.H_cycles - 1 and torch.is_grad_enabled() else torch.no_grad()
            with ctx:
                for _ in range(cfg.L_cycles):
                    z = self.L(z, y + x, cos, sin, self.attn_mask)
                y = self.L(y, z, cos, sin, self.attn_mask)
        logits = self.lm_head(y[:, cfg.n_prefix:])
        q_halt = self.q_head(y[:, 0]).float()[:, 0]
        return {"z_H": y.detach(), "z_L": z.detach()}, logits, q_halt, torch.zeros_like(q_halt)


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token stable-max cross entropy (Prieto et al.), as used by the HRM reference."""
    logits = logits.double()
    s = torch.where(logits < 0, 1 / (1 - logits), logits + 1)
    logp = torch.log(s / s.sum(-1, keepdim=True))
    return -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1).float()


def token_loss(cfg: HRMConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss (B, L)."""
    if cfg.loss == "stablemax":
        return stablemax_cross_entropy(logits, labels)
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")


def sequence_loss(cfg: HRMConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sequence loss (B,): mean token loss, or with ``cfg.class_weights`` the weighted mean
    sum(w[label] * loss) / sum(w[label])."""
    tl = token_loss(cfg, logits, labels)
    if cfg.class_weights is None:
        return tl.mean(-1)
    w = torch.tensor(cfg.class_weights, dtype=tl.dtype)[labels]
    return (w * tl).sum(-1) / w.sum(-1).clamp_min(1e-12)
