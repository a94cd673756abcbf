"""A leaner inference-only forward of :meth:`HRM.segment` for serving (the IRP plugin).

Same weights and the same arithmetic up to float rounding (checked against ``HRM.segment``
when built; any model it does not cover falls back to ``HRM.segment``), with fewer and
cheaper kernels, which matters most for large batches (many sessions stepped together):

* the rotary ``rotate_half`` is folded into the projection (the rotated q/k are a signed
  permutation of q/k, so their weight rows are a signed permutation of ``W_q``/``W_k``: a
  matmul into a contiguous buffer instead of chunk/neg/cat copies of strided slices), and the
  attention scale 1/sqrt(head_dim) into the q rotary tables;
* attention over the ~20 tokens of a puzzle as two batched matmuls with the softmax taken
  over a strided axis (``F.scaled_dot_product_attention`` and a softmax over a short last
  axis are several times slower on CPU at these sizes);
* each residual add folded into its output projection (``addmm``) and the RMSNorm taken in
  place on that fresh result (``F.rms_norm`` adds dtype round trips and a division pass on CPU);
* SwiGLU's gate and up projections as two matmuls on contiguous row blocks of the weight
  (SiLU of a non-contiguous half is slow) and the product in place;
* the largest intermediates of a block (q/k, rotated q/k, gate, up) written into per-thread
  workspace buffers that are reused across blocks and calls: at batch 64 fresh allocations of
  that size made glibc hand memory back to the kernel and fault it in again, thousands of
  page faults per segment (a quarter of the forward's time);
* one intra-op thread for a call of fewer than ``PARALLEL_MIN_TOKENS`` tokens (batch x
  sequence; :func:`threads_for`): splitting a batch-1 segment across two threads makes it 8 %
  slower, while at batch 64 two threads take 0.59x (4x4) and 0.54x (6x6) of one thread's time.

Weights are used as views (never copied), so the forward stays correct if the model's
parameters change; the derived tables (rotary, signed permutations) depend only on buffers and
the config.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import torch
import torch.nn.functional as F

from .model import HRM, Block, ReasoningModule

#: Calls of fewer tokens (batch x sequence) run on one intra-op thread. Measured on 2 cores, two
#: threads against one: 2-9 % slower at 17-37 tokens, 2-7 % faster at 68-74, 10-11 % faster at
#: 136-148 and 41-46 % at 1,088-2,368; below 128 the gain does not pay for the second core, which
#: the OpenMP thread keeps spinning.
PARALLEL_MIN_TOKENS = 128


class _OneThread:
    """Context: torch's intra-op threads set to one while any thread is inside (the setting is
    process-wide), restored to what it was when the first one entered once the last one leaves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._restore = 1

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._restore = torch.get_num_threads()
                torch.set_num_threads(1)
            self._inside += 1

    def __exit__(self, *_: Any) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                torch.set_num_threads(self._restore)


_ONE_THREAD = _OneThread()


def threads_for(tokens: int) -> contextlib.AbstractContextManager[None]:
    """Context for torch work on ``tokens`` tokens (batch x sequence): one intra-op thread below
    ``PARALLEL_MIN_TOKENS``, else torch's setting. Wrap all of a small step's torch ops, not just
    the forward: a small op run with idle pool threads wakes them, and they spin on a core."""
    if tokens < PARALLEL_MIN_TOKENS and torch.get_num_threads() > 1:
        return _ONE_THREAD
    return contextlib.nullcontext()


class FastSegment:
    """``FastSegment(model)(carry, inputs)`` == ``model.segment(carry, {"inputs": inputs})``
    (within float tolerance), run under ``torch.inference_mode()``; outputs never alias the
    workspace."""

    def __init__(self, model: HRM, check: bool = True) -> None:
        self.model = model
        cfg = model.cfg
        # covered: the HRM variant with full attention and rotary tables (1-D, 2-D or none) applied
        # by rotate_half; anything else (TRM, local attention masks, subclasses) uses HRM.segment
        self.supported = (cfg.variant == "hrm" and model.H is not None and getattr(cfg, "attn_window", 0) == 0
                          and cfg.hidden % cfg.heads == 0 and (cfg.hidden // cfg.heads) % 2 == 0
                          and _plain_model(model))
        if not self.supported:
            return
        d, H = cfg.hidden, cfg.heads
        hd = d // H
        self.d, self.heads, self.hd = d, H, hd
        scale = hd ** -0.5
        cos, sin = model.rope_cos, model.rope_sin  # (T, hd)
        sign = torch.cat((-torch.ones(hd // 2), torch.ones(hd // 2)))
        # rotate_half(q)[j] = sign[j] * q[perm[j]] within each head
        within = torch.cat((torch.arange(hd // 2, hd), torch.arange(hd // 2)))
        self._perm = (torch.arange(H)[:, None] * hd + within[None]).reshape(-1)
        self._sign = sign.repeat(H)
        self.cos2 = torch.cat(((cos * scale).repeat(1, H), cos.repeat(1, H)), -1)  # (T, 2d): [q | k]
        self.sin2 = torch.cat(((sin * scale).repeat(1, H), sin.repeat(1, H)), -1)
        self._qkv: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self._local = threading.local()  # workspace buffers, one set per thread
        if check and not self._agrees():
            self.supported = False

    def _qkv_weight(self, block: Block) -> torch.Tensor:
        """[W_q; W_k; rot(W_q); rot(W_k); W_v] for ``block`` (rebuilt if the weight changed)."""
        w = block.attn.qkv.weight
        cached = self._qkv.get(id(block))
        if cached is not None and cached[0] is w and w._version == cached[2]:
            return cached[1]
        d = self.d
        wq, wk, wv = w[:d], w[d:2 * d], w[2 * d:]
        s = self._sign[:, None]
        w5 = torch.cat((wq, wk, wq[self._perm] * s, wk[self._perm] * s, wv)).contiguous()
        self._qkv[id(block)] = (w, w5, w._version)
        return w5

    def _buffer(self, name: str, rows: int, cols: int) -> torch.Tensor:
        bufs = self._local.__dict__
        buf = bufs.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols:
            buf = bufs[name] = torch.empty(rows, cols)
        return buf[:rows]

    def _block(self, block: Block, x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
        B, S, d = x.shape
        H, hd = self.heads, self.hd
        x2 = x.reshape(B * S, d)
        w5 = self._qkv_weight(block)  # rows [q | k | rot q | rot k | v]
        qk = torch.mm(x2, w5[:2 * d].t(), out=self._buffer("qk", B * S, 2 * d)).view(B, S, 2 * d)
        qk_rot = torch.mm(x2, w5[2 * d:4 * d].t(), out=self._buffer("qk_rot", B * S, 2 * d)).view(B, S, 2 * d)
        v = torch.mm(x2, w5[4 * d:].t())
        qk.mul_(cos2).addcmul_(qk_rot, sin2)  # rotary: q * cos + rotate_half(q) * sin (scaled for q)
        q = qk[..., :d].reshape(B, S, H, hd).transpose(1, 2).reshape(B * H, S, hd)
        k = qk[..., d:].reshape(B, S, H, hd).transpose(1, 2).reshape(B * H, S, hd)
        v = v.view(B, S, H, hd).transpose(1, 2).reshape(B * H, S, hd)
        p = torch.bmm(k, q.transpose(1, 2)).softmax(1)  # (B*H, key, query): softmax over keys
        y = torch.bmm(p.transpose(1, 2), v).view(B, H, S, hd).transpose(1, 2).reshape(B * S, d)
        x2 = _rms_norm_(torch.addmm(x2, y, block.attn.out.weight.t()), block.eps)  # residual add in the GEMM
        w = block.mlp.gate_up.weight
        inter = w.shape[0] // 2
        g = torch.mm(x2, w[:inter].t(), out=self._buffer("gate", B * S, inter))
        u = torch.mm(x2, w[inter:].t(), out=self._buffer("up", B * S, inter))
        h = F.silu(g, inplace=True).mul_(u)
        return _rms_norm_(torch.addmm(x2, h, block.mlp.down.weight.t()), block.eps).view(B, S, d)

    def _module(self, module: ReasoningModule, h: torch.Tensor, injection: torch.Tensor,
                cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
        h = h + injection
        for layer in module.layers:
            h = self._block(layer, h, cos2, sin2)
        return h

    def __call__(self, carry: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[Any, ...]:
        with torch.inference_mode():
            if not self.supported:
                return self.model.segment(carry, {"inputs": inputs})
            with threads_for(inputs.shape[0] * self.model.cfg.total_len):
                return self._segment(carry, inputs)

    def _segment(self, carry: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[Any, ...]:
        model = self.model
        cfg = model.cfg
        x = model.input_embedding(inputs)
        T = x.shape[1]
        cos2, sin2 = self.cos2[:T], self.sin2[:T]
        z_H, z_L = carry["z_H"], carry["z_L"]
        for _ in range(cfg.H_cycles):
            for _ in range(cfg.L_cycles):
                z_L = self._module(model.L, z_L, z_H + x, cos2, sin2)
            z_H = self._module(model.H, z_H, z_L, cos2, sin2)
        logits = model.lm_head(z_H[:, cfg.n_prefix:])
        q = model.q_head(z_H[:, 0]).float()
        return {"z_H": z_H, "z_L": z_L}, logits, q[:, 0], q[:, 1]

    def _agrees(self) -> bool:
        """This forward matches ``HRM.segment`` on a random batch (else the caller falls back)."""
        model = self.model
        cfg = model.cfg
        g = torch.Generator().manual_seed(0)
        inputs = torch.randint(0, cfg.vocab, (3, cfg.seq_len), generator=g)
        with torch.inference_mode():
            carry = model.initial_carry(3)
            carry = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in carry.items()}
            ref = model.segment(carry, {"inputs": inputs})
            got = self._segment(carry, inputs)
        pairs = [(ref[0]["z_H"], got[0]["z_H"]), (ref[0]["z_L"], got[0]["z_L"]), *zip(ref[1:], got[1:])]
        return all(r.shape == o.shape and torch.allclose(r, o, rtol=1e-4, atol=1e-4) for r, o in pairs)


def _rms_norm_(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Parameter-free RMSNorm over the last axis, in place on a fresh float32 ``x`` (the
    reference's ``F.rms_norm`` adds dtype round trips and a division pass on CPU)."""
    scale = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
    return x.mul_(scale)


def _plain_model(model: HRM) -> bool:
    """The model is built from the stock blocks this forward reimplements (no subclasses)."""
    from .model import Attention, SwiGLU

    blocks = [b for m in (model.H, model.L) for b in m.layers]
    return (type(model).segment is HRM.segment and type(model).input_embedding is HRM.input_embedding
            and all(type(b) is Block and type(b.attn) is Attention and type(b.mlp) is SwiGLU for b in blocks))
