"""``python -m bsp_fast.predict``: genome-wide scores of a trained model (also ``bsp-fast predict``).

::

    python -m bsp_fast.predict --checkpoint runs/x/best.pt --genome hg19.fa --chroms chr1,chr8,chr21 \\
        --out preds.tsv.gz

Scores every 200 bp bin every 50 bp (the ENCODE-DREAM grid: starts 0, 50, ... while the bin fits
in the chromosome; ``--bin-size`` / ``--step`` change it) of the chosen chromosomes (default: all),
or the intervals of ``--regions BED`` (each scored with the model's window centred on it, in the
BED's order). The output's suffix chooses its format (:mod:`bsp_fast.tracks`):

- ``.tsv`` / ``.tsv.gz``: ENCODE-DREAM submission format, tab-separated ``chr start stop probability``
  without a header;
- ``.bedgraph`` / ``.bedgraph.gz``: a ``track type=bedGraph name=...`` line, then one row per bin;
- ``.bw`` / ``.bigwig``: bigWig (needs pyBigWig: ``pip install 'bsp_fast[tracks]'``), chromosome
  sizes from the genome.

In bedGraph and bigWig each bin's probability covers the ``--step`` bp centred in its bin (bin
``[s, s + 200)`` -> ``[s + 75, s + 125)``), so the overlapping bins become adjacent, non-overlapping
intervals; ``--regions`` are written as they are (bigWig needs them sorted and non-overlapping).
``--peaks-out FILE`` also writes the bins with probability >= ``--threshold`` merged into peaks
(overlapping or touching bins merge) as narrowPeak: name, score ``round(1000 * max p)``, strand ``.``,
signalValue = max probability, pValue / qValue -1, summit = centre of the best bin.

Streaming: bins are generated, scored and written in chunks (``--chunk`` bins), so memory stays
bounded at any genome size; the file is written to a temporary name and renamed at the end, so an
existing output is replaced only by a complete one. Under ``torchrun --nproc_per_node N`` each rank
scores every N-th chunk into a part file (NumPy arrays) and rank 0 replays the parts in genome order
through the writers.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from bsp_fast import distributed as D
from bsp_fast.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from bsp_fast.cli import ArgumentParser, UserError, guard
from bsp_fast.progress import progress
from bsp_fast.tracks import BigWigWriter, NarrowPeakWriter, TrackError, TrackWriter, open_track, track_format

PROG = "bsp-fast predict"


def build_parser() -> ArgumentParser:
    import argparse

    p = ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.pt written by bsp-fast train")
    p.add_argument("--genome", required=True, help="genome FASTA")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--chroms", help="comma-separated chromosomes (default: every chromosome of the genome)")
    g.add_argument("--regions", help="BED file of regions to score instead of the bin grid")
    p.add_argument("--out", required=True,
                   help="output file; the suffix chooses the format: .tsv(.gz) (ENCODE-DREAM), "
                        ".bedgraph(.gz), .bw/.bigwig")
    p.add_argument("--peaks-out", help="also write the bins >= --threshold merged into peaks (narrowPeak, .bed/.narrowPeak[.gz])")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold of --peaks-out (default 0.5)")
    p.add_argument("--track-name", help="track name in bedGraph / narrowPeak (default: bsp_fast_<model>)")
    p.add_argument("--bin-size", type=int, default=None, help="bin size (default: the checkpoint's, 200)")
    p.add_argument("--step", type=int, default=50, help="bin step (default 50)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per pass (windowed models, default 256) or stretches of 400 bins per pass "
                        "(dense models, default 4 on CPU, 32 on a GPU)")
    p.add_argument("--chunk", type=int, default=262_144, help="bins per streamed chunk")
    p.add_argument("--rc-average", action="store_true", help="average with the reverse-complement strand")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache-dir", help="cache for the encoded genome")
    p.add_argument("--no-progress", action="store_true")
    return p


def _read_regions(path: str, genome: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = {c for c, _ in genome.chromosomes}
    chroms, starts, stops = [], [], []
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as fh:
            for ln, line in enumerate(fh, 1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                f = line.rstrip("\n").split("\t") if "\t" in line else line.split()
                try:
                    c, a, b = f[0], int(f[1]), int(f[2])
                except (IndexError, ValueError):
                    raise UserError(f"--regions {path}:{ln}: expected chrom, start, end; got {line.strip()[:80]!r}") from None
                if c not in names:
                    raise UserError(f"--regions {path}:{ln}: chromosome {c!r} is not in the genome")
                if not 0 <= a < b:
                    raise UserError(f"--regions {path}:{ln}: expected 0 <= start < end; got {line.strip()[:80]!r}")
                chroms.append(c)
                starts.append(a)
                stops.append(b)
    except OSError as exc:
        raise UserError(f"--regions {path}: {exc.strerror or exc}") from None
    if not chroms:
        raise UserError(f"--regions {path}: no regions")
    return chroms, np.asarray(starts, np.int64), np.asarray(stops, np.int64)


def _chunks(genome: Any, args: Any, bin_size: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(chrom, starts, stops) chunks in genome order."""
    if args.regions:
        chroms, starts, stops = _read_regions(args.regions, genome)
        chroms_a = np.asarray(chroms, dtype=object)
        for i in range(0, len(chroms), args.chunk):
            j = min(len(chroms), i + args.chunk)
            # consecutive rows of one chromosome share a chunk piece
            c = chroms_a[i:j]
            cuts = np.flatnonzero(c[1:] != c[:-1]) + 1
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, j - i]):
                yield str(c[a]), starts[i + a:i + b], stops[i + a:i + b]
        return
    sizes = dict(genome.chromosomes)
    order = [c for c, _ in genome.chromosomes]
    if args.chroms:
        wanted = [c.strip() for c in args.chroms.split(",") if c.strip()]
        missing = [c for c in wanted if c not in sizes]
        if missing:
            raise UserError(f"--chroms: {', '.join(missing)} not in the genome {args.genome} "
                            f"(it has {', '.join(order[:12])}{', ...' if len(order) > 12 else ''})")
        order = [c for c in order if c in set(wanted)]
    for c in order:
        n = sizes[c] - bin_size
        if n < 0:
            continue
        all_starts = np.arange(0, n + 1, args.step, dtype=np.int64)
        for i in range(0, all_starts.size, args.chunk):
            s = all_starts[i:i + args.chunk]
            yield c, s, s + bin_size


def count_bins(genome: Any, args: Any, bin_size: int) -> int:
    if args.regions:
        return -1
    total = 0
    sizes = dict(genome.chromosomes)
    names = [c.strip() for c in args.chroms.split(",")] if args.chroms else list(sizes)
    for c in names:
        if c in sizes and sizes[c] >= bin_size:
            total += (sizes[c] - bin_size) // args.step + 1
    return total


def format_rows(chrom: str, starts: np.ndarray, stops: np.ndarray, probs: np.ndarray) -> str:
    """ENCODE-DREAM submission rows ``chr<TAB>start<TAB>stop<TAB>prob`` (see :class:`bsp_fast.tracks.TsvWriter`)."""
    p = np.char.mod("%.6g", probs.astype(np.float64))
    return "".join(f"{chrom}\t{a}\t{b}\t{q}\n" for a, b, q in zip(starts.tolist(), stops.tolist(), p.tolist()))


def _open_writers(out: Path, args: Any, genome: Any, name: str, bin_size: int) -> list[TrackWriter]:
    """The writers of ``--out`` and ``--peaks-out`` (temporary files until closed)."""
    writers: list[TrackWriter] = []
    step = None if args.regions else args.step
    try:
        for flag, path in (("--out", out), ("--peaks-out", args.peaks_out)):
            if path is None:
                continue
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if flag == "--out":
                    writers.append(open_track(path, genome.chromosomes, name=name, step=step))
                else:
                    writers.append(NarrowPeakWriter(path, args.threshold, name=name))
            except TrackError as exc:
                raise UserError(f"{flag} {exc}") from None
            except OSError as exc:
                raise UserError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        for w in writers:
            w.abort()
        raise
    return writers


def main(argv: Sequence[str] | None = None) -> int:
    return guard(PROG, lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    from bsp_fast.data import Genome
    from bsp_fast.dense import is_dense, score_grid
    from bsp_fast.loader import score_windows
    from bsp_fast.models import seq_len, window_offset
    from bsp_fast.train import _one_line, resolve_device

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    for flag, v in (("--step", args.step), ("--batch-size", args.batch_size), ("--chunk", args.chunk),
                    ("--bin-size", args.bin_size)):
        if v is not None and v < 1:
            raise UserError(f"{flag}: expected a positive integer, got {v}")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if args.rc_average:
            ckpt["model_config"] = {**ckpt["model_config"], "rc_average": True}
        model = model_from_checkpoint(ckpt, args.checkpoint)
    except CheckpointError as exc:
        raise UserError(f"--checkpoint: {exc}") from None
    try:
        genome = Genome(args.genome, cache_dir=args.cache_dir)
    except (ValueError, OSError) as exc:
        raise UserError(f"--genome {args.genome}: {_one_line(exc)}") from None
    out = Path(args.out)
    for flag, path in (("--out", out), ("--peaks-out", Path(args.peaks_out) if args.peaks_out else None)):
        if path is not None and path.is_dir():
            raise UserError(f"{flag} {path}: is a directory (expected a file name such as preds.tsv.gz)")
    try:
        track_format(out)
    except TrackError as exc:
        raise UserError(f"--out {exc}") from None
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold: expected a probability in [0, 1], got {args.threshold}")
    bin_size = int(args.bin_size or ckpt.get("bin_size", 200))
    cfg = model.config
    length = seq_len(cfg)
    dense = is_dense(model) and not args.regions  # --regions: one window per region, as for any model
    if dense and (args.step != cfg["step"] or bin_size != cfg["region"]):
        raise UserError(f"--step {args.step} / --bin-size {bin_size}: model {cfg['name']} scores {cfg['region']} bp "
                        f"bins every {cfg['step']} bp in one pass over each stretch; use --step {cfg['step']}")
    track_name = args.track_name or f"bsp_fast_{cfg['name']}"
    chunks = list(_chunks(genome, args, bin_size)) if args.regions else None  # validates the BED up front
    if not args.regions:
        next(iter(_chunks(genome, args, bin_size)), None)  # validates --chroms up front
    dist_info = D.setup(device.type)
    try:
        if dist_info.enabled and device.type == "cuda":
            device = torch.device("cuda", dist_info.local_rank)
        model.to(device).eval()
        autocast = device.type == "cuda"
        total = count_bins(genome, args, bin_size) if chunks is None else sum(c[1].size for c in chunks)
        show = not args.no_progress and dist_info.is_main
        bar = progress(total=(total if total >= 0 else None), desc="predict", unit="bin", disable=not show)
        writers: list[TrackWriter] = []
        tmp_dir = out.parent / f".{out.name}.parts"
        if dist_info.is_main:
            writers = _open_writers(out, args, genome, track_name, bin_size)
            if dist_info.enabled:
                tmp_dir.mkdir(exist_ok=True)
        D.barrier(dist_info)
        t0 = time.perf_counter()
        n_done = 0
        try:
            it = chunks if chunks is not None else _chunks(genome, args, bin_size)
            for k, (chrom, starts, stops) in enumerate(it):
                if k % dist_info.world_size != dist_info.rank:
                    continue
                cid = genome.chrom_id(chrom)
                centers = (starts + stops) // 2
                wstarts = centers - length // 2
                ids = np.full(starts.size, cid, dtype=np.int64)
                report = (lambda m: bar.update(m * dist_info.world_size)) if show else None
                if dense:  # the chunk is a run of the bin grid: every bin of it from stretches read once
                    logits = score_grid(model, genome, cid, int(starts[0]), starts.size, device=device,
                                        autocast=autocast, batch_size=args.batch_size, progress=report)
                    probs = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
                else:
                    probs = score_windows(model, genome, ids, wstarts, length, args.batch_size or 256, device,
                                          autocast, progress=report)
                if dist_info.enabled:  # a part per chunk; rank 0 replays them in order
                    part = tmp_dir / f"{k:08d}.npz"
                    with open(part.with_suffix(".tmp"), "wb") as fh:
                        np.savez(fh, chrom=np.array(chrom), starts=starts, stops=stops, probs=probs)
                    os.replace(part.with_suffix(".tmp"), part)
                else:
                    for w in writers:
                        w.write(chrom, starts, stops, probs)
                n_done += starts.size
            bar.close()
            counts = D.all_reduce_sum([float(n_done)], dist_info, torch.device("cpu"))
            D.barrier(dist_info)
            if dist_info.is_main:
                if dist_info.enabled:
                    for part in sorted(tmp_dir.glob("*.npz")):
                        with np.load(part) as z:
                            for w in writers:
                                w.write(str(z["chrom"]), z["starts"], z["stops"], z["probs"])
                        part.unlink()
                    tmp_dir.rmdir()
                for w in writers:
                    w.close()
                writers_done = writers
                writers = []
        except TrackError as exc:
            raise UserError(f"--out {exc}") from None
        except OSError as exc:
            raise UserError(f"--out {out}: {exc.strerror or exc}") from None
        finally:
            for w in writers:  # only on an error: nothing half-written
                w.abort()
        if dist_info.is_main:
            dt = time.perf_counter() - t0
            print(f"{PROG}: wrote {int(counts[0]):,} scores to {out} in {dt:.1f} s "
                  f"({counts[0] / max(dt, 1e-9):,.0f} bins/s)", file=sys.stderr)
            for w in writers_done:
                if isinstance(w, NarrowPeakWriter):
                    print(f"{PROG}: {w.n_peaks:,} peaks ({w.n_rows:,} bins >= {args.threshold:g}) in {w.path}",
                          file=sys.stderr)
                elif isinstance(w, BigWigWriter):
                    print(f"{PROG}: UCSC custom track line for {w.path.name}: {w.track_line}", file=sys.stderr)
        D.barrier(dist_info)
    finally:
        D.teardown(dist_info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
