"""The real-DNA benchmark panel: semi-synthetic genomes on real genome sequence, each with its oracle
and an exact-PWM scan, and the real-data recipe of ``python -m bsp_fast.train`` trained on each.

    python benchmarks/panel.py prepare                 # fetch the backgrounds, generate the genomes
    python benchmarks/panel.py run                     # train + score every member (plain and --init-motifs)
    python benchmarks/panel.py run --only ctcf-human20 --variants plain
    python benchmarks/panel.py report                  # benchmarks/results/<date>-panel.md / .json
    python benchmarks/panel.py parts --results F.json  # each context term's worth to the oracle (no training)
    python benchmarks/panel.py run --fold 1 --results F1.json  # another held-out split (0-3; 0 is the panel's)

Each member (:data:`PANEL`) is a :class:`bsp_fast.data.semisynthetic.PanelSpec` on one real
background (``benchmarks/panel/sources.py``: Debian / PyPI packages), cut into ~1 Mbp segments
named ``<prefix>_<k>``; the test segments are every fourth one (from the first), the validation
segment the third of each eight (``--fold K`` shifts both by K segments: the four folds test every
segment once, for a figure less tied to which three segments are held out). Training is the command a
user would run::

    python -m bsp_fast.train --genome G/genome.fa --labels G/<motif>.train.labels.tsv.gz --cell SEMI \\
        --test-chroms ... --valid-chroms ... --max-minutes 15 [--init-motifs G/factor.jaspar]

(the recipe's own step budget, validation cadence and early stop; 15 minutes at most), and its
test auPRC is set beside the oracle's and the scan's on the same bins (A bins left out, as train
does). Not a timed test: a benchmark to run by hand, about 3-8 minutes per member and variant on a
2-core CPU. Results accumulate in ``--results`` (JSON), so members can be run one at a time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "panel"))
import sources  # noqa: E402

from bsp_fast.data.semisynthetic import (PanelSpec, cut_segments, generate_panel_genome, oracle_ablation,  # noqa: E402
                                        read_panel_oracle, write_panel_genome)

MOTIFS = HERE / "panel" / "motifs.jaspar"

# name: (background, segment start in each record, bp used, segment prefix, spec)
PANEL: dict[str, tuple[str, int, int, str, PanelSpec]] = {
    # a long motif bound alone, GC-rich chromatin preferred, human repeats and isochores underneath
    "ctcf-human20": ("human20", 30_000_000, 12_000_000, "hs20",
                     PanelSpec("ctcf-human20", "MA0139.1", prevalence=0.003, clustered_fraction=0.1, beta=0.5, seed=1)),
    # a 13 bp factor raised by a short partner (FOXA1) within 40 bp, sites in clusters and alone
    "hnf4-yeast": ("yeast", 0, 12_100_000, "sc",
                   PanelSpec("hnf4-yeast", "MA0114.4", prevalence=0.01, partner="MA0148.5", partner_fraction=0.6,
                             partner_boost=3.0, clustered_fraction=0.4, seed=2)),
    # a 20 bp motif with look-alikes: good REST sites with a YY1 site beside them are never bound
    "rest-pfalciparum": ("pfalciparum", 0, 16_000_000, "pf",
                         PanelSpec("rest-pfalciparum", "MA0138.3", prevalence=0.002, blocker="MA0095.4",
                                   lookalikes_per_site=1.0, clustered_fraction=0.2, seed=3)),
    # a 10 bp E-box where USF1 sites on the same E-box (a related factor) are never MAX-bound; GC-rich DNA
    "max-bjaponicum": ("bjaponicum", 0, 9_105_828, "bj",
                       PanelSpec("max-bjaponicum", "MA0058.3", prevalence=0.006, blocker="MA0093.3", blocker_window=3,
                                 lookalikes_per_site=1.0, beta=0.5, seed=4)),
    # a short (8 bp) motif in clusters, AT-rich chromatin preferred, an HNF4A partner
    "foxa-humanX": ("humanX", 20_000_000, 12_000_000, "hsx",
                    PanelSpec("foxa-humanX", "MA0148.5", prevalence=0.005, clustered_fraction=0.7, cluster_sites=4.0,
                              partner="MA0114.4", partner_fraction=0.3, partner_boost=2.0, beta=-0.5, seed=5)),
}
SEGMENT_BP = 1_000_000


FOLDS = 4


def held_out(names: list[str], fold: int = 0) -> tuple[list[str], list[str]]:
    """(test, valid) segments of split ``fold`` (0 is the panel's own; 0..3 together test every segment once):
    every fourth segment from ``fold`` is test, every eighth from ``fold + 2`` validation, the rest train."""
    if not 0 <= fold < FOLDS:
        raise ValueError(f"fold {fold}: expected 0..{FOLDS - 1}")
    test = names[fold::FOLDS]
    valid = [n for n in names[(fold + 2) % FOLDS::2 * FOLDS] if n not in test]
    return test, valid


def genome_dir(cache: Path, name: str) -> Path:
    return cache / "genomes" / name


def prepare(name: str, cache: Path) -> Path:
    """Generate panel member ``name`` (kept while its spec and background are unchanged)."""
    bg, start, bp, prefix, spec = PANEL[name]
    out = genome_dir(cache, name)
    want = {"spec": spec.to_json(), "background": bg, "start": start, "bp": bp, "segment_bp": SEGMENT_BP,
            "motifs": MOTIFS.read_text()}
    stamp = out / "panel.json"
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return out
    fasta = sources.fetch(bg, cache)
    segs = cut_segments(fasta, SEGMENT_BP, prefix, max_bp=bp, start=start)
    test, valid = held_out([s.name for s in segs])
    t0 = time.perf_counter()
    stats = write_panel_genome(out, spec, segs, MOTIFS, test, valid)
    from bsp_fast.motif_io import read_jaspar

    factor = [m for m in read_jaspar(MOTIFS) if m.id == spec.factor]
    (out / "factor.jaspar").write_text("".join(
        f">{m.id}\t{m.name}\n" + "".join(f"{b}  [ " + " ".join(f"{v:g}" for v in m.matrix[:, i]) + " ]\n"
                                         for i, b in enumerate("ACGT")) for m in factor))
    stamp.write_text(json.dumps(want))
    print(f"panel: {name}: {sum(s.codes.size for s in segs):,} bp in {len(segs)} segments, prevalence "
          f"{stats['prevalence']:.4f}, test oracle auPRC {stats['test_oracle']['auprc']:.3f}, scan "
          f"{max(stats['test_scan_mid']['auprc'], stats['test_scan_bin']['auprc']):.3f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def baselines(gdir: Path, test: list[str]) -> dict:
    """Oracle and PWM-scan metrics on the test bins (B and U), as train scores them."""
    from bsp_fast.metrics import binary_metrics

    table = read_panel_oracle(gdir / "oracle.npz")
    y = np.concatenate([table[c]["labels"] for c in test])
    keep = y >= 0
    out = {}
    for key in ("oracle", "scan_mid", "scan_bin"):
        s = np.concatenate([table[c][key] for c in test])[keep]
        m = binary_metrics(y[keep], s)
        out[key] = {"auroc": float(m["auroc"]), "auprc": float(m["auprc"]), "n_pos": int(m["n_pos"]),
                    "n_neg": int(m["n_neg"])}
    out["scan"] = max(out["scan_mid"], out["scan_bin"], key=lambda d: d["auprc"])
    return out


def split(gdir: Path, fold: int) -> tuple[list[str], list[str]]:
    """(test, valid) of ``fold`` for a prepared member (fold 0: the split its stats.json records)."""
    names = [str(c) for c in np.load(gdir / "oracle.npz")["chroms"]]
    test, valid = held_out(names, fold)
    if fold == 0:
        stats = json.loads((gdir / "stats.json").read_text())
        if (test, valid) != (stats["test"], stats["valid"]):
            raise RuntimeError(f"{gdir}: stats.json's split is not held_out's: run `panel.py prepare` again")
    return test, valid


def train(name: str, gdir: Path, variant: str, runs: Path, max_minutes: float, extra: list[str],
          test: list[str], valid: list[str], fold: int = 0) -> dict:
    spec = json.loads((gdir / "stats.json").read_text())["spec"]
    out = runs / (f"{name}-{variant}" + (f"-fold{fold}" if fold else ""))
    cmd = [sys.executable, "-m", "bsp_fast.train", "--genome", str(gdir / "genome.fa"),
           "--labels", str(gdir / f"{spec['factor']}.train.labels.tsv.gz"), "--cell", "SEMI",
           "--test-chroms", ",".join(test), "--valid-chroms", ",".join(valid),
           "--max-minutes", f"{max_minutes:g}", "--out", str(out), "--overwrite", "--no-progress"] + extra
    if variant == "init":
        cmd += ["--init-motifs", str(gdir / "factor.jaspar")]
    print("panel: $ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    (runs / f"{out.name}.log").write_text(r.stdout)
    if r.returncode != 0:
        raise RuntimeError(f"{name} {variant}: train exited {r.returncode}:\n{r.stdout[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"auroc": m["auroc"], "auprc": m["auprc"], "n_pos": m["n_pos"], "n_neg": m["n_neg"],
            "wall_s": round(wall, 1), "train_seconds": round(m["train_seconds"], 1), "steps": m["steps"],
            "epochs": round(m["epochs"], 2), "stopped_by": m["stopped_by"], "best_valid_auprc": m["best_valid_auprc"],
            "command": " ".join(["python"] + cmd[1:])}


def parts(names: list[str], cache: Path, out: Path) -> None:
    """Each member's oracle on its test bins with one context term removed (``oracle_ablation``):
    how much of the oracle's lead over the motif alone a model must learn from context. The genome
    is regenerated in memory (the generator is deterministic) and checked against the stored oracle."""
    rows = {}
    for n in names:
        bg, start, bp, prefix, spec = PANEL[n]
        segs = cut_segments(sources.fetch(bg, cache), SEGMENT_BP, prefix, max_bp=bp, start=start)
        seg_names = [s.name for s in segs]
        test, _ = held_out(seg_names)
        r = oracle_ablation(spec, generate_panel_genome(spec, segs, MOTIFS), MOTIFS, seg_names, test)
        stored = baselines(genome_dir(cache, n), test)
        if abs(r["oracle"]["auprc"] - stored["oracle"]["auprc"]) > 1e-4:
            raise RuntimeError(f"{n}: the regenerated oracle ({r['oracle']['auprc']}) is not the stored one "
                               f"({stored['oracle']['auprc']}): run `panel.py prepare` again")
        r["scan"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in stored["scan"].items()}
        rows[n] = r
        print(f"panel: {n}: " + ", ".join(f"{k} {v['auprc']:.4f}" for k, v in r.items()), flush=True)
    res = {"date": str(_dt.date.today()), "members": rows}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, out)
    cols = ["oracle", "no GC", "no partner", "no blocker", "motif only", "scan"]
    lines = ["| genome | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for n, r in rows.items():
        lines.append(f"| {n} | " + " | ".join(f"{r[c]['auprc']:.3f}" if c in r else "-" for c in cols) + " |")
    out.with_suffix(".md").write_text(
        f"# What each context term is worth to the panel's oracles ({res['date']})\n\n"
        "Command: `python benchmarks/panel.py parts`. Test-bin auPRC of the oracle with one term of the binding "
        "process removed (labels unchanged; `-`: the genome has no such term); `motif only`: all removed "
        "(the exact matrix's occupancy); `scan`: the best-log-odds scan.\n\n" + "\n".join(lines) + "\n")


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    a = torch.randn(2048, 2048)
    torch.mm(a, a)
    t0 = time.perf_counter()
    for _ in range(5):
        torch.mm(a, a)
    gflops = 5 * 2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_mm_2048_gflops": round(gflops)}


def report(results: dict, md: Path) -> None:
    rows = ["| genome | background | factor (bp) | test bins (B) | oracle auPRC | PWM scan auPRC | model auPRC | x oracle "
            "| vs scan | auROC | wall s | --init-motifs auPRC | x oracle | vs scan | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["members"].items():
        b = r["baselines"]
        o, s = b["oracle"]["auprc"], b["scan"]["auprc"]

        def cells(v):
            if v is None:
                return ["-"] * 4
            return [f"{v['auprc']:.3f}", f"{v['auprc'] / o:.3f}", f"{v['auprc'] - s:+.3f}", f"{v['wall_s']:.0f}"]

        plain, init = r.get("plain"), r.get("init")
        c1 = cells(plain)
        c2 = cells(init)
        rows.append(f"| {name} | {r['background']} | {r['factor']} ({r['factor_bp']}) | "
                    f"{b['oracle']['n_pos'] + b['oracle']['n_neg']:,} ({b['oracle']['n_pos']}) | {o:.3f} | {s:.3f} | "
                    f"{c1[0]} | {c1[1]} | {c1[2]} | {plain['auroc'] if plain else float('nan'):.4f} | {c1[3]} | "
                    f"{c2[0]} | {c2[1]} | {c2[2]} | {c2[3]} |")
    folds = sorted({r.get("fold", 0) for r in results["members"].values()})
    split_note = "" if folds == [0] else f" Held-out split: fold {', '.join(map(str, folds))} (`--fold`; 0 is the panel's own)."
    text = (f"# Real-DNA panel, {results['date']}\n\nMachine: {results['machine']}\n\n"
            "Command: `python benchmarks/panel.py prepare && python benchmarks/panel.py run` "
            f"(each training command is in the JSON beside this file).{split_note}\n\n" + "\n".join(rows) + "\n")
    md.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("prepare", "run", "report", "parts"))
    p.add_argument("--only", help="comma-separated members (default: all)")
    p.add_argument("--variants", default="plain,init", help="plain and/or init (--init-motifs of the true motif)")
    p.add_argument("--cache", type=Path, default=sources.DEFAULT_CACHE)
    p.add_argument("--runs", type=Path, default=Path("runs/panel"))
    p.add_argument("--results", type=Path, default=None,
                   help="results JSON (default benchmarks/results/<date>-panel.json, -panel-fold<K>.json for --fold K)")
    p.add_argument("--max-minutes", type=float, default=15.0)
    p.add_argument("--train-args", default="", help="extra arguments for every train command")
    p.add_argument("--fold", type=int, default=0, choices=range(FOLDS),
                   help="held-out split: 0 is the panel's; 1-3 rotate the test segments (each segment is test in one fold)")
    a = p.parse_args(argv)
    if a.results is None:  # another fold never overwrites the panel's own results
        a.results = HERE / "results" / (f"{_dt.date.today()}-panel" + (f"-fold{a.fold}" if a.fold else "") + ".json")
    names = a.only.split(",") if a.only else list(PANEL)
    unknown = [n for n in names if n not in PANEL]
    if unknown:
        p.error(f"--only: unknown member(s) {unknown}; the panel has {', '.join(PANEL)}")
    if a.what == "parts":
        for n in names:
            prepare(n, a.cache)
        parts(names, a.cache, a.results)
        print(a.results.with_suffix(".md").read_text())
        return 0
    results = json.loads(a.results.read_text()) if a.results.exists() else {"members": {}}
    if a.what in ("prepare", "run"):
        for n in names:
            prepare(n, a.cache)
    if a.what == "run":
        results["date"] = str(_dt.date.today())
        results["machine"] = machine()
        a.runs.mkdir(parents=True, exist_ok=True)
        for n in names:
            gdir = genome_dir(a.cache, n)
            st = json.loads((gdir / "stats.json").read_text())
            bg, _, _, _, spec = PANEL[n]
            entry = results["members"].setdefault(n, {})
            from bsp_fast.motif_io import read_jaspar

            entry.update({"background": bg, "organism": sources.BACKGROUNDS[bg].organism, "factor": spec.factor,
                          "factor_bp": len([m for m in read_jaspar(MOTIFS) if m.id == spec.factor][0]),
                          "spec": spec.to_json(), "genome": {k: st[k] for k in ("prevalence", "bound_sites",
                                                                               "planted_factor_sites", "thresholds")}})
            test, valid = split(gdir, a.fold)
            entry.update({"fold": a.fold, "baselines": baselines(gdir, test)})
            for v in a.variants.split(","):
                r = train(n, gdir, v, a.runs, a.max_minutes, a.train_args.split(), test, valid, a.fold)
                b = entry["baselines"]
                if (r["n_pos"], r["n_neg"]) != (b["oracle"]["n_pos"], b["oracle"]["n_neg"]):
                    raise RuntimeError(f"{n}: train scored {r['n_pos']}/{r['n_neg']} test bins, the oracle "
                                       f"{b['oracle']['n_pos']}/{b['oracle']['n_neg']}")
                entry[v] = r
                print(f"panel: {n} {v}: auPRC {r['auprc']:.4f} = {r['auprc'] / b['oracle']['auprc']:.3f}x oracle "
                      f"({b['oracle']['auprc']:.4f}), scan {b['scan']['auprc']:.4f}; {r['wall_s']:.0f} s", flush=True)
                a.results.parent.mkdir(parents=True, exist_ok=True)
                tmp = a.results.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(results, indent=1) + "\n")
                os.replace(tmp, a.results)
    if a.what in ("run", "report") and results.get("members"):
        report(results, a.results.with_suffix(".md"))
        print(a.results.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
