"""Training batches: sampler -> Genome.codes -> torch tensors, prefetched by a background thread.

:class:`PrefetchLoader` pulls :class:`~bsp_fast.data.sampler.BinBatch` es from a sampler (forever,
epoch after epoch), reads each batch's windows with ``Genome.codes`` (Cython, releases the GIL),
wraps them as tensors (uint8 codes [B, L], float32 labels [B], pinned when going to CUDA) and keeps
``depth`` batches ready in a queue. Each item carries the sampler state *after* that batch, so a
checkpoint taken after training on it resumes with the next batch exactly, however far the
thread has read ahead.

``wait_seconds`` is the time the consumer spent blocked in :meth:`next` (data loading not hidden
behind compute); ``data_wait_fraction = wait_seconds / step wall time`` is reported by train.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Batch", "PrefetchLoader", "window_starts"]


@dataclass
class Batch:
    codes: torch.Tensor  # uint8 [B, L]
    labels: torch.Tensor  # float32 [B]
    epoch: int  # epoch this batch belongs to
    sampler_state: dict[str, Any]  # sampler state after this batch


def window_starts(bin_starts: np.ndarray, offset: int) -> np.ndarray:
    return np.asarray(bin_starts, dtype=np.int64) + int(offset)


_END = object()


class PrefetchLoader:
    """Background-thread prefetching of training batches (see module doc)."""

    def __init__(self, sampler: Any, genome: Any, length: int, offset: int, depth: int = 4,
                 pin_memory: bool = False) -> None:
        self.sampler = sampler
        self.genome = genome
        self.length = int(length)
        self.offset = int(offset)
        self.pin_memory = bool(pin_memory)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.wait_seconds = 0.0
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="bsp_fast-prefetch", daemon=True)
        self._thread.start()

    def _make(self, batch: Any, epoch: int) -> Batch:
        codes = self.genome.codes(batch.chroms, window_starts(batch.starts, self.offset), self.length,
                                  batch.strands)
        codes_t = torch.from_numpy(np.ascontiguousarray(codes))
        labels_t = torch.from_numpy(np.ascontiguousarray(batch.labels, dtype=np.float32))
        if self.pin_memory:
            codes_t, labels_t = codes_t.pin_memory(), labels_t.pin_memory()
        return Batch(codes_t, labels_t, epoch, self.sampler.state_dict())

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                epoch = self.sampler.epoch
                produced = False
                for batch in self.sampler:
                    produced = True
                    if not self._put(self._make(batch, epoch)):
                        return
                if not produced:  # an empty epoch would loop forever
                    raise ValueError("the training sampler produced no batches")
        except BaseException as exc:  # handed to the consumer
            self._error = exc
            self._put(_END)

    def next(self) -> Batch:
        t0 = time.perf_counter()
        while True:
            try:
                item = self._queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("data loader thread ended unexpectedly") from self._error
        self.wait_seconds += time.perf_counter() - t0
        if item is _END:
            raise RuntimeError(f"data loading failed: {self._error}") from self._error
        self.batches += 1
        return item

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "PrefetchLoader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def prefetch(iterable: Any, depth: int = 3):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (exceptions re-raised)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    err: list[BaseException] = []

    def run() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:
            err.append(exc)
        finally:
            while not stop.is_set():
                try:
                    q.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    t = threading.Thread(target=run, name="bsp_fast-prefetch-eval", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                if err:
                    raise err[0]
                return
            yield item
    finally:
        stop.set()
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        t.join(timeout=5)


@torch.no_grad()
def score_windows(model: torch.nn.Module, genome: Any, chrom_ids: np.ndarray, starts: np.ndarray, length: int,
                  batch_size: int, device: torch.device, autocast: bool = False, progress: Any = None) -> np.ndarray:
    """Sigmoid scores (float32 [n]) of the windows ``[starts, starts + length)`` of ``chrom_ids``.

    Windows are read in ``batch_size`` chunks by a prefetch thread; memory is bounded by the chunk.
    ``progress``: an optional callable receiving the number of windows scored per chunk.
    """
    n = int(starts.shape[0])
    out = np.empty(n, dtype=np.float32)
    was_training = model.training
    model.eval()

    def chunks():
        for i in range(0, n, batch_size):
            j = min(n, i + batch_size)
            codes = genome.codes(chrom_ids[i:j], starts[i:j], length)
            yield i, j, torch.from_numpy(np.ascontiguousarray(codes))

    try:
        for i, j, codes in prefetch(chunks()):
            codes = codes.to(device, non_blocking=True)
            if autocast and device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(codes)
            else:
                logits = model(codes)
            out[i:j] = torch.sigmoid(logits.float()).cpu().numpy()
            if progress is not None:
                progress(j - i)
    finally:
        model.train(was_training)
    return out
