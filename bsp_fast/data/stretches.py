"""Training on stretches: every bin of the training chromosomes once per epoch, many bins per sample.

:class:`StretchSampler` cuts each training chromosome's bin grid (``step`` apart, usually 50 bp)
into runs of ``bins_per_stretch`` consecutive bins, from a random offset drawn per chromosome and
epoch, and shuffles the runs of all chromosomes together: a genome-wide epoch in which every bin
is in exactly one stretch (the first and last stretch of a chromosome reach past its grid; those
bins are labelled -1 and the genome reads N there). A batch is :class:`~bsp_fast.data.sampler.BinBatch`
with ``starts`` = each stretch's first bin start and ``labels`` float32 [B, bins_per_stretch]:
1 bound, 0 unbound, -1 ambiguous or outside the grid (masked out of the loss). With a reverse-
complement strand flip (``rc_augment``) the window is read reversed and complemented, and its labels
are reversed with it; with a ``jitter`` each stretch is read shifted by up to +-jitter bp while
its labels stay (a shift augmentation, as the windowed sampler's). The stream is a pure function of (seed, epoch) and the settings; sharded by
rank (disjoint, equal numbers of batches); resumable mid-epoch from :meth:`StretchSampler.state_dict`.

The 1-in-100 to 1-in-1000 prevalence is handled in the loss, not by sampling: every bin is seen
each epoch, and :func:`positive_weight` weighs a bound bin's loss so that the two classes carry
the weight of a ``negatives_per_positive`` : 1 balanced sampler's batches.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from bsp_fast.data.sampler import BinBatch, _chrom_table, _track_arrays

__all__ = ["StretchSampler", "positive_weight", "grid_labels"]

_STATE_VERSION = 1


def grid_labels(track: Any, step: int) -> tuple[int, np.ndarray]:
    """(first start, int8 labels on the full grid ``first + step * i``; -1 where the track has no bin)."""
    starts, labels = _track_arrays(track)
    if starts.size == 0:
        return 0, np.zeros(0, np.int8)
    s0 = int(starts[0])
    rel = starts - s0
    if np.any(rel % step):
        raise ValueError(f"label track {getattr(track, 'chrom', '?')}: bins are not on a {step} bp grid")
    grid = np.full(int(rel[-1]) // step + 1, -1, dtype=np.int8)
    grid[rel // step] = labels
    return s0, grid


def positive_weight(n_pos: int, n_neg: int, negatives_per_positive: float) -> float:
    """Loss weight of a bound bin: the classes then weigh as ``negatives_per_positive`` : 1 (at least 1)."""
    if n_pos <= 0:
        return 1.0
    if negatives_per_positive <= 0:
        return 1.0
    return max(1.0, n_neg / n_pos / float(negatives_per_positive))


class StretchSampler:
    """Shuffled, sharded, resumable batches of stretches of consecutive bins (see module doc)."""

    def __init__(self, labels: Any, chroms: Sequence[str], batch_size: int, bins_per_stretch: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, rc_augment: bool = True, chrom_order: Any = None,
                 jitter: int = 0) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(bins_per_stretch) < 1:
            raise ValueError(f"bins_per_stretch must be >= 1, got {bins_per_stretch}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.batch_size, self.bins_per_stretch = int(batch_size), int(bins_per_stretch)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.rc_augment = bool(rc_augment)
        if int(jitter) < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.jitter = int(jitter)
        self.step = int(getattr(labels, "step", 50))
        names, ids, chroms = _chrom_table(labels, chroms, chrom_order)
        self.chrom_names = np.array(names, dtype=object)
        self.chroms = tuple(chroms)
        self._ids = ids
        self._grids = [grid_labels(labels.tracks[c], self.step) for c in chroms]
        counts = np.zeros(3, np.int64)
        for _, g in self._grids:
            counts += np.bincount(g.astype(np.int64) + 1, minlength=3)[:3]
        self.n_ambiguous, self.n_neg, self.n_pos = (int(x) for x in counts)
        if self.n_pos + self.n_neg == 0:
            raise ValueError(f"no labelled bins in {', '.join(self.chroms)}")
        self.epoch, self.position = 0, 0
        self._cache: tuple | None = None

    # -- sizes ------------------------------------------------------------------------------

    @property
    def n_bins(self) -> int:
        """Labelled (B or U) bins per epoch, all ranks together."""
        return self.n_pos + self.n_neg

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return -(-self._epoch_stream(self.epoch)[0].size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    # -- the stream -------------------------------------------------------------------------

    def _epoch_stream(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This rank's (chromosome index, first grid index, strand, shift in bp) of every stretch of ``epoch``."""
        key = (epoch, self.seed, self.rank, self.world_size, self.rc_augment, self.bins_per_stretch, self.jitter)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch, 0x57E7])
        n = self.bins_per_stretch
        cs, js = [], []
        for k, (_, grid) in enumerate(self._grids):
            offset = int(rng.integers(n))
            first = np.arange(-offset, grid.size, n, dtype=np.int64)
            # drop stretches without a labelled bin (all ambiguous, or past the grid)
            keep = [bool(np.any(grid[max(j, 0):j + n] >= 0)) for j in first]
            first = first[np.asarray(keep, dtype=bool)]
            cs.append(np.full(first.size, k, np.int64))
            js.append(first)
        c, j = np.concatenate(cs), np.concatenate(js)
        order = rng.permutation(c.size)
        c, j = c[order], j[order]
        strand = (np.where(rng.random(c.size) < 0.5, 1, -1) if self.rc_augment else np.ones(c.size)).astype(np.int8)
        # drawn after the strands, and only with a jitter: streams without one stay as they were
        shift = (rng.integers(-self.jitter, self.jitter + 1, size=c.size) if self.jitter
                 else np.zeros(c.size)).astype(np.int64)
        keep = (c.size // self.world_size) * self.world_size
        sl = slice(self.rank, keep, self.world_size)
        stream = (c[sl].copy(), j[sl].copy(), strand[sl].copy(), shift[sl].copy())
        self._cache = (key, stream)
        return stream

    def _batch(self, c: np.ndarray, j: np.ndarray, strand: np.ndarray, shift: np.ndarray) -> BinBatch:
        n = self.bins_per_stretch
        labels = np.full((c.size, n), -1, dtype=np.float32)
        starts = np.empty(c.size, dtype=np.int64)
        for row, (k, first) in enumerate(zip(c.tolist(), j.tolist())):
            s0, grid = self._grids[k]
            lo, hi = max(first, 0), min(first + n, grid.size)
            labels[row, lo - first:hi - first] = grid[lo:hi]
            starts[row] = s0 + first * self.step
        starts += shift  # the sequence read moves by up to +-jitter bp, the labels stay (augmentation)
        rev = strand < 0
        labels[rev] = labels[rev, ::-1]  # the reverse strand reads the stretch's bins in reverse order
        return BinBatch(chroms=self._ids[c].astype(np.int32), starts=starts, strands=strand.copy(), labels=labels)

    def epoch_batches(self, epoch: int) -> list[BinBatch]:
        """All of this rank's batches of ``epoch`` (does not move the sampler)."""
        c, j, s, d = self._epoch_stream(epoch)
        b = self.batch_size
        return [self._batch(c[i:i + b], j[i:i + b], s[i:i + b], d[i:i + b]) for i in range(0, c.size, b)]

    def __iter__(self) -> Iterator[BinBatch]:
        epoch = self.epoch
        c, j, s, d = self._epoch_stream(epoch)
        n_batches = -(-c.size // self.batch_size)
        while self.epoch == epoch and self.position < n_batches:
            i = self.position * self.batch_size
            b = slice(i, i + self.batch_size)
            batch = self._batch(c[b], j[b], s[b], d[b])
            self.position += 1  # before handing out: a state taken after batch k resumes at k + 1
            if self.position >= n_batches:
                self.epoch, self.position = epoch + 1, 0
            yield batch
        if self.epoch == epoch:
            self.epoch, self.position = epoch + 1, 0

    # -- checkpointing ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "kind": "stretches", "epoch": self.epoch, "position": self.position,
                "seed": self.seed, "batch_size": self.batch_size, "bins_per_stretch": self.bins_per_stretch,
                "world_size": self.world_size, "rc_augment": self.rc_augment, "jitter": self.jitter, "n_pos": self.n_pos,
                "n_bins": self.n_bins, "chroms": list(self.chroms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch, position and seed; mid-epoch the stream's settings must match (ValueError)."""
        if int(state.get("version", 0)) != _STATE_VERSION or state.get("kind") != "stretches":
            raise ValueError("not a stretch sampler state (a checkpoint of a windowed model?)")
        position = int(state["position"])
        if position > 0:
            mine = self.state_dict()
            for key in ("batch_size", "bins_per_stretch", "world_size", "rc_augment", "jitter", "n_pos", "n_bins", "chroms"):
                if state.get(key, 0 if key == "jitter" else None) != mine[key]:
                    raise ValueError(f"cannot resume mid-epoch: sampler {key} was {state.get(key)!r}, now {mine[key]!r}")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), position
