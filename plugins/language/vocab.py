"""Word-level vocabulary and the slot layout of the decoder's output.

The non-autoregressive decoder writes one slot of ``SLOT_LEN`` tokens per blank cell, in
row-major order: an order key ``#k`` (the round in which the claim holds), then the claim's
words, then ``<pad>``. The text lists the slots' claims sorted by their key (row-major within a
key), one claim per line, which is the explainer's own order. The autoregressive baseline
writes the same slots without padding, each closed by ``<sep>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plugins.puzzles.explain import PHRASES, Placement, cell_name, detokenize, phrase, tokenize

PAD, MASK, SEP, BOS = "<pad>", "<mask>", "<sep>", "<bos>"
SIZES = (4, 6)
MAX_N = 6
MAX_KEY = 16
SLOT_LEN = 17


def _words() -> list[str]:
    words: set[str] = {"=", ":", "box", "row", "column"}
    for options in PHRASES.values():
        for t in options:
            words.update(tokenize(t.replace("{d}", "1").replace("{unit}", "box 1")))
    words -= {str(d) for d in range(10)}
    return sorted(words)


TOKENS: tuple[str, ...] = (PAD, MASK, SEP, BOS, *(f"#{k}" for k in range(1, MAX_KEY + 1)),
                           *(str(d) for d in range(1, MAX_N + 1)),
                           *(cell_name(r, c) for r in range(MAX_N) for c in range(MAX_N)), *_words())
INDEX = {t: i for i, t in enumerate(TOKENS)}
PAD_ID, MASK_ID, SEP_ID, BOS_ID = (INDEX[t] for t in (PAD, MASK, SEP, BOS))
KEY_IDS = np.array([INDEX[f"#{k}"] for k in range(1, MAX_KEY + 1)])


def encode_slot(pl: Placement, variant: int) -> list[int]:
    """Token ids of one placement's slot (key and claim, unpadded) in phrasing ``variant``."""
    if pl.round > MAX_KEY:
        raise ValueError(f"round {pl.round} beyond the vocabulary's {MAX_KEY} order keys")
    ids = [INDEX[f"#{pl.round}"]] + [INDEX[t] for t in tokenize(phrase(pl, variant))]
    if len(ids) > SLOT_LEN:
        raise ValueError(f"claim of {len(ids)} tokens exceeds the slot length {SLOT_LEN}")
    return ids


def slot_text(ids: Sequence[int]) -> tuple[int, str]:
    """(order key, claim text) of one slot's token ids; key MAX_KEY + 1 when the slot has none;
    ``?`` for an empty claim so that every slot stays one claim."""
    words = [TOKENS[i] for i in ids if i not in (PAD_ID, MASK_ID, SEP_ID, BOS_ID)]
    key = MAX_KEY + 1
    if words and words[0].startswith("#"):
        key = int(words[0][1:])
        words = words[1:]
    words = [w for w in words if not w.startswith("#")]
    return key, detokenize(words) or "?"


def render(slots: Sequence[Sequence[int]]) -> tuple[str, list[int]]:
    """(text, order): the slots' claims sorted by key, one per line, and the slot index of each line."""
    keyed = [(slot_text(ids), i) for i, ids in enumerate(slots)]
    order = sorted(range(len(keyed)), key=lambda j: (keyed[j][0][0], j))
    return "\n".join(keyed[j][0][1] for j in order), order
