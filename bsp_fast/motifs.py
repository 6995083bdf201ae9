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
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from bsp_fast.cli import ArgumentParser, UserError, guard

PROG = "bsp-fast motifs"

__all__ = ["LearnedMotif", "conv_motifs", "ism_motifs", "ism_scores", "match_motif", "match_all", "write_jaspar",
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


@torch.no_grad()
def ism_scores(model: nn.Module, codes: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """In-silico mutagenesis of each sequence of ``codes`` [n, L]:

    returns (reference logits [n], delta [n, L, 4]: logit(mutant with base b at position i) minus
    the reference logit; 0 at the reference base; N positions get 0 deltas for all bases).
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, length = codes.shape
    model.eval()
    ref = np.zeros(n)
    delta = np.zeros((n, length, 4))
    for s in range(n):
        seq = codes[s]
        mut = np.repeat(seq[None, :], length * 4, axis=0)
        pos = np.repeat(np.arange(length), 4)
        base = np.tile(np.arange(4), length)
        mut[np.arange(length * 4), pos] = base
        keep = seq[pos] != base
        keep &= seq[pos] < 4
        batch = np.concatenate([seq[None, :], mut[keep]])
        logits = np.concatenate([model(torch.from_numpy(batch[i:i + batch_size])).float().numpy()
                                 for i in range(0, len(batch), batch_size)]).astype(np.float64)
        ref[s] = logits[0]
        d = np.zeros(length * 4)
        d[keep] = logits[1:] - logits[0]
        delta[s] = d.reshape(length, 4)
    return ref, delta


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
# similarity to known motifs
# ------------------------------------------------------------------------------------------------


def _column_pcc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows of a [m, 4] and b [m, 4] (0 where a row is constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)


def match_motif(learned: np.ndarray, known: np.ndarray) -> tuple[float, int, str]:
    """Best (score, offset, strand) of a known PPM [m, 4] against a learned PPM [w, 4] (see module doc)."""
    w, m = len(learned), len(known)
    min_overlap = min(w, max(1, math.ceil(m / 2)))
    best = (-math.inf, 0, "+")
    for strand, kn in (("+", known), ("-", known[::-1, ::-1])):
        for off in range(-(m - min_overlap), w - min_overlap + 1):
            lo, hi = max(0, off), min(w, off + m)
            if hi - lo < min_overlap:
                continue
            score = float(_column_pcc(learned[lo:hi], kn[lo - off:hi - off]).sum() / m)
            if score > best[0] + 1e-12:
                best = (score, off, strand)
    return best


def match_all(motifs: list[LearnedMotif], known: Sequence[Any], top: int | None = None) -> list[dict[str, Any]]:
    """Rows of matches.tsv: motifs in the given (importance) order, each with its matches best first."""
    rows = []
    for mot in motifs:
        if mot.n_sites == 0:
            continue
        ppm = mot.probabilities()
        res = []
        for k in known:
            score, off, strand = match_motif(ppm, k.probabilities(pseudocount=0.0))
            res.append((score, k.id, k.name, off, strand))
        res.sort(key=lambda r: (-r[0], r[1]))
        for rank, (score, kid, kname, off, strand) in enumerate(res[:top] if top else res, start=1):
            rows.append({"motif": mot.id, "rank": rank, "known_id": kid, "known_name": kname, "score": score,
                         "offset": off, "strand": strand, "filter": mot.name, "importance": mot.importance})
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
    p = ArgumentParser(prog=PROG, description="First-layer kernels (or ISM seqlets) of a trained model as motifs, "
                       "logos and matches to known motifs.")
    p.add_argument("--checkpoint", required=True, help="bsp_fast checkpoint (final.pt of cv, checkpoint.pt/best.pt of train)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--fasta", help="sequence set to scan (FASTA; default: the built-in data set's windows)")
    s.add_argument("--builtin", action="store_true", help="bound and unbound windows of the built-in data set (default)")
    p.add_argument("--max-seqs", type=int, default=4000, help="at most this many sequences (default 4000)")
    p.add_argument("--length", type=int, default=None,
                   help="centre-trim / N-pad sequences to this length (default: the model's window)")
    p.add_argument("--builtin-cache", default=None, help="cache root of the built-in data set")
    p.add_argument("--builtin-scale", type=float, default=None, help="built-in genome scale (default 1)")
    p.add_argument("--known", help="known motifs to match (JASPAR or MEME file)")
    p.add_argument("--top-matches", type=int, default=0, help="matches per motif in matches.tsv (default all)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="collect subsequences activating a kernel above this fraction of its maximum (default 0.5)")
    p.add_argument("--logos", type=int, default=16, help="logo PNGs of the N most important motifs (default 16)")
    p.add_argument("--ism-seqs", type=int, default=100, help="recurrent models: sequences for ISM seqlets (default 100)")
    p.add_argument("--seqlet-width", type=int, default=12, help="recurrent models: seqlet width (default 12)")
    p.add_argument("--n-motifs", type=int, default=4, help="recurrent models: seqlet clusters (default 4)")
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


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.max_seqs < 1 or args.logos < 0 or not 0 < args.threshold < 1:
        raise UserError(f"{PROG}: --max-seqs must be >= 1, --logos >= 0 and --threshold in (0, 1)")
    known = None
    if args.known:
        from bsp_fast.motif_io import read_motifs

        try:
            known = read_motifs(args.known)
        except FileNotFoundError:
            raise UserError(f"{PROG}: --known {args.known}: no such motif file (expected JASPAR or MEME)") from None
        except (ValueError, OSError) as exc:
            raise UserError(f"{PROG}: --known {exc} (expected a JASPAR or MEME motif file)") from None
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
    _write_meme(motifs, out / "motifs.meme")
    write_jaspar(motifs, out / "motifs.jaspar")
    with open(out / "motifs.tsv", "w") as fh:
        fh.write("motif\tfilter\timportance\tsites\tconsensus\tinformation_bits\n")
        for m in motifs:
            ic = information_content(m.probabilities()).sum() if m.n_sites else 0.0
            fh.write(f"{m.id}\t{m.name}\t{m.importance:.6g}\t{m.n_sites}\t{m.consensus()}\t{ic:.2f}\n")
    if args.logos:
        write_logos(motifs, out, args.logos)
    summary: dict[str, Any] = {"method": method, "sequences": int(len(codes)), "length": int(codes.shape[1]),
                               "motifs": len(motifs), "top": [m.id + " " + m.name + " " + m.consensus() for m in motifs[:5]]}
    if known is not None:
        rows = match_all(motifs, known, args.top_matches or None)
        with open(out / "matches.tsv", "w") as fh:
            fh.write("motif\trank\tknown_id\tknown_name\tscore\toffset\tstrand\tfilter\timportance\n")
            for r in rows:
                fh.write(f"{r['motif']}\t{r['rank']}\t{r['known_id']}\t{r['known_name']}\t{r['score']:.4f}\t"
                         f"{r['offset']}\t{r['strand']}\t{r['filter']}\t{r['importance']:.6g}\n")
        best = [r for r in rows if r["rank"] == 1][:5]
        summary["best_matches"] = [f"{r['motif']} ({r['filter']}): {r['known_id']} {r['known_name']} "
                                   f"score {r['score']:.3f} offset {r['offset']} strand {r['strand']}" for r in best]
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(motifs)} motifs from {method} over {len(codes)} sequences of {codes.shape[1]} bp")
    for m in motifs[:5]:
        print(f"  {m.id} ({m.name}): importance {m.importance:.4g}, {m.n_sites} sites, consensus {m.consensus()}")
    for line in summary.get("best_matches", []):
        print(f"  best match {line}")
    print(f"wrote {out}/motifs.meme, motifs.jaspar, motifs.tsv" + (", logos/" if args.logos else "")
          + (", matches.tsv" if known is not None else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bsp-fast motifs``: exit status 0, or 2 with one line on stderr for a user's mistake."""
    return guard(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
