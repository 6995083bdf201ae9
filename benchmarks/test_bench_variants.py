"""Variant-effect throughput of ``python -m bsp_fast.variants`` with the default model.

    pytest benchmarks/test_bench_variants.py -s -q --benchmark-columns=mean,rounds
    python benchmarks/test_bench_variants.py [--n 4000] [--threads 2] [--batch-size 256] [--profile]

The model is the default of ``python -m bsp_fast.train`` (``hybrid-dense``, one member, 100 + 200 +
100 bp windows, both strands averaged; ``--model hybrid5``: the earlier default, 5 ``hybrid`` members
with the occupancy head), built untrained with that config (the speed does not depend on the
weights) and saved as a checkpoint. The variants are SNVs (90 %) and 1-20 bp indels
at random positions of the built-in genome, written to a VCF; the timed part is the whole command
(VCF parsing, REF checks, window building, scoring, writing). Per variant the model runs 2 windows
(REF and ALT) x 2 strands x members. Target >= 1,000 variants/s on the 2-core CPU (floor 500).

``--profile`` also times the parts separately: the model on the REF + ALT windows alone, and the
rest (reading, checks, windows, output).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_N = int(os.environ.get("BSP_BENCH_VARIANTS", "3000"))


def default_checkpoint(path: Path, which: str = "default") -> Path:
    """The default run's model (``which="default"``) or the earlier 5-member occupancy hybrid ("hybrid5")."""
    from bsp_fast.checkpoint import FORMAT, VERSION, atomic_save
    from bsp_fast.models import build_model
    from bsp_fast.train import BUILTIN_DEFAULTS, BUILTIN_DENSE_DEFAULTS, DEFAULT_MODEL, HYBRID_OPTIONS

    torch.manual_seed(0)
    if which == "hybrid5":
        model = build_model("hybrid", **HYBRID_OPTIONS, members=BUILTIN_DEFAULTS["members"])
    else:
        model = build_model(DEFAULT_MODEL, members=BUILTIN_DENSE_DEFAULTS["members"])
    atomic_save({"format": FORMAT, "version": VERSION, "kind": "train", "model_config": model.config,
                 "model": model.state_dict(), "bin_size": 200}, path)
    return path


def random_vcf(genome, path: Path, n: int, seed: int = 0) -> Path:
    """n variants (90 % SNVs, 10 % indels of 1-20 bp) at random non-N positions, sorted."""
    rng = np.random.default_rng(seed)
    sizes = dict(genome.chromosomes)
    names = list(sizes)
    rows = []
    while len(rows) < n:
        c = names[int(rng.integers(len(names)))]
        p = int(rng.integers(11_000, sizes[c] - 100))
        kind = rng.random()
        if kind < 0.9:
            ref = genome.sequence(c, p, p + 1)
            if "N" in ref:
                continue
            alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
        elif kind < 0.95:
            ref = genome.sequence(c, p, p + 1)
            alt = ref + "".join(rng.choice(list("ACGT"), size=int(rng.integers(1, 21))))
        else:
            ref = genome.sequence(c, p, p + 1 + int(rng.integers(1, 21)))
            alt = ref[0]
        if "N" in ref:
            continue
        rows.append((names.index(c), p + 1, c, ref, alt))
    rows.sort()
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for _, pos, c, ref, alt in rows:
            fh.write(f"{c}\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    return path


def setup(workdir: Path, n: int, which: str = "default"):
    from bsp_fast.data import Genome
    from bsp_fast.data.synthetic import ensure_builtin

    b = ensure_builtin()
    genome = Genome(b.fasta)
    ckpt = default_checkpoint(workdir / f"{which}.pt", which)
    vcf = random_vcf(genome, workdir / "bench.vcf", n)
    return b, genome, ckpt, vcf


def run_command(b, ckpt: Path, vcf: Path, out: Path, threads: int | None, batch: int | None) -> float:
    from bsp_fast import variants

    argv = ["--checkpoint", str(ckpt), "--genome", str(b.fasta), "--vcf", str(vcf), "--out", str(out), "--no-progress"]
    if threads:
        argv += ["--threads", str(threads)]
    if batch:
        argv += ["--batch-size", str(batch)]
    t0 = time.perf_counter()
    assert variants.main(argv) == 0
    return time.perf_counter() - t0


def profile(genome, ckpt: Path, n: int, batch: int) -> dict[str, float]:
    """Seconds per variant of the model alone on REF + ALT windows (both strands, 5 members), with the
    SNV shortcut the command uses, one strand, and one member on one strand."""
    from bsp_fast.checkpoint import load_checkpoint, model_from_checkpoint
    from bsp_fast.models import seq_len

    model = model_from_checkpoint(load_checkpoint(ckpt)).eval()
    length = seq_len(model.config)
    x = torch.from_numpy(genome.codes(0, np.arange(11_000, 11_000 + 2 * n * 7, 7), length))
    out = {}

    def timed(m, codes):
        with torch.inference_mode():
            m(codes[:batch])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, codes.shape[0], batch):
                m(codes[i:i + batch])
        return (time.perf_counter() - t0) / (codes.shape[0] / 2)

    model.rc_average = True
    out["model_both_strands_s_per_variant"] = timed(model, x)
    # the SNV shortcut (hybrid: the ALT window reuses the REF convolution), as the command runs it
    ref, alt = x[:n], x[:n].clone()
    mid = (length - 1) // 2
    alt[:, mid] = (alt[:, mid] + 1) % 4
    with torch.inference_mode():
        shortcut = getattr(model, "substitution_logits", lambda *a: None)(ref[:2], alt[:2], mid, mid + 1)
    if shortcut is None:  # hybrid-dense: no SNV shortcut, both windows scored plainly
        model.rc_average = False
        out["model_one_strand_s_per_variant"] = timed(model, x)
        return out
    with torch.inference_mode():
        model.substitution_logits(ref[:batch // 2], alt[:batch // 2], mid, mid + 1)
        t0 = time.perf_counter()
        for i in range(0, n, batch // 2):
            model.substitution_logits(ref[i:i + batch // 2], alt[i:i + batch // 2], mid, mid + 1)
        out["model_snv_shortcut_both_strands_s_per_variant"] = (time.perf_counter() - t0) / n
    model.rc_average = False
    out["model_one_strand_s_per_variant"] = timed(model, x)
    if hasattr(model, "members"):
        out["one_member_one_strand_s_per_variant"] = timed(model.members[0], x[: x.shape[0] // 5])
    return out


def test_variants_per_second(benchmark, tmp_path):
    b, genome, ckpt, vcf = setup(tmp_path, DEFAULT_N)
    holder = {}

    def run():
        holder["dt"] = run_command(b, ckpt, vcf, tmp_path / "effects.tsv", None, None)

    benchmark.pedantic(run, rounds=1, iterations=1)
    rate = DEFAULT_N / holder["dt"]
    benchmark.extra_info.update(variants_per_s=rate, n=DEFAULT_N, threads=torch.get_num_threads())
    print(f"\nvariants: {DEFAULT_N:,} in {holder['dt']:.1f} s = {rate:,.0f} variants/s "
          f"(default model, {torch.get_num_threads()} threads; target >= 1,000, floor 500)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="variants/s of bsp-fast variants with the default model")
    p.add_argument("--n", type=int, default=DEFAULT_N)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--model", choices=("default", "hybrid5"), default="default",
                   help="default: the default run's model; hybrid5: the earlier default, 5 occupancy hybrids")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        b, genome, ckpt, vcf = setup(d, args.n, args.model)
        dt = run_command(b, ckpt, vcf, d / "effects.tsv", args.threads, args.batch_size)
        print(f"variants: {args.n:,} in {dt:.2f} s = {args.n / dt:,.0f} variants/s "
              f"({torch.get_num_threads()} threads, torch {torch.__version__})")
        if args.profile:
            prof = profile(genome, ckpt, min(args.n, 1500), args.batch_size or 512)
            total = dt / args.n
            for k, v in prof.items():
                print(f"  {k}: {v * 1e3:.3f} ms ({100 * v / total:.0f} % of the command's {total * 1e3:.3f} ms/variant)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
