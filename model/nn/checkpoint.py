"""Checkpoints that know which model they belong to.

A checkpoint stores the state dict with a *signature*: every parameter and buffer
name with its shape, plus the Winograd tile of every Winograd layer. Loading into a
model with another signature fails with a message naming the first difference,
instead of torch's long key list or, worse, a silent partial load.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn as nn

from winnow.model.files.atomic import atomic_write_bytes
from winnow.model.files.bounded import read_bounded
from winnow.model.errors import ConfigError, WinnowError
from winnow.model.nn.layers import WinogradConv

FORMAT = "winnow-checkpoint/1"


def signature(model: nn.Module) -> dict:
    sig = {name: list(t.shape) for name, t in model.state_dict().items()}
    for name, mod in model.named_modules():
        if isinstance(mod, WinogradConv):
            sig[f"{name}#tile"] = [mod.m, mod.r, mod.dims, int(mod.winograd_relu)]
    return sig


def save_checkpoint(model: nn.Module, path, meta: dict | None = None) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "signature": signature(model), "state_dict": model.state_dict(),
                "meta": meta or {}}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def _read(path: Path) -> dict:
    data = read_bounded(path, what="checkpoint")  # a regular file of bounded size, read once
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise WinnowError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WinnowError(f"{path}: not a Winnow checkpoint (format {FORMAT} expected)")
    for key, kind in (("signature", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(blob.get(key, {}), kind):
            raise WinnowError(f"{path}: field '{key}': expected a {kind.__name__}, got {type(blob.get(key)).__name__}")
    return blob


def read_meta(path) -> dict:
    """The ``meta`` saved with a checkpoint (what it was trained with), without loading a model."""
    return _read(Path(path)).get("meta", {})


def load_checkpoint(model: nn.Module, path) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model``; returns the saved ``meta``."""
    path = Path(path)
    blob = _read(path)
    theirs, ours = blob.get("signature", {}), signature(model)
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise ConfigError(
                f"{path}: checkpoint from another model: '{key}' is {theirs.get(key)} in the file but "
                f"{ours.get(key)} in this model"
            )
    model.load_state_dict(blob["state_dict"])
    return blob.get("meta", {})
