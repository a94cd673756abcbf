"""Turn nested plugin values into (flat tensor dict, JSON/msgpack-able skeleton) and back.

Persistence stores the tensors in safetensors and the skeleton in msgpack, so this codec is
the one place that decides how a plugin state becomes bytes. Supported leaves: torch tensors
(any dtype safetensors stores), numpy arrays and numpy scalars, ``None``, ``bool``, ``int``,
``float``, ``str`` and ``bytes``; containers: ``dict`` with ``str`` keys, ``list``, ``tuple``.
The round trip is bit-exact: dtype, shape and every byte of the data are preserved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import StateCodecError

#: Skeleton node tags. A node is a one-key dict ``{tag: payload}``.
TENSOR, ARRAY, NUMPY_SCALAR, DICT, LIST, TUPLE, VALUE = "t", "a", "n", "d", "l", "u", "v"

_PLAIN = (type(None), bool, int, float, str, bytes)
#: msgpack integers are at most 64 bits wide.
_INT_RANGE = (-(2**63), 2**64 - 1)


def encode_tree(value: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split ``value`` into ``(tensors, skeleton)``.

    ``tensors`` maps a path such as ``"x/weights/0"`` to a contiguous CPU tensor that owns
    exactly its bytes (a view into a larger tensor is copied);
    ``skeleton`` mirrors the structure with tensor leaves replaced by their path.
    Raises :class:`StateCodecError` naming the path of an unsupported value.
    """
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(value, prefix, tensors)
    return tensors, skeleton


def decode_tree(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Rebuild the value that :func:`encode_tree` split into ``tensors`` and ``skeleton``."""
    return _decode(skeleton, tensors)


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
            tensor = tensor.clone()  # a view into a larger tensor (a row of a batch): keep only its own bytes
        tensors[path] = tensor
        return {TENSOR: path}
    if isinstance(value, np.ndarray):
        tensors[path] = _array_to_tensor(value, path)
        return {ARRAY: path}
    if isinstance(value, np.generic):
        tensors[path] = _array_to_tensor(np.asarray(value), path)
        return {NUMPY_SCALAR: path}
    if isinstance(value, _PLAIN):
        if isinstance(value, int) and not isinstance(value, bool):
            if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                raise StateCodecError(f"{path or '<root>'}: integer {value} does not fit in 64 bits")
        return {VALUE: value}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StateCodecError(
                    f"{path or '<root>'}: dict key {key!r} is a {type(key).__name__}; "
                    "state dicts need str keys"
                )
            if "/" in key:
                raise StateCodecError(f"{path or '<root>'}: dict key {key!r} may not contain '/'")
            out[key] = _encode(item, f"{path}/{key}" if path else key, tensors)
        return {DICT: out}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, f"{path}/{i}" if path else str(i), tensors) for i, item in enumerate(value)]
        return {TUPLE if isinstance(value, tuple) else LIST: items}
    raise StateCodecError(
        f"{path or '<root>'}: cannot export a {type(value).__module__}.{type(value).__qualname__}; "
        "use tensors, numpy arrays, plain scalars, str/bytes, or dict/list/tuple of them, "
        "or override export_state/import_state"
    )


def _array_to_tensor(array: np.ndarray, path: str) -> torch.Tensor:
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    try:
        return torch.from_numpy(np.array(array, order="C", copy=True))
    except TypeError as exc:
        raise StateCodecError(f"{path}: numpy dtype {array.dtype} has no tensor equivalent") from exc


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise StateCodecError(f"malformed skeleton node {node!r:.80}")
    ((tag, payload),) = node.items()
    if tag == VALUE:
        return payload
    if tag in (TENSOR, ARRAY, NUMPY_SCALAR):
        if not isinstance(payload, str) or payload not in tensors:
            raise StateCodecError(f"skeleton names tensor {payload!r:.80} which is not in the file")
        tensor = tensors[payload]
        if tag == TENSOR:
            return tensor
        array = tensor.numpy()
        return array[()] if tag == NUMPY_SCALAR else array
    if tag == DICT and isinstance(payload, dict):
        return {key: _decode(item, tensors) for key, item in payload.items()}
    if tag in (LIST, TUPLE) and isinstance(payload, list):
        items = [_decode(item, tensors) for item in payload]
        return tuple(items) if tag == TUPLE else items
    raise StateCodecError(f"malformed skeleton node with tag {tag!r:.20}")
