"""Hypothesis strategies for nested plugin states (shared by the core and persistence tests)."""

import numpy as np
import torch
from hypothesis import strategies as st

TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
                torch.int16, torch.int32, torch.int64, torch.bool]
NUMPY_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_]

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(shapes)
    n = int(np.prod(shape)) if shape else 1
    raw = draw(st.binary(min_size=n * torch.empty((), dtype=dtype).element_size(),
                         max_size=n * torch.empty((), dtype=dtype).element_size()))
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    if dtype == torch.bool:
        return (flat % 2).bool().reshape(shape)
    return flat.view(dtype).reshape(shape).clone()


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(NUMPY_DTYPES)))
    shape = draw(shapes)
    n = int(np.prod(shape)) if shape else 1
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    if dtype == np.bool_:
        return (np.frombuffer(raw, dtype=np.uint8) % 2).astype(np.bool_).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


plain = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True),
                  st.text(max_size=8), st.binary(max_size=8))
keys = st.text(alphabet="abcdefgh_0123", min_size=1, max_size=6)
leaves = st.one_of(tensors(), arrays(), plain)
trees = st.recursive(leaves, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3),
    st.lists(children, max_size=3).map(tuple)), max_leaves=8)
json_meta = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(-1e9, 1e9),
                                   st.text(max_size=6)),
                         lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(keys, c, max_size=3)),
                         max_leaves=6)
