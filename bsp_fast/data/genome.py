"""A reference genome as memory-mapped uint8 codes (A0 C1 G2 T3 N4), with batch window extraction.

    g = Genome("hg19.fa.gz")                 # first use encodes and caches (one pass), later uses map it
    g.chromosomes                            # [("chr1", 249250621), ...]
    x = g.one_hot(["chr1", "chr2"], [1000, 5000], 400, strand=[1, -1])   # float32 [2, 400, 4]

The FASTA (plain, gzip or bgzip) is read once by a streaming Cython encoder (:mod:`.fasta`) into
one flat code file in a cache directory, keyed by the FASTA's absolute path, size and mtime; later
constructions memory-map it, so a 3.1 Gbp genome costs ~3.1 GB of disk and almost no resident
memory beyond the pages that batches touch. Writes are atomic: codes and index go to temporary
files that are renamed into place, the index last, and a stale or half-written cache never loads
(the index must match the FASTA's key and the code file's size). Concurrent processes (e.g. the
ranks of a torchrun job) serialise on a lock file, so the genome is encoded once.

Cache location: ``cache_dir`` if given, else ``$BSP_FAST_CACHE_DIR``, else
``~/.cache/bsp_fast/genomes``; one sub-directory per FASTA path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from bsp_fast.data.fasta import encode_fasta, require_file
from bsp_fast.data.windows import extract_codes, extract_one_hot

__all__ = ["Genome", "default_cache_dir"]

CACHE_FORMAT = 1
CODES_FILE = "codes.u8"
INDEX_FILE = "index.json"


def default_cache_dir() -> Path:
    env = os.environ.get("BSP_FAST_CACHE_DIR")
    if env:
        return Path(env) / "genomes"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bsp_fast" / "genomes"


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class Genome:
    """Memory-mapped genome codes. See the module docstring.

    Args:
        fasta_path: FASTA file (plain, gzip or bgzip).
        cache_dir: where the encoded codes live (see module docstring).
        n_threads: threads used to extract large batches (default ``$BSP_FAST_DATA_THREADS`` or 1).
    """

    def __init__(self, fasta_path, cache_dir=None, *, n_threads: int | None = None):
        self.path = require_file(fasta_path).resolve()
        self._cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.n_threads = n_threads
        tag = hashlib.sha1(str(self.path).encode()).hexdigest()[:12]
        self.cache_path = self._cache_root / f"{self.path.name}-{tag}"
        self._open()

    # ----------------------------------------------------------------------------------------
    # cache

    def _read_index(self, key: dict) -> dict | None:
        try:
            with open(self.cache_path / INDEX_FILE) as f:
                idx = json.load(f)
            if idx.get("format") != CACHE_FORMAT or idx.get("key") != key:
                return None
            if (self.cache_path / CODES_FILE).stat().st_size != idx["total"]:
                return None
            return idx
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _encode(self, key: dict) -> dict:
        d = self.cache_path
        tmp_codes = d / f"{CODES_FILE}.tmp.{os.getpid()}"
        tmp_index = d / f"{INDEX_FILE}.tmp.{os.getpid()}"
        try:
            with open(tmp_codes, "wb") as sink:
                records = encode_fasta(self.path, sink)
            if _file_key(self.path) != key:
                raise RuntimeError(f"{self.path} changed while it was being encoded; try again")
            lengths = [n for _, n in records]
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64).tolist()
            idx = {"format": CACHE_FORMAT, "key": key, "chromosomes": [list(r) for r in records],
                   "offsets": offsets, "total": int(sum(lengths))}
            with open(tmp_index, "w") as f:
                json.dump(idx, f)
            # invalidate first, then codes, then the index that makes them valid
            with contextlib.suppress(FileNotFoundError):
                os.remove(d / INDEX_FILE)
            os.replace(tmp_codes, d / CODES_FILE)
            os.replace(tmp_index, d / INDEX_FILE)
            return idx
        finally:
            for p in (tmp_codes, tmp_index):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(p)

    def _open(self) -> None:
        key = _file_key(self.path)
        idx = self._read_index(key)
        if idx is None:
            self.cache_path.mkdir(parents=True, exist_ok=True)
            with _locked(self.cache_path / ".lock"):
                idx = self._read_index(key)  # another process may have just written it
                if idx is None:
                    # temp files of an encode that was killed (-9) while holding this lock
                    for stale in self.cache_path.glob("*.tmp.*"):
                        with contextlib.suppress(OSError):
                            stale.unlink()
                    idx = self._encode(key)
        self._index = idx
        self.chromosomes: list[tuple[str, int]] = [(str(n), int(l)) for n, l in idx["chromosomes"]]
        self.names = [n for n, _ in self.chromosomes]
        self.lengths = np.array([l for _, l in self.chromosomes], dtype=np.int64)
        self.offsets = np.array(idx["offsets"], dtype=np.int64)
        self._ids = {n: i for i, n in enumerate(self.names)}
        self.data = np.memmap(self.cache_path / CODES_FILE, dtype=np.uint8, mode="r", shape=(idx["total"],))

    def __getstate__(self):  # pickles as a reference (DataLoader workers re-map the cache)
        return {"path": str(self.path), "cache_root": str(self._cache_root), "n_threads": self.n_threads}

    def __setstate__(self, state):
        self.__init__(state["path"], state["cache_root"], n_threads=state["n_threads"])

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.chromosomes)} sequences, {self.total_length:,} bp)"

    # ----------------------------------------------------------------------------------------
    # names

    @property
    def chrom_sizes(self) -> dict[str, int]:
        return dict(self.chromosomes)

    @property
    def total_length(self) -> int:
        return int(self.lengths.sum())

    def __len__(self) -> int:
        return len(self.chromosomes)

    def __contains__(self, name) -> bool:
        return name in self._ids

    def chrom_id(self, name) -> int:
        """Index of a chromosome name (ints are checked and passed through)."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not 0 <= name < len(self.names):
                raise IndexError(f"chromosome id {name} out of range [0, {len(self.names)})")
            return int(name)
        try:
            return self._ids[name]
        except KeyError:
            some = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
            raise KeyError(f"{name!r} is not a sequence of {self.path.name} (it has {some})") from None

    def chrom_ids(self, chroms, n: int | None = None) -> np.ndarray:
        """int64 ids for names or ids (a single name/id is repeated ``n`` times)."""
        if isinstance(chroms, (str, bytes, int, np.integer)):
            if isinstance(chroms, bytes):
                chroms = chroms.decode()
            return np.full(1 if n is None else n, self.chrom_id(chroms), dtype=np.int64)
        arr = np.asarray(chroms)
        if arr.ndim != 1:
            raise ValueError(f"chroms must be one-dimensional, got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            ids = arr.astype(np.int64, copy=False)
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.names)):
                raise IndexError(f"chromosome ids must lie in [0, {len(self.names)}), got {ids.min()}..{ids.max()}")
            return ids
        if arr.dtype.kind in "USO":
            uniq, inv = np.unique(arr, return_inverse=True)
            table = np.array([self.chrom_id(str(u)) for u in uniq], dtype=np.int64)
            return table[inv.reshape(-1)] if len(uniq) else np.zeros(0, np.int64)
        raise TypeError(f"chroms must be names or integer ids, got dtype {arr.dtype}")

    def array(self, chrom) -> np.ndarray:
        """The read-only code array of one chromosome (a view of the memory map)."""
        i = self.chrom_id(chrom)
        o = int(self.offsets[i])
        return self.data[o : o + int(self.lengths[i])]

    def sequence(self, chrom, start: int, end: int, strand: int = 1) -> str:
        """The bases of ``[start, end)`` as a string (N outside the chromosome)."""
        codes = self.codes(chrom, [start], end - start, None if strand >= 0 else [-1])[0]
        return np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode()

    # ----------------------------------------------------------------------------------------
    # windows

    def _args(self, chroms, starts, length, strand):
        st = np.asarray(starts)
        if st.ndim != 1:
            raise ValueError(f"starts must be one-dimensional, got shape {st.shape}")
        if st.size and st.dtype.kind not in "iu":
            raise TypeError(f"starts must be integers, got dtype {st.dtype}")
        st = np.ascontiguousarray(st, dtype=np.int64)
        ids = np.ascontiguousarray(self.chrom_ids(chroms, len(st)))
        if len(ids) != len(st):
            raise ValueError(f"{len(ids)} chromosomes but {len(st)} starts")
        length = int(length)
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if strand is not None:
            s = np.asarray(strand)
            if s.dtype.kind in "US":
                s = np.where(s == "-", -1, np.where(s == "+", 1, 0))
            if s.ndim == 0:
                s = np.full(len(st), s)
            if s.shape != st.shape:
                raise ValueError(f"strand must have shape {st.shape}, got {s.shape}")
            s = s.astype(np.int8)
            if s.size and not np.all((s == 1) | (s == -1)):
                raise ValueError("strand values must be +1 or -1 (or '+'/'-')")
            strand = np.ascontiguousarray(s)
        return ids, st, length, strand

    def codes(self, chroms, starts, length: int, strand=None, *, out=None, n_threads: int | None = None) -> np.ndarray:
        """uint8 [B, length] codes of windows ``[start, start + length)`` (N past chromosome ends).

        ``chroms``: names or ids (one name/id applies to all); ``strand``: None, or +1/-1 per
        window (-1: reverse complement); ``out``: optional uint8 [B, length] buffer to fill (one
        with more rows is fine: its first B rows are filled and returned as a view).
        """
        ids, st, length, strand = self._args(chroms, starts, length, strand)
        return extract_codes(self.data, self.offsets, self.lengths, ids, st, length, strand, out,
                             n_threads or self.n_threads)

    def one_hot(self, chroms, starts, length: int, strand=None, *, out=None, n_threads: int | None = None) -> np.ndarray:
        """float32 [B, length, 4] one-hot windows (columns A, C, G, T; N is a zero row)."""
        ids, st, length, strand = self._args(chroms, starts, length, strand)
        return extract_one_hot(self.data, self.offsets, self.lengths, ids, st, length, strand, out,
                               n_threads or self.n_threads)


