"""Scale check: a whole-genome-sized synthetic genome and label file through the data layer.

    python benchmarks/scale_check.py [--scale 1.0] [--dir /tmp/bsp_scale] [--keep]

Builds an hg19-sized random genome (24 chromosomes, 3.1 Gbp x scale, 60-column FASTA, N runs at
the telomeres and in a "centromere" per chromosome) and an ENCODE-DREAM label file with every
200 bp / 50 bp bin of it (~62 M rows x scale, 3 cells, gzip), then, each phase in a fresh process
so that its peak RSS is its own:

1. encode: ``Genome(fasta)`` (FASTA -> cached codes), time and MB/s;
2. parse: ``read_dream_labels(labels, cell)``, time and rows/s;
3. sample: map the cached genome, read the labels, draw shuffled class-balanced batches
   (``BalancedSampler`` on the training chromosomes of the default split), extract 400 bp
   one-hot windows (batch 1024) for ``--seconds``; windows/s and peak RSS (VmHWM, and the
   anonymous and file-backed parts at the end: mapped genome pages are file-backed, shared and
   reclaimable).

4. predict (``--phases ...,predict``): ``python -m bsp_fast.predict`` of the default model (built
   untrained with the default run's config, or ``--checkpoint``) over every bin of the genome, from
   the FASTA (encoding included, into a fresh cache) to the gzipped TSV; wall time, bins/s, peak RSS.

Targets (issue 4): encode + parse < 10 min, peak RSS < 4 GB while sampling; (issue 13) predict of
the whole genome < 1 hour, memory bounded. The files are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

HG19 = [
    ("chr1", 249250621), ("chr2", 243199373), ("chr3", 198022430), ("chr4", 191154276),
    ("chr5", 180915260), ("chr6", 171115067), ("chr7", 159138663), ("chr8", 146364022),
    ("chr9", 141213431), ("chr10", 135534747), ("chr11", 135006516), ("chr12", 133851895),
    ("chr13", 115169878), ("chr14", 107349540), ("chr15", 102531392), ("chr16", 90354753),
    ("chr17", 81195210), ("chr18", 78077248), ("chr19", 59128983), ("chr20", 63025520),
    ("chr21", 48129895), ("chr22", 51304566), ("chrX", 155270560), ("chrY", 59373566),
]
BIN, STEP, CELLS = 200, 50, ("A549", "H1-hESC", "HeLa-S3")


def sizes_for(scale: float) -> list[tuple[str, int]]:
    return [(n, max(10_000, int(l * scale))) for n, l in HG19]


def mem_status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) * 1024
    out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


# --------------------------------------------------------------------------------------------
# generation


def write_fasta(path: Path, sizes, seed: int = 0, width: int = 60) -> None:
    rng = np.random.default_rng(seed)
    lut = np.frombuffer(b"ACGTacgtN", np.uint8)
    with open(path, "wb", buffering=1 << 22) as f:
        for name, n in sizes:
            f.write(f">{name} synthetic\n".encode())
            for a in range(0, n, 60_000_000):  # pieces keep generation memory small
                m = min(60_000_000, n - a)
                seq = lut[rng.integers(0, 8, size=m, dtype=np.uint8)]
                # N runs: 10 kb telomeres and a 1 Mbp "centromere"
                for lo, hi in ((0, 10_000), (n - 10_000, n), (n // 3, n // 3 + min(1_000_000, n // 10))):
                    lo2, hi2 = max(lo, a), min(hi, a + m)
                    if lo2 < hi2:
                        seq[lo2 - a : hi2 - a] = ord("N")
                full = m // width * width
                block = np.empty((m // width, width + 1), np.uint8)
                block[:, :width] = seq[:full].reshape(-1, width)
                block[:, width] = 10
                f.write(block.tobytes())
                if m > full:
                    f.write(seq[full:].tobytes() + b"\n")


def _digits(x: np.ndarray) -> np.ndarray:
    return np.where(x == 0, 1, np.floor(np.log10(np.maximum(x, 1))).astype(np.int64) + 1)


def format_rows(chrom: str, starts: np.ndarray, letters: np.ndarray) -> bytes:
    """DREAM rows ``chrom start stop L1 L2 ...`` as bytes, vectorised (rows in order)."""
    stops = starts + BIN
    ds, dt = _digits(starts), _digits(stops)
    key = ds * 100 + dt
    cuts = np.flatnonzero(np.diff(key)) + 1
    out = []
    cb = chrom.encode()
    k = letters.shape[1]
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(starts)]):
        s, t, lt = starts[a:b], stops[a:b], letters[a:b]
        na, nb = int(ds[a]), int(dt[a])
        w = len(cb) + 1 + na + 1 + nb + 2 * k + 1
        m = np.empty((b - a, w), np.uint8)
        m[:, : len(cb)] = np.frombuffer(cb, np.uint8)
        o = len(cb)
        m[:, o] = 9
        o += 1
        for j in range(na):
            m[:, o + j] = 48 + (s // 10 ** (na - 1 - j)) % 10
        o += na
        m[:, o] = 9
        o += 1
        for j in range(nb):
            m[:, o + j] = 48 + (t // 10 ** (nb - 1 - j)) % 10
        o += nb
        for j in range(k):
            m[:, o] = 9
            m[:, o + 1] = lt[:, j]
            o += 2
        m[:, -1] = 10
        out.append(m.tobytes())
    return b"".join(out)


def write_labels(path: Path, sizes, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"U" * 98 + b"BA", np.uint8)
    n_rows = 0
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(("chr\tstart\tstop\t" + "\t".join(CELLS) + "\n").encode())
        for name, n in sizes:
            nb = (n - BIN) // STEP + 1
            for a in range(0, nb, 2_000_000):
                starts = np.arange(a, min(nb, a + 2_000_000), dtype=np.int64) * STEP
                lt = letters[rng.integers(0, 100, size=(len(starts), len(CELLS)))]
                f.write(format_rows(name, starts, lt))
                n_rows += len(starts)
    return n_rows


# --------------------------------------------------------------------------------------------
# phases (each in its own process)


def phase_encode(args) -> dict:
    from bsp_fast.data import Genome

    t = time.perf_counter()
    g = Genome(args.dir / "genome.fa", cache_dir=args.dir / "cache")
    dt = time.perf_counter() - t
    size = (args.dir / "genome.fa").stat().st_size
    return {"encode_s": dt, "fasta_bytes": size, "bases": g.total_length, "encode_MB_per_s": size / dt / 1e6,
            **{f"encode_{k}": v for k, v in mem_status().items()}}


def phase_parse(args) -> dict:
    from bsp_fast.data import read_dream_labels

    t = time.perf_counter()
    lab = read_dream_labels(args.dir / "labels.tsv.gz", "H1-hESC")
    dt = time.perf_counter() - t
    n = len(lab)
    return {"parse_s": dt, "rows": n, "rows_per_s": n / dt, "label_counts": lab.counts(),
            "labels_gz_bytes": (args.dir / "labels.tsv.gz").stat().st_size,
            **{f"parse_{k}": v for k, v in mem_status().items()}}


Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # chromosome ids, window starts, strands


def _training_batches(lab: Any, g: Any, batch: int, flank: int) -> Iterator[Batch]:
    """Endless (chrom ids, window starts, strands) of ``BalancedSampler`` batches on the training
    chromosomes of the default split; window = bin +- ``flank``."""
    from bsp_fast.data import BalancedSampler, ChromSplit

    # resolve() returns (train, valid, test); only chromosomes in both labels and genome count
    train, valid, test = ChromSplit().resolve(lab, g)
    sampler = BalancedSampler(lab, train, batch, negatives_per_positive=1.0, seed=0, chrom_order=g)
    held_out = np.array([g.chrom_id(c) for c in valid + test])
    while True:
        for b in sampler:
            # cheap guard that the split is what we think it is: held-out chromosomes never sampled
            assert not np.isin(b.chroms, held_out).any(), "held-out chromosome in a training batch"
            yield b.chroms, b.starts - flank, b.strands


def phase_sample(args) -> dict:
    from bsp_fast.data import Genome, read_dream_labels

    g = Genome(args.dir / "genome.fa", cache_dir=args.dir / "cache")
    t = time.perf_counter()
    lab = read_dream_labels(args.dir / "labels.tsv.gz", "H1-hESC", genome=g)
    t_labels = time.perf_counter() - t
    B, L, flank = 1024, 400, 100
    out = np.empty((B, L, 4), np.float32)
    it = _training_batches(lab, g, B, flank)
    n = 0
    t_draw = 0.0
    t_ext = 0.0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        a = time.perf_counter()
        chroms, starts, strands = next(it)
        b = time.perf_counter()
        g.one_hot(chroms, starts, L, strands, out=out)
        c = time.perf_counter()
        t_draw += b - a
        t_ext += c - b
        n += len(starts)
    dt = time.perf_counter() - t0
    return {"sampler": "BalancedSampler (default split, 1 negative per positive, rc augment)",
            "labels_read_s": t_labels, "sample_windows": n, "sample_s": dt,
            "windows_per_s_end_to_end": n / dt, "windows_per_s_extract_only": n / t_ext,
            "sampler_batches_per_s": n / B / t_draw if t_draw else None,
            **{f"sample_{k}": v for k, v in mem_status().items()}}


def phase_predict(args) -> dict:
    """The whole genome through ``python -m bsp_fast.predict`` in a child process (peak RSS its own)."""
    ckpt = args.checkpoint
    if ckpt is None:
        import torch

        from bsp_fast.checkpoint import FORMAT, VERSION, atomic_save
        from bsp_fast.models import build_model
        from bsp_fast.train import BUILTIN_DENSE_DEFAULTS, DEFAULT_MODEL

        torch.manual_seed(0)
        model = build_model(DEFAULT_MODEL, members=BUILTIN_DENSE_DEFAULTS["members"])
        ckpt = args.dir / "default.pt"
        atomic_save({"format": FORMAT, "version": VERSION, "kind": "best", "model_config": model.config,
                     "model": model.state_dict(), "bin_size": 200}, ckpt)
    out = args.dir / "preds.tsv.gz"
    cmd = [sys.executable, "-m", "bsp_fast.predict", "--checkpoint", str(ckpt), "--genome", str(args.dir / "genome.fa"),
           "--cache-dir", str(args.dir / "predict-cache"), "--out", str(out)]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"predict failed: {p.stderr[-2000:]}")
    rows = 0
    with gzip.open(out, "rt") as fh:
        for rows, _ in enumerate(fh, 1):
            pass
    return {"predict_cmd": " ".join(cmd[1:]), "predict_s": dt, "predict_bins": rows, "predict_bins_per_s": rows / dt,
            "predict_out_bytes": out.stat().st_size,
            "predict_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "predict_log_tail": p.stderr.strip().splitlines()[-1:]}


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of hg19 size (default 1.0 = 3.1 Gbp)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bsp_scale"))
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to sample")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--phase", choices=["encode", "parse", "sample", "predict"], help=argparse.SUPPRESS)
    ap.add_argument("--phases", default="encode,parse,sample",
                    help="comma-separated phases to run: encode, parse, sample, predict (default: the first three)")
    ap.add_argument("--checkpoint", type=Path, help="predict: this checkpoint (default: the default model, untrained)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.phase:
        res = {"encode": phase_encode, "parse": phase_parse, "sample": phase_sample,
               "predict": phase_predict}[args.phase](args)
        print("RESULT " + json.dumps(res))
        return

    sizes = sizes_for(args.scale)
    total = sum(n for _, n in sizes)
    need = total * 2.3
    args.dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.dir).free
    print(f"scale {args.scale}: {total / 1e9:.3f} Gbp in {len(sizes)} chromosomes; dir {args.dir}, "
          f"free {free / 1e9:.1f} GB, need ~{need / 1e9:.1f} GB", flush=True)
    if free < need:
        sys.exit(f"not enough disk space in {args.dir}: use --scale or --dir")
    results: dict = {"scale": args.scale, "bases": total}
    try:
        t = time.perf_counter()
        write_fasta(args.dir / "genome.fa", sizes)
        results["gen_fasta_s"] = time.perf_counter() - t
        print(f"  wrote FASTA in {results['gen_fasta_s']:.0f} s", flush=True)
        phases = [x.strip() for x in args.phases.split(",") if x.strip()]
        bad = [x for x in phases if x not in ("encode", "parse", "sample", "predict")]
        if bad:
            raise SystemExit(f"--phases: unknown phase(s) {bad}")
        if {"parse", "sample"} & set(phases):
            t = time.perf_counter()
            results["label_rows_written"] = write_labels(args.dir / "labels.tsv.gz", sizes)
            results["gen_labels_s"] = time.perf_counter() - t
            print(f"  wrote {results['label_rows_written']:,} label rows in {results['gen_labels_s']:.0f} s", flush=True)
        os.system("sync")
        for phase in phases:
            cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(args.dir), "--seconds", str(args.seconds)]
            if args.checkpoint:
                cmd += ["--checkpoint", str(args.checkpoint)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout, p.stderr)
                raise SystemExit(f"phase {phase} failed")
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            res = json.loads(line[7:])
            results.update(res)
            print(f"  {phase}: " + ", ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in res.items()), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    gb = 1e9
    print("\n==== scale check ====")
    if "predict_s" in results:
        print(f"predict (from FASTA, encoding included, to gzipped TSV): {results['predict_bins']:,} bins in "
              f"{results['predict_s'] / 60:.1f} min = {results['predict_bins_per_s']:,.0f} bins/s, peak RSS "
              f"{results['predict_peak_rss'] / gb:.2f} GB (target < 1 hour)")
    if "rows" not in results:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    print(f"genome {total / 1e9:.3f} Gbp, labels {results['rows']:,} rows")
    print(f"encode {results['encode_s']:.1f} s ({results['encode_MB_per_s']:.0f} MB/s), peak RSS "
          f"{results['encode_VmHWM'] / gb:.2f} GB")
    print(f"parse  {results['parse_s']:.1f} s ({results['rows_per_s'] / 1e6:.1f} M rows/s), peak RSS "
          f"{results['parse_VmHWM'] / gb:.2f} GB")
    print(f"encode + parse {results['encode_s'] + results['parse_s']:.1f} s (target < 600 s)")
    print(f"sample ({results['sampler']}): {results['windows_per_s_end_to_end']:,.0f} windows/s end to end, "
          f"{results['windows_per_s_extract_only']:,.0f} windows/s extraction only; peak RSS "
          f"{results['sample_VmHWM'] / gb:.2f} GB (at the end: anon {results['sample_RssAnon'] / gb:.2f} GB, "
          f"file-backed {results['sample_RssFile'] / gb:.2f} GB) (target < 4 GB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
