"""Checkpoints: atomic writes, RNG states, and loading with one clear error line.

A training checkpoint is a dict saved with :func:`torch.save`::

    {"format": "bsp_fast.checkpoint", "version": 1, "kind": "train",
     "model_config": {...}, "model": state_dict, "optimizer": state_dict,
     "sampler": sampler.state_dict(), "rng": capture_rng(), "step": int, "epoch": int,
     "train_seconds": float, "best_valid_auprc": float | None, "config": {train settings},
     "data": {paths}, "bin_size": 200, "window_offset": int}

Writes go to a temporary file in the same directory, are flushed and fsync'd, and then
``os.replace``-d over the target, so a kill -9 at any moment leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "bsp_fast.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit (message names the file)."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save ``obj`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA, where present) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except Exception:  # a different number of GPUs: keep the fresh CUDA states
            pass


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a bsp_fast checkpoint; raises CheckpointError with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise CheckpointError(f"checkpoint {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                              f"expected a bsp_fast checkpoint written by 'bsp-fast train'") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a bsp_fast checkpoint (expected one written by 'bsp-fast train')")
    if int(ckpt.get("version", -1)) != VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {ckpt.get('version')} not supported (expected {VERSION})")
    for key in ("model_config", "model"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path}: missing '{key}'")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> torch.nn.Module:
    """Rebuild the model of a checkpoint and load its weights (CheckpointError on mismatch)."""
    from bsp_fast.models import model_from_config

    try:
        model = model_from_config(ckpt["model_config"])
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: model does not match its config ({str(exc).splitlines()[0][:160]})") from None
    return model
