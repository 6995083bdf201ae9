"""Motifs a trained model learned (``python -m bsp_fast.motifs``).

    python -m bsp_fast.motifs --checkpoint final.pt [--fasta SEQS.fa | --builtin] [--known motifs.jaspar] --out DIR

**Models with a first convolution** (``cnn``, ``hybrid``; the DanQ / Basset method): every kernel
is run over the sequence set (one-hot, no padding, its bias and ReLU as in the model); every
subsequence whose activation exceeds half of that kernel's largest activation over the whole set
is collected, and the base counts of the collected subsequences form the kernel's position
frequency matrix (kernel width; N bases are not counted). A kernel's **importance** is Basset's
influence: its output is replaced by its mean over all sequences and positions, and the mean squared
change of the model's logit over the set is recorded; motifs are numbered by importance
(``motif1`` = most important; its kernel index is the name).

**Models without convolutions** (``bigru``, ``bigru-small``): in-silico-mutagenesis seqlets. For the
``--ism-seqs`` highest-scoring sequences, each base's importance is ``logit(sequence) -
mean(logit of its three mutants)``; the ``--seqlet-width`` window with the largest summed importance
is a seqlet; seqlets are grouped into ``--n-motifs`` clusters (k-means on their one-hot encoding)
and each cluster's base counts form a motif, its importance the summed seqlet importance.

**Matching** (``--known FILE``, JASPAR or MEME): each learned motif against each known motif, over
every offset with at least half of the known motif inside the learned one, on both strands (the
known motif reverse-complemented for ``-``). Similarity: the sum over aligned columns of the Pearson
correlation between the learned and the known column's base probabilities, divided by the known
motif's width (columns of the known motif that fall outside the learned one count 0), so 1 is a
perfect match over the whole known motif and longer known motifs are not favoured. ``offset`` is
the learned-motif column where the known motif's first column sits (0-based; negative = it starts
before the learned motif).

Outputs in ``--out``: ``motifs.meme`` and ``motifs.jaspar`` (counts), ``motifs.tsv`` (motif,
filter, importance, sites, consensus, information content), ``logos/motifN.png`` (information
content logos, logomaker) for the ``--logos`` most important, ``top_motifs.png`` (the top 8), and
with ``--known`` ``matches.tsv`` (columns ``motif rank known_id known_name score offset strand``;
motifs in importance order, their matches best first, ``rank`` 1 = best match).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from bsp_fast.cli import ArgumentParser, UserError, guard

PROG = "bsp-fast motifs"

__all__ = ["LearnedMotif", "conv_motifs", "ism_motifs", "ism_scores", "match_all", "write_jaspar",
           "information_content", "builtin_windows", "load_model", "main"]


@dataclass
class LearnedMotif:
    """A motif a model learned: base counts, importance (higher = more influence on the logit), sites."""

    id: str
    name: str
    counts: np.ndarray  # [width, 4] A C G T
    importance: float
    n_sites: int
    source: int = -1  # kernel index, or cluster index

    def probabilities(self, pseudocount: float = 0.25) -> np.ndarray:
        """[width, 4] base probabilities of ``counts + pseudocount``."""
        c = self.counts + pseudocount
        return c / c.sum(axis=1, keepdims=True)

    def consensus(self) -> str:
        """The most frequent base per column (N for a column without counts)."""
        return "".join("ACGT"[i] if self.counts[j].sum() > 0 else "N" for j, i in enumerate(self.counts.argmax(axis=1)))


def information_content(ppm: np.ndarray) -> np.ndarray:
    """Bits per column of a [width, 4] probability matrix (uniform background)."""
    p = np.clip(ppm, 1e-12, 1.0)
    return 2.0 + (p * np.log2(p)).sum(axis=1)


# ------------------------------------------------------------------------------------------------
# models and sequence sets
# ------------------------------------------------------------------------------------------------


def load_model(path: str | Path, flag: str = "--checkpoint") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint dict) of a bsp_fast checkpoint; UserError naming ``flag`` and the file."""
    from bsp_fast.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint

    try:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt, path)
    except CheckpointError as exc:
        raise UserError(f"{flag} {exc}") from None
    model.eval()
    return model, ckpt


def builtin_windows(length: int, n_pos: int = 2000, n_neg: int = 2000, seed: int = 0, cache_dir: str | None = None,
                    chroms: Sequence[str] | None = None, negatives: str = "random",
                    **builtin_options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``length`` bp centred on bound (B) and unbound (U) bins of the built-in data set.

    Returns (codes uint8 [n, length], labels 0/1 [n]); at most ``n_pos`` bound and ``n_neg`` unbound
    bins, drawn without replacement with ``seed``; ``chroms`` limits the chromosomes (default all).
    ``negatives``: ``random`` (any U bin) or ``flank`` (U bins 300-1000 bp from a B bin: the same
    GC-rich neighbourhoods, so a model has to learn the motif rather than the base composition).
    """
    from bsp_fast.data.genome import Genome
    from bsp_fast.data.synthetic import BIN_SIZE, ensure_builtin, read_oracle

    b = ensure_builtin(cache_dir, **builtin_options)
    table = read_oracle(b.oracle)
    genome = Genome(b.fasta, cache_dir=(Path(cache_dir) / "genome-cache") if cache_dir else None)
    rng = np.random.default_rng(seed)
    picks = {1: [], 0: []}
    for c, (starts, labels, _) in table.items():
        if chroms is not None and c not in chroms:
            continue
        bound = np.sort(starts[labels == 1])
        for lab in (1, 0):
            s = starts[labels == lab]
            if lab == 0 and negatives == "flank":
                if len(bound) == 0:
                    continue
                i = np.clip(np.searchsorted(bound, s), 1, len(bound)) - 1
                j = np.clip(i + 1, 0, len(bound) - 1)
                dist = np.minimum(np.abs(s - bound[i]), np.abs(s - bound[j]))
                s = s[(dist >= 300) & (dist <= 1000)]
            picks[lab].append((np.full(len(s), c, dtype=object), s))
    out_codes, out_labels = [], []
    for lab, n in ((1, n_pos), (0, n_neg)):
        if not picks[lab]:
            continue
        names = np.concatenate([p[0] for p in picks[lab]])
        starts = np.concatenate([p[1] for p in picks[lab]])
        sel = rng.choice(len(starts), size=min(n, len(starts)), replace=False)
        sel.sort()
        offset = (BIN_SIZE - length) // 2
        out_codes.append(genome.codes(list(names[sel]), starts[sel] + offset, length))
        out_labels.append(np.full(len(sel), lab, dtype=np.int64))
    return np.concatenate(out_codes), np.concatenate(out_labels)


def _one_hot(codes: np.ndarray) -> torch.Tensor:
    from bsp_fast.models import one_hot

    return one_hot(torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8))).transpose(1, 2)  # [B, 4, L]


# ------------------------------------------------------------------------------------------------
# kernels -> motifs
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def kernel_activations(conv: nn.Conv1d, codes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """ReLU(conv(one-hot)) without padding: float32 [n, filters, L - k + 1]."""
    w, b = conv.weight.detach().float().cpu(), conv.bias.detach().float().cpu() if conv.bias is not None else None
    outs = []
    for i in range(0, len(codes), batch_size):
        outs.append(torch.relu(nn.functional.conv1d(_one_hot(codes[i:i + batch_size]), w, b)).numpy())
    return np.concatenate(outs)


@torch.no_grad()
def kernel_influence(model: nn.Module, codes: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Basset influence of each first-layer kernel: mean squared logit change when its output is
    replaced by its mean activation (over the set)."""
    conv = model.first_conv
    x = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8))
    # mean post-ReLU activation of each channel over the set (as the model computes it, padding included)
    sums, count = torch.zeros(conv.out_channels), 0
    captured: dict[str, torch.Tensor] = {}
    h = conv.register_forward_hook(lambda m, i, o: captured.__setitem__("o", o))
    base = []
    try:
        for i in range(0, len(x), batch_size):
            base.append(model(x[i:i + batch_size]).float())
            o = torch.relu(captured["o"])
            sums += o.sum(dim=(0, 2))
            count += o.shape[0] * o.shape[2]
    finally:
        h.remove()
    base_t = torch.cat(base)
    means = sums / max(count, 1)
    influence = np.zeros(conv.out_channels)
    for f in range(conv.out_channels):
        def hook(m, i, o, f=f):
            o = o.clone()
            o[:, f, :] = means[f]  # >= 0, so the model's ReLU passes it unchanged
            return o
        h = conv.register_forward_hook(hook)
        try:
            new = torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])
        finally:
            h.remove()
        influence[f] = float(((new - base_t) ** 2).mean())
    return influence


def conv_motifs(model: nn.Module, codes: np.ndarray, threshold: float = 0.5) -> list[LearnedMotif]:
    """First-layer kernels -> PFMs of their maximally activating subsequences, ordered by influence."""
    conv = model.first_conv
    if conv is None:
        raise ValueError("model has no convolution")
    k = conv.kernel_size[0]
    if codes.shape[1] < k:
        raise ValueError(f"sequences of {codes.shape[1]} bp are shorter than the kernels ({k} bp)")
    act = kernel_activations(conv, codes)  # [n, F, W]
    influence = kernel_influence(model, codes)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k, axis=1)  # [n, W, k]
    motifs = []
    for f in range(act.shape[1]):
        a = act[:, f, :]
        top = float(a.max())
        counts = np.zeros((k, 4))
        n_sites = 0
        if top > 0:
            seq_i, pos_i = np.nonzero(a > threshold * top)
            sites = windows[seq_i, pos_i]  # [m, k]
            n_sites = len(sites)
            for base in range(4):
                counts[:, base] = (sites == base).sum(axis=0)
        motifs.append(LearnedMotif(id="", name=f"filter{f}", counts=counts, importance=float(influence[f]),
                                   n_sites=int(n_sites), source=f))
    motifs.sort(key=lambda m: (-m.importance, m.source))
    for r, m in enumerate(motifs, start=1):
        m.id = f"motif{r}"
    return motifs


# ------------------------------------------------------------------------------------------------
# ISM seqlets (models without convolutions)
# ------------------------------------------------------------------------------------------------


def ism_scores(model: nn.Module, codes: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """In-silico mutagenesis (:func:`bsp_fast.interpret.attributions.ism`): (reference logits [n], delta [n, L, 4])."""
    from bsp_fast.interpret.attributions import ism

    return ism(model, codes, batch_size)


def ism_motifs(model: nn.Module, codes: np.ndarray, n_seqs: int = 100, width: int = 12, n_motifs: int = 4,
               seed: int = 0) -> list[LearnedMotif]:
    """ISM seqlets of the ``n_seqs`` top-scoring sequences, clustered into ``n_motifs`` motifs."""
    from sklearn.cluster import KMeans

    from bsp_fast.cv import predict_logits

    length = codes.shape[1]
    width = min(width, length)
    scores = predict_logits(model, codes)
    top = np.argsort(-scores, kind="stable")[:n_seqs]
    _, delta = ism_scores(model, codes[top])
    valid = codes[top] < 4
    imp = np.where(valid, -delta.sum(axis=2) / 3.0, 0.0)  # logit(ref) - mean logit(mutants)
    win = np.lib.stride_tricks.sliding_window_view(imp, width, axis=1).sum(axis=2)  # [n, L - w + 1]
    best = win.argmax(axis=1)
    seqlets = np.stack([codes[top][i, b:b + width] for i, b in enumerate(best)])
    weights = win[np.arange(len(best)), best]
    onehot = np.zeros((len(seqlets), width, 4))
    for b in range(4):
        onehot[:, :, b] = seqlets == b
    k = max(1, min(n_motifs, len(seqlets)))
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(onehot.reshape(len(seqlets), -1)) \
        if k > 1 else np.zeros(len(seqlets), dtype=int)
    motifs = []
    for c in range(k):
        members = labels == c
        if not members.any():
            continue
        motifs.append(LearnedMotif(id="", name=f"seqlets{c}", counts=onehot[members].sum(axis=0),
                                   importance=float(np.clip(weights[members], 0, None).sum()),
                                   n_sites=int(members.sum()), source=c))
    motifs.sort(key=lambda m: (-m.importance, m.source))
    for r, m in enumerate(motifs, start=1):
        m.id = f"motif{r}"
    return motifs


# ------------------------------------------------------------------------------------------------
# similarity to known motifs (TomTom)
# ------------------------------------------------------------------------------------------------


def match_all(motifs: list[LearnedMotif], known: Sequence[Any], top: int | None = None) -> list[dict[str, Any]]:
    """Rows of matches.tsv: motifs in the given (importance) order, each with its TomTom matches best
    first (:func:`bsp_fast.interpret.matching.tomtom_matches`: rank by p-value; ``score`` is TomTom's
    statistic, ``p_value``, ``q_value``, ``offset``, ``strand``). Needs the ``interpret`` extra."""
    from bsp_fast.interpret.matching import tomtom_matches

    shown = [m for m in motifs if m.n_sites > 0]
    rows = []
    for mot, matches in zip(shown, tomtom_matches([(m.id, m.probabilities()) for m in shown], known, top)):
        for r in matches:
            rows.append({"motif": mot.id, **r, "filter": mot.name, "importance": mot.importance})
    return rows


# ------------------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------------------


def write_jaspar(motifs: Sequence[LearnedMotif], path: str | Path) -> Path:
    """JASPAR format (``>ID NAME`` + rows ``A [ counts ]``) of motifs with sites."""
    lines = []
    for m in motifs:
        if m.n_sites == 0:
            continue
        lines.append(f">{m.id}\t{m.name}")
        for b, letter in enumerate("ACGT"):
            lines.append(f"{letter}  [ " + " ".join(f"{int(round(v))}" for v in m.counts[:, b]) + " ]")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _write_meme(motifs: Sequence[LearnedMotif], path: Path) -> None:
    from bsp_fast.motif_io import Motif, write_meme

    write_meme([Motif(m.id, m.name, m.probabilities(pseudocount=0.0) if m.counts.sum(axis=1).min() > 0 else m.probabilities(),
                      "probabilities", float(m.n_sites)) for m in motifs if m.n_sites > 0], path)


def _logo(ax, ppm: np.ndarray, title: str) -> None:
    import logomaker
    import pandas as pd

    ic = information_content(ppm)
    df = pd.DataFrame(ppm * ic[:, None], columns=list("ACGT"))
    logomaker.Logo(df, ax=ax, color_scheme="classic")
    ax.set_ylim(0, 2)
    ax.set_ylabel("bits")
    ax.set_title(title, fontsize=9)


def write_logos(motifs: Sequence[LearnedMotif], out: Path, n: int) -> list[Path]:
    """``logos/<id>.png`` for the ``n`` most important motifs with sites, and ``top_motifs.png`` (top 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bsp_fast.plots import _save

    paths = []
    shown = [m for m in motifs if m.n_sites > 0]
    (out / "logos").mkdir(parents=True, exist_ok=True)
    for m in shown[:n]:
        fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * len(m.counts)), 2.0))
        _logo(ax, m.probabilities(), f"{m.id} ({m.name}, importance {m.importance:.3g}, {m.n_sites} sites)")
        paths.append(_save(fig, out / "logos" / f"{m.id}.png"))
    top = shown[:8]
    if top:
        fig, axes = plt.subplots(len(top), 1, figsize=(max(4.0, 0.35 * len(top[0].counts)), 1.7 * len(top)), squeeze=False)
        for ax, m in zip(axes[:, 0], top):
            _logo(ax, m.probabilities(), f"{m.id} ({m.name}, importance {m.importance:.3g})")
        fig.tight_layout()
        paths.append(_save(fig, out / "top_motifs.png"))
    return paths


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def build_parser() -> ArgumentParser:
    """The ``bsp-fast motifs`` options."""
    p = ArgumentParser(prog=PROG, description="First-layer kernels (or ISM seqlets, or TF-MoDISco patterns) of a "
                       "trained model as motifs, logos, TomTom matches to known motifs and FIMO hits.")
    p.add_argument("--checkpoint", required=True, help="bsp_fast checkpoint (final.pt of cv, checkpoint.pt/best.pt of train)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--fasta", help="sequence set to scan (FASTA; default: the built-in data set's windows)")
    s.add_argument("--builtin", action="store_true", help="bound and unbound windows of the built-in data set (default)")
    p.add_argument("--max-seqs", type=int, default=4000, help="at most this many sequences (default 4000)")
    p.add_argument("--length", type=int, default=None,
                   help="centre-trim / N-pad sequences to this length (default: the model's window)")
    p.add_argument("--builtin-cache", default=None, help="cache root of the built-in data set")
    p.add_argument("--builtin-scale", type=float, default=None, help="built-in genome scale (default 1)")
    p.add_argument("--known", help="known motifs to match with TomTom (JASPAR or MEME file; needs the interpret extra)")
    p.add_argument("--top-matches", type=int, default=0, help="matches per motif in matches.tsv (default all)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="collect subsequences activating a kernel above this fraction of its maximum (default 0.5)")
    p.add_argument("--logos", type=int, default=16, help="logo PNGs of the N most important motifs (default 16)")
    p.add_argument("--ism-seqs", type=int, default=100, help="recurrent models: sequences for ISM seqlets (default 100)")
    p.add_argument("--seqlet-width", type=int, default=12, help="recurrent models: seqlet width (default 12)")
    p.add_argument("--n-motifs", type=int, default=4, help="recurrent models: seqlet clusters (default 4)")
    p.add_argument("--scan", metavar="FASTA", help="FIMO hits of the learned motifs (or of --known with --scan-known) "
                   "in these sequences -> hits.tsv (needs the interpret extra)")
    p.add_argument("--scan-known", action="store_true", help="--scan with the --known motifs instead of the learned ones")
    p.add_argument("--scan-threshold", type=float, default=1e-4, help="--scan: report hits with p-value below this (default 1e-4)")
    p.add_argument("--scan-motifs", type=int, default=8, help="--scan: the N most important learned motifs (default 8)")
    p.add_argument("--modisco", action="store_true", help="TF-MoDISco patterns of the attributions of the top-scoring "
                   "windows -> modisco/ (needs the interpret extra)")
    p.add_argument("--modisco-seqs", type=int, default=500, help="--modisco: the N top-scoring windows (default 500)")
    p.add_argument("--attr-method", choices=["auto", "ig", "deepliftshap"], default="auto",
                   help="--modisco attributions: deepliftshap where the model allows it, else ig (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    return p


def _sequences(args, model, ckpt) -> np.ndarray:
    from bsp_fast.models import seq_len
    from bsp_fast.seqsets import SeqSetError, read_fasta_set, to_codes

    length = args.length or int(ckpt.get("length") or seq_len(model.config))
    if args.fasta:
        try:
            ss = read_fasta_set(args.fasta, "--fasta")
        except SeqSetError as exc:
            raise UserError(f"{PROG}: {exc}") from None
        codes = to_codes(ss.seqs[:args.max_seqs], length)
    else:
        opts = {} if args.builtin_scale is None else {"scale": args.builtin_scale}
        half = max(1, args.max_seqs // 2)
        codes, _ = builtin_windows(length, half, half, seed=args.seed, cache_dir=args.builtin_cache, **opts)
    return codes


def read_known(path: str, flag: str = "--known") -> list[Any]:
    """Motifs of a JASPAR or MEME file; UserError (one line naming the file) when it is not one."""
    from bsp_fast.motif_io import read_motifs

    try:
        return read_motifs(path)
    except FileNotFoundError:
        raise UserError(f"{PROG}: {flag} {path}: no such motif file (expected JASPAR or MEME)") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"{PROG}: {flag} {exc} (expected a JASPAR or MEME motif file)") from None


def _write_matches(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        fh.write("motif\trank\tknown_id\tknown_name\tscore\toffset\tstrand\tp_value\tq_value\toverlap\tfilter\timportance\n")
        for r in rows:
            fh.write(f"{r['motif']}\t{r['rank']}\t{r['known_id']}\t{r['known_name']}\t{r['score']:.4f}\t{r['offset']}\t"
                     f"{r['strand']}\t{r['p_value']:.4g}\t{r['q_value']:.4g}\t{r['overlap']}\t{r['filter']}\t"
                     f"{r['importance']:.6g}\n")


def _best_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['motif']} ({r['filter']}): {r['known_id']} {r['known_name']} p {r['p_value']:.3g} q {r['q_value']:.3g} "
            f"score {r['score']:.1f} offset {r['offset']} strand {r['strand']}" for r in rows if r["rank"] == 1][:5]


def _write_set(motifs: list[LearnedMotif], out: Path, n_logos: int, known: list[Any] | None, top: int | None) -> list[dict]:
    """motifs.meme, motifs.jaspar, motifs.tsv, logos, and matches.tsv (with known) of one motif set in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _write_meme(motifs, out / "motifs.meme")
    write_jaspar(motifs, out / "motifs.jaspar")
    with open(out / "motifs.tsv", "w") as fh:
        fh.write("motif\tfilter\timportance\tsites\tconsensus\tinformation_bits\n")
        for m in motifs:
            ic = information_content(m.probabilities()).sum() if m.n_sites else 0.0
            fh.write(f"{m.id}\t{m.name}\t{m.importance:.6g}\t{m.n_sites}\t{m.consensus()}\t{ic:.2f}\n")
    if n_logos:
        write_logos(motifs, out, n_logos)
    rows: list[dict] = []
    if known is not None:
        rows = match_all(motifs, known, top)
        _write_matches(out / "matches.tsv", rows)
    return rows


def modisco_motifs(model: nn.Module, codes: np.ndarray, n_seqs: int = 500, method: str = "auto", seed: int = 0,
                   n_leiden: int = 8) -> tuple[list[LearnedMotif], dict[str, Any]]:
    """TF-MoDISco motifs of the attributions of the ``n_seqs`` top-scoring windows of ``codes``.

    Attributions: DeepLIFT/SHAP where the model allows it (``method="auto"``), else integrated
    gradients. Returns (motifs: positive patterns first, trimmed to their contributing columns,
    importance = summed contribution, sites = seqlets; the attributions and a summary dict).
    """
    from bsp_fast.cv import predict_logits
    from bsp_fast.interpret import attributions as attrib
    from bsp_fast.interpret.modisco import modisco_patterns, trim

    scores = predict_logits(model, codes)
    top = np.sort(np.argsort(-scores, kind="stable")[:n_seqs])
    if method == "auto":
        method = "deepliftshap" if attrib.deeplift_blocker(model) is None else "ig"
    X = attrib.one_hot_codes(codes[top])
    if method == "deepliftshap":
        att = attrib.deep_lift_shap(model, X, seed=seed, progress_desc="DeepLIFT/SHAP")
    else:
        att = attrib.integrated_gradients(model, X, progress_desc="integrated gradients")
    patterns = modisco_patterns(att.ohe, att.hypothetical, n_leiden=n_leiden)
    motifs = []
    for i, p in enumerate(patterns):
        ppm, contrib = trim(p.ppm, p.contrib)
        motifs.append(LearnedMotif(id=f"motif{i + 1}", name=p.id, counts=ppm * p.n_seqlets,
                                   importance=float(contrib.sum()), n_sites=p.n_seqlets, source=i))
    rel = att.relative_delta()
    info = {"attributions": method, "windows": int(len(top)), "min_window_logit": float(scores[top].min()),
            "patterns": [f"{m.id} {m.name} {m.n_sites} seqlets {m.consensus()}" for m in motifs],
            "completeness_delta_median_abs": float(np.median(np.abs(att.delta))),
            "completeness_delta_relative_median": float(np.median(rel[np.isfinite(rel)])) if np.isfinite(rel).any() else None}
    return motifs, {"info": info, "attributions": att}


def _scan(args, motifs: list[LearnedMotif], known: list[Any] | None, out: Path) -> dict[str, Any]:
    from bsp_fast.interpret.scan import HIT_COLUMNS, fimo_scan, read_fasta_records

    if args.scan_known:
        scanned = [(k.id, k.probabilities()) for k in known]
    else:
        scanned = [(m.id, m.probabilities()) for m in motifs if m.n_sites > 0][:args.scan_motifs]
    counted = []

    def records():
        for rec in read_fasta_records(args.scan):
            counted.append(len(rec[1]))
            yield rec

    try:
        hits = fimo_scan(scanned, records(), threshold=args.scan_threshold)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{PROG}: --scan {exc}") from None
    with open(out / "hits.tsv", "w") as fh:
        fh.write("\t".join(HIT_COLUMNS) + "\n")
        for h in hits:
            fh.write(f"{h['seq']}\t{h['motif']}\t{h['start']}\t{h['end']}\t{h['strand']}\t{h['score']:.4f}\t"
                     f"{h['p_value']:.4g}\t{h['q_value']:.4g}\n")
    return {"sequences": len(counted), "bases": int(sum(counted)), "motifs": len(scanned),
            "threshold": args.scan_threshold, "hits": len(hits)}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.max_seqs < 1 or args.logos < 0 or not 0 < args.threshold < 1:
        raise UserError(f"{PROG}: --max-seqs must be >= 1, --logos >= 0 and --threshold in (0, 1)")
    if not 0 < args.scan_threshold <= 1 or args.modisco_seqs < 1 or args.scan_motifs < 1:
        raise UserError(f"{PROG}: --scan-threshold must be in (0, 1], --modisco-seqs and --scan-motifs >= 1")
    if args.scan_known and not args.known:
        raise UserError(f"{PROG}: --scan-known scans the --known motifs: give --known")
    if args.scan_known and not args.scan:
        raise UserError(f"{PROG}: --scan-known needs --scan FASTA")
    known = read_known(args.known) if args.known else None
    if args.scan:
        from bsp_fast.interpret import require
        from bsp_fast.interpret.scan import read_fasta_records

        require("memelite", "--scan (FIMO)")
        if not Path(args.scan).is_file():
            raise UserError(f"{PROG}: --scan {args.scan}: no such file")
        try:
            next(iter(read_fasta_records(args.scan)))  # the file is FASTA: fail now, not after the motifs
        except (ValueError, OSError, UnicodeDecodeError, StopIteration) as exc:
            raise UserError(f"{PROG}: --scan {exc or args.scan + ': no FASTA records'}") from None
    if args.known or args.modisco:
        from bsp_fast.interpret import require

        if args.known:
            require("memelite", "matching motifs with TomTom (--known)")
        if args.modisco:
            require("modiscolite", "--modisco (TF-MoDISco)")
            require("captum", "--modisco attributions")
    model, ckpt = load_model(args.checkpoint)
    codes = _sequences(args, model, ckpt)
    min_len = model.min_length() if hasattr(model, "min_length") else 1
    if codes.shape[1] < min_len:
        raise UserError(f"{PROG}: sequences of {codes.shape[1]} bp are shorter than the model needs ({min_len} bp); use --length")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if model.first_conv is not None:
        method = "kernels (maximally activating subsequences, Basset influence)"
        motifs = conv_motifs(model, codes, args.threshold)
    else:
        method = "ISM seqlets"
        motifs = ism_motifs(model, codes, n_seqs=min(args.ism_seqs, len(codes)), width=args.seqlet_width,
                            n_motifs=args.n_motifs, seed=args.seed)
    top = args.top_matches or None
    rows = _write_set(motifs, out, args.logos, known, top)
    summary: dict[str, Any] = {"method": method, "sequences": int(len(codes)), "length": int(codes.shape[1]),
                               "motifs": len(motifs), "top": [m.id + " " + m.name + " " + m.consensus() for m in motifs[:5]]}
    if known is not None:
        summary["best_matches"] = _best_lines(rows)
    if args.modisco:
        from bsp_fast.interpret.attributions import UnsupportedModel
        from bsp_fast.interpret.modisco import save_npz

        try:
            mm, res = modisco_motifs(model, codes, n_seqs=min(args.modisco_seqs, len(codes)), method=args.attr_method,
                                     seed=args.seed)
        except (UnsupportedModel, ValueError) as exc:
            raise UserError(f"{PROG}: --modisco: {exc}") from None
        mdir = out / "modisco"
        mrows = _write_set(mm, mdir, args.logos, known, top)
        att = res["attributions"]
        save_npz(mdir / "ohe.npz", mdir / "attr.npz", att.ohe, att.hypothetical)
        summary["modisco"] = res["info"]
        if known is not None:
            summary["modisco"]["best_matches"] = _best_lines(mrows)
    if args.scan:
        summary["scan"] = _scan(args, motifs, known, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(motifs)} motifs from {method} over {len(codes)} sequences of {codes.shape[1]} bp")
    for m in motifs[:5]:
        print(f"  {m.id} ({m.name}): importance {m.importance:.4g}, {m.n_sites} sites, consensus {m.consensus()}")
    for line in summary.get("best_matches", []):
        print(f"  best match {line}")
    if "modisco" in summary:
        print(f"TF-MoDISco ({summary['modisco']['attributions']} attributions of {summary['modisco']['windows']} windows): "
              f"{len(summary['modisco']['patterns'])} patterns")
        for line in summary["modisco"]["patterns"][:3] + summary["modisco"].get("best_matches", [])[:3]:
            print(f"  {line}")
    if "scan" in summary:
        print(f"FIMO: {summary['scan']['hits']} hits (p < {args.scan_threshold:g}) of {summary['scan']['motifs']} motifs "
              f"in {summary['scan']['sequences']} sequences")
    print(f"wrote {out}/motifs.meme, motifs.jaspar, motifs.tsv" + (", logos/" if args.logos else "")
          + (", matches.tsv" if known is not None else "") + (", modisco/" if args.modisco else "")
          + (", hits.tsv" if args.scan else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bsp-fast motifs``: exit status 0, or 2 with one line on stderr for a user's mistake (a missing
    ``interpret`` extra included: see :func:`bsp_fast.cli.guard`)."""
    return guard(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
