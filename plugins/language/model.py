"""The explanation model: a transformer encoder over the solved grid's cells and a decoder over
the explanation's tokens, either non-autoregressive (mask-predict, every slot token at once) or
autoregressive (the baseline: one token at a time, causal, with a key/value cache). Both
decoders have the same size and the same conditioning, so they differ only in how they decode.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from .vocab import MAX_N, SIZES, SLOT_LEN, TOKENS


@attrs.frozen
class ModelConfig:
    """Sizes of the model; ``decoder`` is ``"nat"`` (mask-predict) or ``"ar"`` (autoregressive)."""

    decoder: str = attrs.field(default="nat", validator=attrs.validators.in_(("nat", "ar")))
    d: int = 128
    heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 4
    ff: int = 384
    vocab: int = len(TOKENS)
    max_len: int = MAX_N * MAX_N * (SLOT_LEN + 1)


class Attention(nn.Module):
    """Multi-head attention (self or cross) with an optional preallocated key/value cache."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        return x.view(B, T, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False, cache: dict | None = None) -> torch.Tensor:
        q = self.split(self.q(x))
        if cache is not None and "mem_k" in cache:  # cross attention over a precomputed memory
            k, v = cache["mem_k"], cache["mem_v"]
        else:
            src = x if kv is None else kv
            k, v = self.split(self.k(src)), self.split(self.v(src))
            if cache is not None:  # incremental self attention: append this step's keys
                t = cache["t"]
                cache["k"][:, :, t:t + k.shape[2]] = k
                cache["v"][:, :, t:t + k.shape[2]] = v
                k, v = cache["k"][:, :, :t + k.shape[2]], cache["v"][:, :, :t + k.shape[2]]
                causal = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        B, h, T, dh = out.shape
        return self.o(out.transpose(1, 2).reshape(B, T, h * dh))


class Block(nn.Module):
    """Pre-norm transformer block: self attention, optional cross attention, GELU MLP."""

    def __init__(self, d: int, heads: int, ff: int, cross: bool) -> None:
        super().__init__()
        self.n1, self.att = nn.LayerNorm(d), Attention(d, heads)
        self.n2, self.cross = (nn.LayerNorm(d), Attention(d, heads)) if cross else (None, None)
        self.n3, self.mlp = nn.LayerNorm(d), nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x: torch.Tensor, mem: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False, cache: dict | None = None) -> torch.Tensor:
        x = x + self.att(self.n1(x), mask=mask, causal=causal, cache=None if cache is None else cache["self"])
        if self.cross is not None:
            x = x + self.cross(self.n2(x), kv=mem, cache=None if cache is None else cache["cross"])
        return x + self.mlp(self.n3(x))


def cell_coords(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, box) index of each of the n*n cells, row-major."""
    from plugins.puzzles.explain import box_index

    idx = torch.arange(n * n)
    rows, cols = idx // n, idx % n
    boxes = torch.tensor([box_index(n, int(r), int(c)) for r, c in zip(rows, cols)])
    return rows, cols, boxes


class Explainer(nn.Module):
    """Encoder over (given?, digit, row, column, box, size) of each cell; a NAT or AR decoder."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d
        self.given, self.digit = nn.Embedding(2, d), nn.Embedding(MAX_N + 1, d)
        self.row, self.col, self.box = (nn.Embedding(MAX_N, d) for _ in range(3))
        self.size = nn.Embedding(len(SIZES), d)
        self.encoder = nn.ModuleList(Block(d, cfg.heads, cfg.ff, cross=False) for _ in range(cfg.enc_layers))
        self.tok = nn.Embedding(cfg.vocab, d)
        self.slot_pos = nn.Embedding(SLOT_LEN + 1, d)
        self.abs_pos = nn.Embedding(cfg.max_len, d) if cfg.decoder == "ar" else None
        self.decoder = nn.ModuleList(Block(d, cfg.heads, cfg.ff, cross=True) for _ in range(cfg.dec_layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, cfg.vocab)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def encode(self, given: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        """(B, n*n, d) memory of the solved grid."""
        n = int(round(given.shape[1] ** 0.5))
        rows, cols, boxes = cell_coords(n)
        x = self.given(given) + self.digit(digit) + self.row(rows) + self.col(cols) + self.box(boxes)
        x = x + self.size.weight[SIZES.index(n)]
        for block in self.encoder:
            x = block(x)
        return x

    @staticmethod
    def cell_memory(mem: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """(B, S, d) memory rows of each slot's cell (padding slots read cell 0)."""
        idx = cells.clamp(min=0).unsqueeze(-1).expand(-1, -1, mem.shape[-1])
        return mem.gather(1, idx)

    def nat_logits(self, mem: torch.Tensor, cells: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S, SLOT_LEN, vocab) logits for every slot token given the partly masked ``tokens``."""
        B, S, L = tokens.shape
        x = self.tok(tokens) + self.slot_pos.weight[:L] + self.cell_memory(mem, cells).unsqueeze(2)
        x = x.reshape(B, S * L, -1)
        keep = (cells >= 0).repeat_interleave(L, dim=1)[:, None, None, :]
        for block in self.decoder:
            x = block(x, mem, mask=keep)
        return self.head(self.norm(x)).view(B, S, L, -1)

    def _ar_input(self, mem: torch.Tensor, cells: torch.Tensor, prev: torch.Tensor, slot: torch.Tensor,
                  pos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        slot_mem = self.cell_memory(mem, cells.gather(1, slot.clamp(max=cells.shape[1] - 1)))
        return self.tok(prev) + self.slot_pos(pos.clamp(max=SLOT_LEN)) + slot_mem + self.abs_pos(t)

    def ar_logits(self, mem: torch.Tensor, cells: torch.Tensor, prev: torch.Tensor, slot: torch.Tensor,
                  pos: torch.Tensor) -> torch.Tensor:
        """(B, T, vocab) teacher-forced logits: ``prev`` the tokens before each target, ``slot`` and
        ``pos`` the target's slot and position within it."""
        t = torch.arange(prev.shape[1]).expand_as(prev)
        x = self._ar_input(mem, cells, prev, slot, pos, t)
        for block in self.decoder:
            x = block(x, mem, causal=True)
        return self.head(self.norm(x))

    def ar_cache(self, mem: torch.Tensor, length: int) -> list[dict]:
        """Per decoder layer: a preallocated self-attention cache and the memory's keys/values."""
        B = mem.shape[0]
        h, dh = self.cfg.heads, self.cfg.d // self.cfg.heads
        caches = []
        for block in self.decoder:
            cross = block.cross
            caches.append({"self": {"k": mem.new_zeros(B, h, length, dh), "v": mem.new_zeros(B, h, length, dh), "t": 0},
                           "cross": {"mem_k": cross.split(cross.k(mem)), "mem_v": cross.split(cross.v(mem))}})
        return caches

    def ar_step(self, mem: torch.Tensor, cells: torch.Tensor, prev: torch.Tensor, slot: torch.Tensor,
                pos: torch.Tensor, t: int, caches: list[dict]) -> torch.Tensor:
        """(B, vocab) logits of the next token; ``prev``, ``slot``, ``pos`` are (B,) for step ``t``."""
        x = self._ar_input(mem, cells, prev[:, None], slot[:, None], pos[:, None], torch.full_like(prev[:, None], t))
        for block, cache in zip(self.decoder, caches):
            cache["self"]["t"] = t
            x = block(x, mem, cache=cache)
        return self.head(self.norm(x))[:, 0]
