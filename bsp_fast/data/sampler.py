"""Genome-wide training and evaluation samplers over ENCODE-DREAM style label bins.

The thesis walked the genome in order, so its batches were long runs of negatives with the
rare positives clustered in a few places, and its network learned nothing. These samplers make
that impossible:

:class:`BalancedSampler` (training)
    Each epoch: every positive (B) bin of the training chromosomes once, plus
    ``round(n_pos * negatives_per_positive)`` fresh negatives drawn uniformly, with replacement,
    from every unbound (U) bin of the training chromosomes (ambiguous A bins never). The two classes
    are merged by *stratified interleaving*: the i-th positive of a random permutation gets the key
    ``(i + u) / n_pos`` and the j-th negative ``(j + v) / n_neg`` (``u, v ~ U[0, 1)``), and the
    stream is sorted by key. Every stretch of the stream therefore holds the two classes in the
    target ratio up to +-2 samples: no run of negatives is longer than ``2 * ratio + 2`` and every
    batch's positive share is within ``2 / batch_size`` (plus rounding) of the target.
    Optional strand flips (reverse-complement augmentation) and a uniform +-``jitter`` bp shift of
    the bin start are drawn per sample. The stream is a pure function of ``(seed, epoch)`` and of
    the settings, so training is reproducible and a run resumed from :meth:`BalancedSampler.state_dict`
    mid-epoch receives exactly the batches it had not seen yet.

    Sharding (data parallel): the epoch stream is cut to a multiple of ``world_size`` and rank ``r``
    takes samples ``r, r + world_size, ...``: ranks are disjoint, together cover the stream, and all
    get the same number of batches of the same sizes (the last batch of an epoch may be smaller).

:func:`eval_bins` (evaluation)
    Every non-ambiguous bin of the given chromosomes, in the order the chromosomes are given and
    along each chromosome in label order, at the true prevalence; strands all +1.

Chromosome ids
    ``BinBatch.chroms`` are int32 ids into ``chrom_order``: by default the order of the
    chromosomes in the labels (``labels.tracks``), or any list of names / an object with
    ``.chromosomes`` (a :class:`~bsp_fast.data.Genome`) passed as ``chrom_order=``. Pass the genome
    so that the ids are the Genome's ids (label files are often sorted chr1, chr10, chr11, ...
    while FASTA files are not): ``BalancedSampler(labels, train, 256, chrom_order=genome)``.
    ``sampler.chrom_names[batch.chroms]`` gives the names.

Memory: a sampler keeps the training labels concatenated (1 byte per bin), the positive indices
(8 bytes per positive) and one epoch's stream (~19 bytes per sample); starts are looked up per
batch from the label tracks. At genome scale (60 M bins, 60 k positives) that is ~60 MB + a few MB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

__all__ = ["BinBatch", "ChromSplit", "BalancedSampler", "EvalBins", "eval_bins"]

_STATE_VERSION = 1


class BinBatch(NamedTuple):
    """One batch of label bins.

    chroms: int32 [B] chromosome ids (index into the sampler's ``chrom_names``);
    starts: int64 [B] bin starts (0-based; jittered when the sampler jitters);
    strands: int8 [B] +1 forward, -1 reverse complement;
    labels: float32 [B] 1.0 bound, 0.0 unbound.
    """

    chroms: np.ndarray
    starts: np.ndarray
    strands: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> int:
        """Number of samples in the batch (``len(batch)`` is the tuple's 4 fields)."""
        return int(self.starts.shape[0])


# --------------------------------------------------------------------------------------------
# chromosome split
# --------------------------------------------------------------------------------------------


def _names_of(source: Any) -> list[str]:
    """Chromosome names, in order, of labels (``.tracks``), a genome (``.chromosomes``) or a list."""
    if hasattr(source, "tracks"):
        return list(source.tracks.keys())
    if hasattr(source, "chromosomes"):
        return [c[0] if isinstance(c, (tuple, list)) else str(c) for c in source.chromosomes]
    if isinstance(source, str):
        raise TypeError("expected a list of chromosome names, labels or a genome, got a string")
    # names, (name, length) pairs, or a dict name -> length
    return [c[0] if isinstance(c, (tuple, list)) else str(c) for c in source]


def _parse_names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class ChromSplit:
    """Held-out chromosomes, ENCODE-DREAM / FactorNet defaults.

    ``test`` (chr1, chr8, chr21) and ``valid`` (chr11) are held out; ``train=None`` means every
    other chromosome present. Each field takes a tuple of names or a comma-separated string.
    ``split.resolve(labels_or_genome_or_names)`` checks the names and returns
    ``(train, valid, test)`` as tuples in the order the chromosomes appear in the source.
    """

    test: tuple[str, ...] | str = ("chr1", "chr8", "chr21")
    valid: tuple[str, ...] | str = ("chr11",)
    train: tuple[str, ...] | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "test", _parse_names(self.test))
        object.__setattr__(self, "valid", _parse_names(self.valid))
        object.__setattr__(self, "train", _parse_names(self.train))
        for name, group in (("test", self.test), ("valid", self.valid), ("train", self.train)):
            if group is not None and len(set(group)) != len(group):
                raise ValueError(f"ChromSplit: {name} chromosomes listed twice: {list(group)}")
        both = set(self.test) & set(self.valid)
        if both:
            raise ValueError(f"ChromSplit: chromosomes both in test and valid: {sorted(both)}")
        if self.train is not None:
            leak = set(self.train) & (set(self.test) | set(self.valid))
            if leak:
                raise ValueError(f"ChromSplit: held-out chromosomes also listed for training: {sorted(leak)}")

    def resolve(self, source: Any, *more: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(train, valid, test) chromosome names checked against ``source`` (labels, genome or names).

        With several sources (e.g. ``resolve(labels, genome)``) only chromosomes present in all
        of them count, in the order of the first. Raises ValueError naming the missing
        chromosomes and the available ones, or when no chromosome is left for training.
        """
        available = _names_of(source)
        for other in more:
            keep = set(_names_of(other))
            available = [c for c in available if c in keep]
        present = set(available)
        wanted = [("test", self.test), ("valid", self.valid)]
        if self.train is not None:
            wanted.append(("train", self.train))
        for group_name, group in wanted:
            missing = [c for c in group if c not in present]
            if missing:
                raise ValueError(
                    f"ChromSplit: {group_name} chromosome(s) {missing} not found; available: "
                    f"{_short_list(available)}. Choose held-out chromosomes that exist "
                    f"(e.g. ChromSplit(test=..., valid=...))."
                )
        held = set(self.test) | set(self.valid)
        if self.train is None:
            train = tuple(c for c in available if c not in held)
        else:
            order = {c: i for i, c in enumerate(available)}
            train = tuple(sorted(self.train, key=order.__getitem__))
        if not train:
            raise ValueError(f"ChromSplit: no training chromosome left; available: {_short_list(available)}")
        in_order = lambda group: tuple(c for c in available if c in set(group))  # noqa: E731
        return train, in_order(self.valid), in_order(self.test)


def _short_list(names: Sequence[str], limit: int = 30) -> str:
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _chrom_table(labels: Any, chroms: Sequence[str], chrom_order: Any) -> tuple[list[str], np.ndarray, list[str]]:
    """(names of the id space, ids of ``chroms`` in it, chroms) with clear errors."""
    if isinstance(chroms, str):
        chroms = [chroms]
    chroms = [str(c) for c in chroms]
    if len(set(chroms)) != len(chroms):
        raise ValueError(f"chromosomes listed twice: {chroms}")
    if not chroms:
        raise ValueError("no chromosomes given")
    tracks = labels.tracks
    missing = [c for c in chroms if c not in tracks]
    if missing:
        raise ValueError(f"chromosome(s) {missing} have no labels; labelled: {_short_list(list(tracks))}")
    names = _names_of(labels) if chrom_order is None else _names_of(chrom_order)
    index = {n: i for i, n in enumerate(names)}
    absent = [c for c in chroms if c not in index]
    if absent:
        raise ValueError(f"chromosome(s) {absent} not in chrom_order ({_short_list(names)})")
    return names, np.array([index[c] for c in chroms], dtype=np.int32), chroms


def _track_arrays(track: Any) -> tuple[np.ndarray, np.ndarray]:
    starts = np.asarray(track.starts)
    labels = np.asarray(track.labels)
    if starts.shape != labels.shape or starts.ndim != 1:
        raise ValueError(f"label track {getattr(track, 'chrom', '?')}: starts and labels differ in shape")
    return starts, labels


# --------------------------------------------------------------------------------------------
# training sampler
# --------------------------------------------------------------------------------------------


class BalancedSampler:
    """Shuffled, class-balanced, sharded, resumable batches of training bins (see module doc).

    Iterating yields the remaining batches of the current epoch (``len(sampler)`` batches for a
    fresh epoch) and then moves to the next epoch, so ``for epoch ...: for batch in sampler:``
    works as is; :meth:`set_epoch` jumps to an epoch. ``state_dict()`` taken after receiving k
    batches resumes with batch k + 1.
    """

    def __init__(
        self,
        labels: Any,
        chroms: Sequence[str],
        batch_size: int,
        negatives_per_positive: float = 1.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        rc_augment: bool = True,
        jitter: int = 0,
        chrom_order: Any = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if int(jitter) < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.rc_augment = bool(rc_augment)
        self.jitter = int(jitter)
        self.negatives_per_positive = negatives_per_positive  # validated by the setter

        names, ids, chroms = _chrom_table(labels, chroms, chrom_order)
        self.chrom_names = np.array(names, dtype=object)
        self.chroms = tuple(chroms)
        self._ids = ids  # id of each training chromosome (in self.chroms order)
        self._tracks = [labels.tracks[c] for c in chroms]
        sizes = []
        label_parts = []
        self._max_start = np.zeros(len(chroms), dtype=np.int64)
        for k, track in enumerate(self._tracks):
            starts, lab = _track_arrays(track)
            sizes.append(starts.shape[0])
            label_parts.append(lab.astype(np.int8, copy=False))
            self._max_start[k] = int(starts.max()) if starts.size else 0
        self._offsets = np.zeros(len(chroms) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self._offsets[1:])
        self._labels = np.concatenate(label_parts) if label_parts else np.zeros(0, np.int8)
        self._pos = np.flatnonzero(self._labels == 1).astype(np.int64)
        self.n_pos = int(self._pos.size)
        self.n_unbound = int(np.count_nonzero(self._labels == 0))
        self.n_ambiguous = int(self._labels.size - self.n_pos - self.n_unbound)
        if self.n_pos == 0:
            raise ValueError(f"no positive (B) bins on the training chromosomes {_short_list(chroms)}")
        if self.n_unbound == 0 and self._npp > 0:
            raise ValueError(f"no unbound (U) bins on the training chromosomes {_short_list(chroms)}")
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out on this rank
        self._cache: tuple[tuple, tuple[np.ndarray, ...]] | None = None

    # -- settings ---------------------------------------------------------------------------

    @property
    def negatives_per_positive(self) -> float:
        """Negatives drawn per positive each epoch; settable, takes effect at once (it defines the
        stream), so change it between epochs."""
        return self._npp

    @negatives_per_positive.setter
    def negatives_per_positive(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"negatives_per_positive must be a finite number >= 0, got {value}")
        self._npp = value
        self._cache = None

    @property
    def n_neg(self) -> int:
        """Negatives drawn per epoch (all ranks together)."""
        return int(round(self.n_pos * self._npp))

    @property
    def samples_per_epoch(self) -> int:
        """Samples per epoch on this rank."""
        return (self.n_pos + self.n_neg) // self.world_size

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return -(-self.samples_per_epoch // self.batch_size)

    @property
    def positive_fraction(self) -> float:
        """Target share of positives in every batch."""
        return self.n_pos / (self.n_pos + self.n_neg)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch."""
        self.epoch = int(epoch)
        self.position = 0

    # -- the stream -------------------------------------------------------------------------

    def _epoch_stream(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This rank's (global bin index, label, strand, shift) for ``epoch``, cached."""
        key = (epoch, self._npp, self.seed, self.rank, self.world_size, self.rc_augment, self.jitter)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]  # type: ignore[return-value]
        rng = np.random.default_rng([self.seed, epoch, 0x5EED])
        n_pos, n_neg = self.n_pos, self.n_neg
        pos = self._pos[rng.permutation(n_pos)]
        neg = self._draw_negatives(rng, n_neg)
        key_pos = (np.arange(n_pos) + rng.random(n_pos)) / max(n_pos, 1)
        key_neg = (np.arange(n_neg) + rng.random(n_neg)) / max(n_neg, 1)
        order = np.argsort(np.concatenate([key_pos, key_neg]), kind="stable")
        index = np.concatenate([pos, neg])[order]
        label = np.concatenate([np.ones(n_pos, np.float32), np.zeros(n_neg, np.float32)])[order]
        n = index.size
        if self.rc_augment:
            strand = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        else:
            strand = np.ones(n, dtype=np.int8)
        if self.jitter:
            shift = rng.integers(-self.jitter, self.jitter + 1, size=n).astype(np.int64)
        else:
            shift = np.zeros(n, dtype=np.int64)
        keep = (n // self.world_size) * self.world_size
        sl = slice(self.rank, keep, self.world_size)
        stream = (index[sl].copy(), label[sl].copy(), strand[sl].copy(), shift[sl].copy())
        self._cache = (key, stream)
        return stream

    def _draw_negatives(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` indices drawn uniformly with replacement from the U bins (rejection sampling)."""
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        total = self._labels.size
        frac = self.n_unbound / total
        out = []
        need = n
        while need > 0:
            m = int(need / frac * 1.05) + 64
            cand = rng.integers(0, total, size=m)
            cand = cand[self._labels[cand] == 0]
            out.append(cand[:need])
            need -= min(need, cand.size)
        return np.concatenate(out).astype(np.int64)

    def _batch(self, index: np.ndarray, label: np.ndarray, strand: np.ndarray, shift: np.ndarray) -> BinBatch:
        k = np.searchsorted(self._offsets, index, side="right") - 1
        starts = np.empty(index.size, dtype=np.int64)
        for c in np.unique(k):
            sel = k == c
            track_starts = np.asarray(self._tracks[c].starts)
            starts[sel] = track_starts[index[sel] - self._offsets[c]]
        if self.jitter:
            starts = np.clip(starts + shift, 0, self._max_start[k])
        return BinBatch(
            chroms=self._ids[k].astype(np.int32),
            starts=starts,
            strands=strand.astype(np.int8, copy=True),
            labels=label.astype(np.float32, copy=True),
        )

    def epoch_batches(self, epoch: int) -> list[BinBatch]:
        """All of this rank's batches of ``epoch`` (does not move the sampler; for tests/inspection)."""
        index, label, strand, shift = self._epoch_stream(epoch)
        b = self.batch_size
        return [self._batch(index[i : i + b], label[i : i + b], strand[i : i + b], shift[i : i + b])
                for i in range(0, index.size, b)]

    def __iter__(self) -> Iterator[BinBatch]:
        epoch = self.epoch
        index, label, strand, shift = self._epoch_stream(epoch)
        n_batches = len(self)
        while self.epoch == epoch and self.position < n_batches:
            i = self.position * self.batch_size
            j = i + self.batch_size
            batch = self._batch(index[i:j], label[i:j], strand[i:j], shift[i:j])
            # the state moves before the batch is handed out: a state_dict() taken after receiving
            # batch k resumes at batch k + 1 (at the end of an epoch: the next epoch's first batch)
            self.position += 1
            if self.position >= n_batches:
                self.epoch, self.position = epoch + 1, 0
            yield batch
        if self.epoch == epoch:  # empty epoch, or resumed at its very end
            self.epoch, self.position = epoch + 1, 0

    # -- checkpointing ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state (epoch, position within it, and the settings that define the stream)."""
        return {
            "version": _STATE_VERSION,
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "negatives_per_positive": self._npp,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "rc_augment": self.rc_augment,
            "jitter": self.jitter,
            "n_pos": self.n_pos,
            "n_bins": int(self._labels.size),
            "chroms": list(self.chroms),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore epoch, position, seed and negatives_per_positive.

        Mid-epoch (position > 0) the stream must be the one the state was taken from: a different
        batch size, world size, augmentation, jitter, training chromosomes or label set raises
        ValueError (at an epoch boundary only epoch and seed matter and the rest may change).
        """
        if int(state.get("version", 0)) != _STATE_VERSION:
            raise ValueError(f"sampler state version {state.get('version')} not supported (expected {_STATE_VERSION})")
        position = int(state["position"])
        if position > 0:
            mine = self.state_dict()
            for key in ("batch_size", "world_size", "rc_augment", "jitter", "n_pos", "n_bins", "chroms"):
                if state.get(key) != mine[key]:
                    raise ValueError(
                        f"cannot resume mid-epoch: sampler {key} was {state.get(key)!r}, now {mine[key]!r}"
                    )
        self.seed = int(state["seed"])
        self.negatives_per_positive = float(state["negatives_per_positive"])
        self.epoch = int(state["epoch"])
        self.position = position


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


class EvalBins:
    """Every non-ambiguous bin of ``chroms`` (in the given order), in batches; see :func:`eval_bins`."""

    def __init__(self, labels: Any, chroms: Sequence[str], batch_size: int, chrom_order: Any = None) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        names, ids, chroms = _chrom_table(labels, chroms, chrom_order)
        self.batch_size = int(batch_size)
        self.chrom_names = np.array(names, dtype=object)
        self.chroms = tuple(chroms)
        self._ids = ids
        self._parts: list[tuple[int, np.ndarray, np.ndarray]] = []  # (id, starts, labels) of U/B bins
        for cid, c in zip(ids, chroms):
            starts, lab = _track_arrays(labels.tracks[c])
            keep = lab >= 0
            self._parts.append((int(cid), starts[keep].astype(np.int64, copy=False), lab[keep]))
        self.n_bins = sum(p[1].size for p in self._parts)
        self.n_pos = int(sum(np.count_nonzero(p[2] == 1) for p in self._parts))
        self.n_neg = self.n_bins - self.n_pos

    def __len__(self) -> int:
        return -(-self.n_bins // self.batch_size)

    @property
    def prevalence(self) -> float:
        return self.n_pos / self.n_bins if self.n_bins else float("nan")

    def labels(self) -> np.ndarray:
        """int8 [n_bins] labels (1/0) in iteration order."""
        return np.concatenate([p[2] for p in self._parts]).astype(np.int8) if self._parts else np.zeros(0, np.int8)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(chrom ids int32, starts int64) of every bin in iteration order."""
        ids = np.concatenate([np.full(p[1].size, p[0], np.int32) for p in self._parts])
        return ids, np.concatenate([p[1] for p in self._parts])

    def __iter__(self) -> Iterator[BinBatch]:
        b = self.batch_size
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        filled = 0
        for cid, starts, lab in self._parts:
            i = 0
            while i < starts.size:
                take = min(b - filled, starts.size - i)
                pending.append((cid, starts[i : i + take], lab[i : i + take]))
                filled += take
                i += take
                if filled == b:
                    yield self._emit(pending)
                    pending, filled = [], 0
        if filled:
            yield self._emit(pending)

    @staticmethod
    def _emit(parts: list[tuple[int, np.ndarray, np.ndarray]]) -> BinBatch:
        starts = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
        return BinBatch(
            chroms=np.concatenate([np.full(p[1].size, p[0], np.int32) for p in parts]),
            starts=starts,
            strands=np.ones(starts.size, dtype=np.int8),
            labels=np.concatenate([p[2] for p in parts]).astype(np.float32),
        )


def eval_bins(labels: Any, chroms: Sequence[str], batch_size: int, chrom_order: Any = None) -> EvalBins:
    """Every non-ambiguous bin of ``chroms`` at the true prevalence, in batches (``len()`` = batches).

    Chromosomes come in the order given (``ChromSplit.resolve`` returns them in genome order),
    bins along a chromosome in label order; strands are all +1; ``.labels()`` gives the labels
    of the whole pass at once, ``.n_pos`` / ``.n_neg`` / ``.prevalence`` the class counts.
    ``chrom_order`` sets the id space of ``BinBatch.chroms`` as for :class:`BalancedSampler`.
    """
    return EvalBins(labels, chroms, batch_size, chrom_order=chrom_order)
