"""Reading weight files that may be damaged: a safetensors file is checked against its own header
before it is read (empty, truncated, not a safetensors file), and every tensor imported is checked
for non-finite values, so that a damaged download stops the import naming the file (and the
tensor) instead of becoming a model that answers `nan`.

The checks are cheap next to the read: the header is a few kilobytes, and `np.isfinite(...).all()`
is one pass over each tensor already in memory.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bert_jax.errors import DamagedWeights

# The largest header the safetensors format allows (its MAX_HEADER_SIZE): a larger length field
# is not a header length at all.
MAX_HEADER_BYTES = 100_000_000


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the safetensors file at `path` judged by its size and header (empty,
    truncated, an invalid header, not a safetensors file), or None when it looks whole."""
    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            return f"truncated: it has {size} bytes, fewer than the 8 of a safetensors header length"
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > MAX_HEADER_BYTES:
            return (f"not a safetensors file: its first 8 bytes give a header length of "
                    f"{header_bytes} bytes, which no safetensors file has")
        if 8 + header_bytes > size:
            return f"truncated: its header says at least {8 + header_bytes} bytes but the file has {size}"
        raw = f.read(header_bytes)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"invalid header: its {header_bytes}-byte header is not JSON ({e})"
    if not isinstance(header, dict):
        return "invalid header: it is not a JSON object"
    try:
        end = max((int(entry["data_offsets"][1]) for name, entry in header.items()
                   if name != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "invalid header: a tensor entry has no data_offsets"
    if 8 + header_bytes + end > size:
        return f"truncated: its header says {8 + header_bytes + end} bytes but the file has {size}"
    return None


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, by name; raises DamagedWeights naming the file and
    what is wrong with it when it cannot be read."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    problem = safetensors_problem(path)
    if problem is None:
        try:
            return load_file(os.fspath(path))
        except SafetensorError as e:  # damage the header checks above do not see
            problem = f"unreadable ({e})"
    raise DamagedWeights(f"{path}: {problem}. Download or copy the file again.")


def read_pytorch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch `pytorch_model.bin`'s tensors as numpy arrays (floats as float32); raises
    DamagedWeights naming the file when it cannot be read."""
    try:  # torch is optional: only a PyTorch pickle needs it
        import torch
    except ImportError:
        raise ValueError(f"{path} is a PyTorch pickle, which needs torch to read: pip install "
                         "torch, or save the model with safetensors "
                         "(model.save_pretrained(..., safe_serialization=True)).") from None
    if path.stat().st_size == 0:
        raise DamagedWeights(f"{path}: it is empty (0 bytes). Download or copy the file again.")
    try:
        # weights_only: a pickle from elsewhere must not run code while it is read.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged zip or pickle
        raise DamagedWeights(f"{path}: unreadable as a PyTorch state dict ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}). Download or copy the "
                             "file again.") from None
    return {name: value.float().numpy() if value.is_floating_point() else value.numpy()
            for name, value in state.items()}


def check_finite(tensors: Mapping[str, np.ndarray], source: str | os.PathLike) -> None:
    """Raises DamagedWeights naming the first tensor of `tensors` (from the file `source`) that
    holds a NaN or an infinity, and how many of its values do."""
    for name, value in tensors.items():
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
            raise DamagedWeights(non_finite_message(name, source, int(value.size - np.isfinite(value).sum()),
                                                    value.size))


def non_finite_message(name: str, source: str | os.PathLike, bad: int, total: int) -> str:
    return (f"{source}: tensor {name} holds {bad} non-finite values (NaN or infinity) of {total}: "
            "the file is damaged or the model diverged; a model with them answers nan. Download "
            "or copy the file again, or use another checkpoint.")
