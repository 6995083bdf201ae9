"""Explanations of a model's prediction for one sequence (``python -m bsp_fast.explain``).

    python -m bsp_fast.explain --checkpoint final.pt --sequence ACGT... [--motif CCGGAAGT] --out DIR
    python -m bsp_fast.explain --checkpoint final.pt --fasta seqs.fa [--max-records 10] --out DIR

**Per-base track** (the thesis' section 5.2 figure): for every base i the model scores the window it
was trained on (``flank + region + flank`` bases, from the checkpoint's model config) whose region is
centred on i (region start ``i - region // 2``); window parts that run off the sequence are N
(the thesis shortened them instead; N padding keeps every model, convolutional ones included, on
its trained input length). The probability is plotted per base as a bar, with the motif's
position marked by a bracket when known (``--motif SEQ``: every occurrence on either strand;
``--mark START-END``: 1-based, inclusive).

**In-silico mutagenesis**: every base of the scored input changed to each of the three others,
``delta = logit(mutant) - logit(reference)``, as a 4 x L heat map, with a logo of each base's
importance ``logit(reference) - mean(logit of its three mutants)``. The scored input (``--ism-on``)
is ``window`` (default): the model's window where the track peaks (the whole sequence when it is no
longer than the window), or ``sequence``: the whole sequence as one input.

**Attribution method** (``--method``): ``ism`` (default; above), ``ig`` (integrated gradients,
captum, from the all-N baseline) or ``deepliftshap`` (DeepLIFT/SHAP, tangermeme, against 20
dinucleotide shuffles; the dense-head cnn and ensembles of it: the FusedBiGRU models and the
occupancy head are refused with a line naming the blocking operation, pointing to ``ig``), on the
same input as ISM. The gradient methods need the ``interpret`` extra (``pip install
"bsp_fast[interpret]"``). Their completeness (sum of the attributions vs ``f(x) - f(reference)``)
is checked and reported per record in summary.json (``completeness_delta``, ``output``,
``reference_output``).

Outputs per record ``NAME``: ``NAME.track.tsv`` (position, base, logit, probability, in_motif),
``NAME.track.png``; with ``ism``: ``NAME.ism.tsv`` (position, ref, delta A, C, G, T, importance),
``NAME.ism.png``; with ``ig`` / ``deepliftshap``: ``NAME.METHOD.tsv`` (position, ref, hypothetical
A, C, G, T, attribution of the observed base), ``NAME.METHOD.png``; always ``NAME.METHOD.npz``
(float32 ``[1, 4, L]`` arrays ``ohe`` (one-hot input), ``attr`` (the observed bases'
attributions; for ISM, each base's importance) and ``hypothetical`` (every base's; for ISM, the
delta); modisco-lite takes ``ohe`` and ``hypothetical``), and ``summary.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bsp_fast.cli import ArgumentParser, UserError, guard

PROG = "bsp-fast explain"

__all__ = ["per_base_track", "ism_map", "motif_positions", "main"]


def _window_params(config: dict[str, Any]) -> tuple[int, int]:
    return int(config.get("region", 1)), int(config.get("flank", 0))


@torch.no_grad()
def per_base_track(model: torch.nn.Module, codes: np.ndarray, region: int, flank: int, batch_size: int = 512) -> np.ndarray:
    """Logit per base: the window whose region is centred on that base (N beyond the ends)."""
    codes = np.asarray(codes, dtype=np.uint8)
    length = len(codes)
    width = region + 2 * flank
    left = region // 2 + flank
    padded = np.full(length + width, 4, dtype=np.uint8)
    padded[left:left + length] = codes
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[:length]  # window i starts at i - left
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size]))).float().numpy()
           for i in range(0, length, batch_size)]
    return np.concatenate(out).astype(np.float64)


def ism_map(model: torch.nn.Module, codes: np.ndarray) -> tuple[float, np.ndarray]:
    """(reference logit, delta [L, 4]) of one sequence; see :func:`bsp_fast.interpret.attributions.ism`."""
    from bsp_fast.interpret.attributions import ism

    ref, delta = ism(model, np.asarray(codes, dtype=np.uint8)[None, :])
    return float(ref[0]), delta[0]


def motif_positions(codes: np.ndarray, motif: str) -> list[tuple[int, int, str]]:
    """0-based half-open (start, end, strand) of every occurrence of ``motif`` (either strand)."""
    from bsp_fast.seqsets import decode

    seq = decode(codes)
    m = motif.upper()
    rc = m.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]
    hits = []
    for strand, word in (("+", m), ("-", rc)):
        for mt in re.finditer(f"(?={re.escape(word)})", seq):
            hits.append((mt.start(), mt.start() + len(word), strand))
        if rc == m:
            break
    return sorted(set(hits))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _plot_track(path: Path, name: str, codes: np.ndarray, prob: np.ndarray, marks: list[tuple[int, int, str]],
                region: int, flank: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bsp_fast.plots import _save
    from bsp_fast.seqsets import decode

    length = len(codes)
    fig, ax = plt.subplots(figsize=(min(24.0, max(8.0, 0.12 * length)), 3.6))
    ax.bar(np.arange(1, length + 1), prob, width=0.9, color="#3b75af")
    ax.set(xlim=(0.5, length + 0.5), ylim=(-0.18, 1.02), xlabel="position (bp)", ylabel="P(bound)",
           title=f"{name}: prediction per base (region {region} bp centred on the base, flanks {flank} bp)")
    for s, e, strand in marks:
        ax.plot([s + 1, s + 1, e, e], [-0.04, -0.1, -0.1, -0.04], color="#d62728", lw=1.5)
        ax.text((s + e + 1) / 2, -0.16, f"motif ({strand})", ha="center", va="center", fontsize=7, color="#d62728")
    if length <= 150:
        seq = decode(codes)
        ax.set_xticks(np.arange(1, length + 1))
        ax.set_xticklabels(list(seq), fontsize=5, family="monospace")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    _save(fig, path)


def _plot_ism(path: Path, name: str, codes: np.ndarray, delta: np.ndarray, start: int) -> None:
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from bsp_fast.plots import _save

    length = len(codes)
    imp = np.where(codes < 4, -delta.sum(axis=1) / 3.0, 0.0)
    sal = np.zeros((length, 4))
    ok = codes < 4
    sal[np.flatnonzero(ok), codes[ok]] = imp[ok]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(min(24.0, max(8.0, 0.12 * length)), 4.8), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 1.1]})
    logomaker.Logo(pd.DataFrame(sal, columns=list("ACGT"), index=np.arange(start + 1, start + length + 1)), ax=ax1,
                   color_scheme="classic")
    ax1.set(ylabel="importance\n(logit)", title=f"{name}: in-silico mutagenesis (positions {start + 1}-{start + length})")
    lim = float(np.abs(delta).max()) or 1.0
    im = ax2.imshow(delta.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                    extent=(start + 0.5, start + length + 0.5, 3.5, -0.5))
    ax2.set_xlim(start + 0.5, start + length + 0.5)  # the shared axis would otherwise start at 0
    ax2.set_yticks(range(4))
    ax2.set_yticklabels(list("ACGT"))
    ax2.set_xlabel("position (bp)")
    fig.colorbar(im, ax=[ax1, ax2], label="logit(mutant) - logit(reference)", shrink=0.8)
    _save(fig, path)


def _plot_attr(path: Path, name: str, method: str, attr: np.ndarray, hyp: np.ndarray, start: int) -> None:
    """Logo of the observed bases' attributions [4, L] over a heat map of the hypothetical ones."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from bsp_fast.plots import _save

    length = attr.shape[1]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(min(24.0, max(8.0, 0.12 * length)), 4.8), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 1.1]})
    logomaker.Logo(pd.DataFrame(attr.T, columns=list("ACGT"), index=np.arange(start + 1, start + length + 1)), ax=ax1,
                   color_scheme="classic")
    label = {"ig": "integrated gradients", "deepliftshap": "DeepLIFT/SHAP"}.get(method, method)
    ax1.set(ylabel="attribution\n(logit)", title=f"{name}: {label} (positions {start + 1}-{start + length})")
    lim = float(np.abs(hyp).max()) or 1.0
    im = ax2.imshow(hyp, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                    extent=(start + 0.5, start + length + 0.5, 3.5, -0.5))
    ax2.set_xlim(start + 0.5, start + length + 0.5)
    ax2.set_yticks(range(4))
    ax2.set_yticklabels(list("ACGT"))
    ax2.set_xlabel("position (bp)")
    fig.colorbar(im, ax=[ax1, ax2], label="hypothetical attribution", shrink=0.8)
    _save(fig, path)


def build_parser() -> ArgumentParser:
    """The ``bsp-fast explain`` options."""
    p = ArgumentParser(prog=PROG, description="Per-base prediction track and in-silico mutagenesis of sequences.")
    p.add_argument("--checkpoint", required=True, help="bsp_fast checkpoint (final.pt of cv, checkpoint.pt/best.pt of train)")
    s = p.add_mutually_exclusive_group(required=True)
    s.add_argument("--sequence", help="a DNA sequence (A, C, G, T, N, IUPAC)")
    s.add_argument("--fasta", help="FASTA file of sequences")
    p.add_argument("--name", default="sequence", help="name of --sequence in the outputs (default 'sequence')")
    p.add_argument("--max-records", type=int, default=10, help="explain at most this many FASTA records (default 10)")
    p.add_argument("--motif", help="mark every occurrence of this motif (either strand)")
    p.add_argument("--mark", help="mark START-END (1-based, inclusive), e.g. 41-55")
    p.add_argument("--ism-on", choices=["window", "sequence"], default="window",
                   help="mutate the model's window at the track's peak (default) or the whole sequence")
    p.add_argument("--method", choices=["ism", "ig", "deepliftshap"], default="ism",
                   help="attributions: in-silico mutagenesis (default), integrated gradients (captum) or "
                        "DeepLIFT/SHAP (tangermeme); ig and deepliftshap need the interpret extra")
    p.add_argument("--max-ism", type=int, default=2000, help="longest input to mutate or attribute (default 2000 bp)")
    p.add_argument("--out", required=True, help="output directory")
    return p


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "record"


def explain_one(model: torch.nn.Module, config: dict[str, Any], name: str, codes: np.ndarray, out: Path,
                args: Any) -> dict[str, Any]:
    """Track and ISM files of one record in ``out``; returns its summary (see the module docstring)."""
    region, flank = _window_params(config)
    width = region + 2 * flank
    min_len = model.min_length() if hasattr(model, "min_length") else 1
    marks: list[tuple[int, int, str]] = []
    if args.motif:
        marks += motif_positions(codes, args.motif)
    if args.mark:
        mt = re.fullmatch(r"\s*(\d+)\s*[-:]\s*(\d+)\s*", args.mark)
        if not mt or not 1 <= int(mt.group(1)) <= int(mt.group(2)) <= len(codes):
            raise UserError(f"{PROG}: --mark {args.mark!r}: expected START-END, 1-based, inclusive, within 1-{len(codes)}")
        marks.append((int(mt.group(1)) - 1, int(mt.group(2)), "+"))
    logits = per_base_track(model, codes, region, flank)
    prob = _sigmoid(logits)
    in_motif = np.zeros(len(codes), dtype=bool)
    for s, e, _ in marks:
        in_motif[s:e] = True
    from bsp_fast.seqsets import decode

    seq = decode(codes)
    stem = _safe(name)
    with open(out / f"{stem}.track.tsv", "w") as fh:
        fh.write("position\tbase\tlogit\tprobability\tin_motif\n")
        for i in range(len(codes)):
            fh.write(f"{i + 1}\t{seq[i]}\t{logits[i]:.5g}\t{prob[i]:.5g}\t{int(in_motif[i])}\n")
    _plot_track(out / f"{stem}.track.png", name, codes, prob, marks, region, flank)
    # ISM input
    if args.ism_on == "sequence" or len(codes) <= width:
        start, ism_in = 0, codes
        if len(ism_in) < min_len:
            pad = np.full(min_len, 4, dtype=np.uint8)
            pad[(min_len - len(codes)) // 2:(min_len - len(codes)) // 2 + len(codes)] = codes
            start, ism_in = -((min_len - len(codes)) // 2), pad
    else:
        peak = int(np.argmax(logits))
        start = peak - region // 2 - flank
        ism_in = np.full(width, 4, dtype=np.uint8)
        lo, hi = max(0, start), min(len(codes), start + width)
        ism_in[lo - start:hi - start] = codes[lo:hi]
    if len(ism_in) > args.max_ism:
        raise UserError(f"{PROG}: {name}: {len(ism_in)} bp to mutate is more than --max-ism {args.max_ism}")
    from bsp_fast.interpret import attributions as attrib

    method = getattr(args, "method", "ism")
    ism_seq = decode(ism_in)
    ohe = attrib.one_hot_codes(ism_in)  # [1, 4, L]
    extra: dict[str, Any] = {}
    if method == "ism":
        ref, delta = ism_map(model, ism_in)
        with open(out / f"{stem}.ism.tsv", "w") as fh:
            fh.write("position\tref\tA\tC\tG\tT\timportance\n")
            for j in range(len(ism_in)):
                imp = -delta[j].sum() / 3.0 if ism_in[j] < 4 else 0.0
                fh.write(f"{start + j + 1}\t{ism_seq[j]}\t" + "\t".join(f"{v:.5g}" for v in delta[j]) + f"\t{imp:.5g}\n")
        _plot_ism(out / f"{stem}.ism.png", name, ism_in, delta, start)
        imp = attrib.ism_importance(ism_in, delta)
        attr, hyp = (ohe * imp[None, None, :]).astype(np.float32), delta.T[None].astype(np.float32)
    else:
        att = (attrib.integrated_gradients(model, ohe) if method == "ig" else attrib.deep_lift_shap(model, ohe))
        ref, attr, hyp = float(att.output[0]), att.attr, att.hypothetical
        obs = attr[0].sum(axis=0)
        with open(out / f"{stem}.{method}.tsv", "w") as fh:
            fh.write("position\tref\tA\tC\tG\tT\tattribution\n")
            for j in range(len(ism_in)):
                fh.write(f"{start + j + 1}\t{ism_seq[j]}\t" + "\t".join(f"{v:.5g}" for v in hyp[0, :, j])
                         + f"\t{obs[j]:.5g}\n")
        _plot_attr(out / f"{stem}.{method}.png", name, method, attr[0], hyp[0], start)
        extra = {"output": float(att.output[0]), "reference_output": float(att.reference_output[0]),
                 "completeness_delta": float(att.delta[0]), "completeness_relative": float(att.relative_delta()[0])}
    np.savez_compressed(out / f"{stem}.{method}.npz", ohe=ohe, attr=attr, hypothetical=hyp)
    peak = int(np.argmax(prob))
    return {"name": name, "length": int(len(codes)), "max_probability": float(prob.max()), "peak_position": peak + 1,
            "motif_marks": [[s + 1, e, st] for s, e, st in marks], "method": method, "ism_reference_logit": ref,
            "ism_start": start + 1, "ism_length": int(len(ism_in)), **extra,
            "mean_probability_in_motif": float(prob[in_motif].mean()) if in_motif.any() else None,
            "mean_probability_outside": float(prob[~in_motif].mean()) if (~in_motif).any() else None}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from bsp_fast.motifs import load_model
    from bsp_fast.seqsets import encode

    if args.motif and not re.fullmatch(r"[ACGTacgt]+", args.motif):
        raise UserError(f"{PROG}: --motif {args.motif!r}: expected bases A, C, G, T")
    records: list[tuple[str, np.ndarray]] = []
    if args.sequence is not None:
        try:
            codes = encode(args.sequence)
        except ValueError as exc:
            raise UserError(f"{PROG}: --sequence: {exc}") from None
        if not (codes < 4).any():
            raise UserError(f"{PROG}: --sequence has no valid base (expected A, C, G or T)")
        records.append((args.name, codes))
    else:
        from bsp_fast.interpret.scan import read_fasta_records

        if not Path(args.fasta).is_file():
            raise UserError(f"{PROG}: --fasta {args.fasta}: no such file")
        try:  # streamed: only the first --max-records records with a valid base are read
            for name, codes in read_fasta_records(args.fasta):
                if (codes < 4).any():
                    records.append((name, codes))
                if len(records) >= max(1, args.max_records):
                    break
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{PROG}: --fasta {exc}") from None
        if not records:
            raise UserError(f"{PROG}: --fasta {args.fasta}: no sequences with a valid base (A, C, G or T)")
    model, ckpt = load_model(args.checkpoint)
    if args.method == "deepliftshap":
        from bsp_fast.interpret.attributions import deeplift_blocker

        blocker = deeplift_blocker(model)
        if blocker is not None:
            raise UserError(f"{PROG}: --method deepliftshap cannot run through {blocker}; use --method ig "
                            "(integrated gradients)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [explain_one(model, model.config, name, codes, out, args) for name, codes in records]
    (out / "summary.json").write_text(json.dumps({"checkpoint": str(args.checkpoint), "model": model.config,
                                                  "records": results}, indent=1) + "\n")
    for r in results:
        extra = ""
        if "completeness_delta" in r:
            extra += (f"; {args.method}: f(x) {r['output']:.3f}, f(reference) {r['reference_output']:.3f}, "
                      f"completeness delta {r['completeness_delta']:.2g}")
        if r["mean_probability_in_motif"] is not None:
            extra += f"; mean P in motif {r['mean_probability_in_motif']:.3f} vs outside {r['mean_probability_outside']:.3f}"
        print(f"{r['name']}: {r['length']} bp, max P(bound) {r['max_probability']:.3f} at {r['peak_position']}{extra}")
    print(f"wrote {out}/<name>.track.tsv/.png, <name>.{args.method}.tsv/.png/.npz, summary.json")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bsp-fast explain``: exit status 0, or 2 with one line on stderr for a user's mistake (a missing
    ``interpret`` extra included: see :func:`bsp_fast.cli.guard`)."""
    return guard(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
