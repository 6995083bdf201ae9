"""Dense scoring: every bin of a chromosome from overlapping stretches, each read once.

A dense model (``hybrid-dense``, or an ensemble of them) maps an input of
``2 * flank + region + step * (n - 1)`` bases to the logits of its ``n`` bins. A chromosome's bin
grid (``first + step * i``) is cut into tiles of ``bins_per_stretch`` bins; each tile is read with
``margin`` bp of extra sequence on both sides (N past the chromosome's ends, as windows are), and
the bins of the margins are scored but dropped, so each kept bin has at least ``margin`` bp of
context beyond its own window whatever the tile's offset: this is what makes a bin's score
(nearly) independent of where its stretch starts (tests/test_dense.py measures by how much).

``score_grid`` is the fast path; :func:`score_grid_windowed` scores the same bins one window each
through the same model (the definition for conv-only site logits, the reference for tests).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

__all__ = ["is_dense", "dense_layout", "score_grid", "score_grid_windowed", "DEFAULT_BINS_PER_STRETCH",
           "DEFAULT_MARGIN", "DEFAULT_BATCH"]

DEFAULT_BINS_PER_STRETCH = 400  # 20 kb tiles at 50 bp steps
# tiles per batch: on CPU the BiGRU's working set should stay in cache (4 x 400 bins scored 5-30 %
# faster than 8 x 200, 16 x 200 or 4 x 800 on a 2-core Xeon, 2026-12-02); a GPU wants many rows
DEFAULT_BATCH = {"cpu": 4, "cuda": 32}
DEFAULT_MARGIN = 500  # bp of context read beyond the model's own flank on each side, then trimmed


def is_dense(model: torch.nn.Module) -> bool:
    """True for a model that scores whole stretches (``hybrid-dense`` or an ensemble of them)."""
    m = getattr(model, "module", model)  # DDP / AveragedModel wrappers
    if hasattr(m, "members"):
        m = m.members[0]
    return hasattr(m, "bin_logits")


def dense_layout(config: dict[str, Any]) -> tuple[int, int, int]:
    """(flank, region, step) of a dense model's config."""
    return int(config["flank"]), int(config["region"]), int(config["step"])


def stretch_length(config: dict[str, Any], n_bins: int) -> int:
    flank, region, step = dense_layout(config)
    return 2 * flank + region + step * (int(n_bins) - 1)


def _check(config: dict[str, Any], bins_per_stretch: int, margin: int) -> None:
    flank, _, step = dense_layout(config)
    if bins_per_stretch < 1:
        raise ValueError(f"bins per stretch must be >= 1, got {bins_per_stretch}")
    if margin < flank or (margin - flank) % step:
        raise ValueError(f"the stretch margin must be >= the model's flank {flank} bp and differ from it by a "
                         f"multiple of its step {step} bp; got {margin}")


@torch.no_grad()
def score_grid(model: torch.nn.Module, genome: Any, chrom_id: int, first: int, n_bins: int, *,
               bins_per_stretch: int = DEFAULT_BINS_PER_STRETCH, margin: int = DEFAULT_MARGIN,
               batch_size: int | None = None, device: torch.device | str = "cpu", autocast: bool = False,
               tiles: slice | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits (float32) of the bins ``first + step * i``, ``i < n_bins`` of chromosome ``chrom_id``.

    ``tiles``: score only these tiles (e.g. ``slice(rank, None, world_size)``); returns then the
    logits of those tiles' bins, [n_tiles_taken, bins_per_stretch] (padding bins past ``n_bins``
    included), for :func:`bsp_fast.distributed.gather_sharded`. ``batch_size``: tiles per pass
    (default :data:`DEFAULT_BATCH` of the device's type).
    """
    config = model.config
    _check(config, bins_per_stretch, margin)
    flank, _, step = dense_layout(config)
    skip = (margin - flank) // step  # margin bins scored and dropped at each end
    n_model = bins_per_stretch + 2 * skip
    length = stretch_length(config, n_model)
    n_tiles = -(-int(n_bins) // bins_per_stretch)
    which = np.arange(n_tiles)[tiles] if tiles is not None else np.arange(n_tiles)
    out = np.empty((which.size, bins_per_stretch), dtype=np.float32)
    device = torch.device(device)
    if batch_size is None:
        batch_size = DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])
    if batch_size < 1:
        raise ValueError(f"batch size (tiles per pass) must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        for i in range(0, which.size, batch_size):
            t = which[i:i + batch_size]
            starts = first + (t * bins_per_stretch - skip) * step - flank
            codes = genome.codes(np.full(t.size, chrom_id, np.int64), starts.astype(np.int64), length)
            x = torch.from_numpy(np.ascontiguousarray(codes)).to(device)
            if autocast and device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(x)
            else:
                logits = model(x)
            logits = logits.float().reshape(t.size, n_model)
            out[i:i + t.size] = logits[:, skip:skip + bins_per_stretch].cpu().numpy()
            if progress is not None:
                progress(int(np.minimum((t + 1) * bins_per_stretch, n_bins).sum()
                             - np.minimum(t * bins_per_stretch, n_bins).sum()))
    finally:
        model.train(was_training)
    if tiles is not None:
        return out
    return out.reshape(-1)[:n_bins]


@torch.no_grad()
def score_grid_windowed(model: torch.nn.Module, genome: Any, chrom_id: int, first: int, n_bins: int,
                        batch_size: int = 256) -> np.ndarray:
    """The reference: each bin from its own one-bin window (``2 * flank + region`` bp) of the same model."""
    config = model.config
    flank, region, step = dense_layout(config)
    starts = first + step * np.arange(n_bins, dtype=np.int64) - flank
    out = np.empty(n_bins, dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, n_bins, batch_size):
            s = starts[i:i + batch_size]
            codes = genome.codes(np.full(s.size, chrom_id, np.int64), s, 2 * flank + region)
            out[i:i + s.size] = model(torch.from_numpy(np.ascontiguousarray(codes))).float().numpy()
    finally:
        model.train(was_training)
    return out
