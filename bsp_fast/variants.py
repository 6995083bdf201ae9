"""``python -m bsp_fast.variants``: the predicted effect of VCF/BCF variants on binding (also ``bsp-fast variants``).

::

    python -m bsp_fast.variants --checkpoint runs/x/best.pt --genome hg38.fa --vcf variants.vcf.gz \\
        --out effects.tsv.gz [--vcf-out annotated.vcf.gz]

Each ALT allele of each record (multi-allelic records give one row per ALT) is scored with the
model's window (the checkpoint's input length, e.g. 400 bp) centred on the variant, once with the
REF allele and once with the ALT allele applied (:func:`allele_windows`): the allele is centred and
the window keeps its length, so an insertion trims and a deletion extends the window evenly at both
ends. SNVs, MNVs and indels up to ``--max-indel`` bp (default 50) are scored; both strands are
averaged unless ``--no-rc``. REF windows are scored once per distinct window (multi-allelic records
share theirs); for the ``hybrid`` models an SNV's / MNV's ALT window reuses its REF window's
convolution (only the columns within a kernel of the change are recomputed).

Output (tab-separated, one header line, gzip when the name ends in ``.gz``)::

    chrom pos id ref alt ref_prob alt_prob logit_diff log2_odds_ratio flag

``pos`` is the VCF's 1-based POS, ``logit_diff = logit(alt_prob) - logit(ref_prob)`` (the model's
log-odds, natural log; computed from the logits, not the rounded probabilities) and
``log2_odds_ratio = logit_diff / ln 2``. ``flag`` is empty for a scored row, else why the row was not
scored (its numeric columns are ``NA``):

- ``contig_missing``: the chromosome is not in the genome (after trying aliases, below);
- ``symbolic``: a symbolic or missing ALT (``<DEL>``, ``<*>``, ``*``, breakends, ``.``);
- ``n_in_allele``: REF or ALT holds N or another non-ACGT letter;
- ``too_long``: the REF and ALT lengths differ by more than ``--max-indel``, or an allele is longer
  than ``--max-indel + 1`` bases;
- ``ref_mismatch``: REF differs from the genome at POS (case-insensitive).

Chromosome names: a VCF contig missing from the genome is looked up with the other naming
convention (``chr1`` <-> ``1``, ``chrM`` <-> ``MT`` / ``M``); the output keeps the VCF's names. A VCF
none of whose records' contigs is in the genome is an error naming the genome's sequences. A POS
past the chromosome's end is an error naming the record. An empty VCF (header only) gives an output
with only the header line and a note on stderr (exit 0). A summary line on stderr counts the rows
per flag.

``--vcf-out FILE`` (``.vcf``, ``.vcf.gz`` or ``.bcf``) writes the input records with the INFO fields
``BSP_REF``, ``BSP_ALT`` (probabilities) and ``BSP_DIFF`` (logit_diff) added, ``Number=A`` (one value
per ALT, ``.`` where not scored). Outputs are written to temporary files and renamed at the end, so
nothing half-written is left behind.

Memory: ``--chunk`` records at a time (streamed from the VCF). One process (no torchrun sharding;
``--device cuda`` for speed). Needs cyvcf2 (``pip install 'bsp_fast[variants]'``).
"""

from __future__ import annotations

import gzip
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from bsp_fast.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from bsp_fast.cli import ArgumentParser, UserError, guard
from bsp_fast.progress import progress

PROG = "bsp-fast variants"
FLAGS = ("contig_missing", "symbolic", "n_in_allele", "too_long", "ref_mismatch")
COLUMNS = ("chrom", "pos", "id", "ref", "alt", "ref_prob", "alt_prob", "logit_diff", "log2_odds_ratio", "flag")
INFO_FIELDS = (
    ("BSP_REF", "bsp_fast: binding probability of the window with the REF allele"),
    ("BSP_ALT", "bsp_fast: binding probability of the window with the ALT allele"),
    ("BSP_DIFF", "bsp_fast: logit(ALT) - logit(REF), natural log"),
)
_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i
    _CODE[_b + 32] = _i  # lower case


def build_parser() -> ArgumentParser:
    import argparse

    p = ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or best.pt written by bsp-fast train")
    p.add_argument("--genome", required=True, help="genome FASTA (the VCF's reference)")
    p.add_argument("--vcf", required=True, help="variants: .vcf, .vcf.gz or .bcf")
    p.add_argument("--out", required=True, help="effects table (.tsv or .tsv.gz)")
    p.add_argument("--vcf-out", help="also write the VCF with INFO BSP_REF, BSP_ALT, BSP_DIFF added (.vcf, .vcf.gz, .bcf)")
    p.add_argument("--max-indel", type=int, default=50, help="longest indel scored, bp (default 50)")
    p.add_argument("--no-rc", action="store_true", help="score the forward strand only (default: mean of both strands)")
    p.add_argument("--batch-size", type=int, default=512, help="windows per model call")
    p.add_argument("--chunk", type=int, default=20_000, help="variant records per streamed chunk (bounds memory)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache-dir", help="cache for the encoded genome")
    p.add_argument("--no-progress", action="store_true")
    return p


# ------------------------------------------------------------------------------------------------
# windows


def encode_allele(allele: str) -> np.ndarray | None:
    """uint8 codes (A0 C1 G2 T3) of an allele, or None if it holds anything but ACGT (any case)."""
    c = _CODE[np.frombuffer(allele.encode("ascii", "replace"), dtype=np.uint8)]
    return None if (c == 255).any() else c


def allele_windows(left: np.ndarray, right: np.ndarray, alleles: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Windows of ``length`` bases with each allele centred between its genomic flanks.

    ``left`` [n, M]: the M bases before the variant (the last column is the base just before POS);
    ``right`` [n, M]: the M bases after the REF allele; ``alleles``: n code arrays of length k_i.
    Window i = ``left[i, M - lf:] + alleles[i] + right[i, :rf]`` with ``lf = (length - k) // 2``,
    ``rf = length - k - lf``, so every window has ``length`` bases whatever the allele's length
    (needs ``M >= length // 2 + 1`` and ``k <= length``). Returns uint8 [n, length].
    """
    n, m = left.shape
    k = np.array([a.size for a in alleles], dtype=np.int64)
    kmax = int(k.max()) if n else 0
    if n and (kmax > length or length - int(k.min()) - (length - int(k.min())) // 2 > m or (length - int(k.min())) // 2 > m):
        raise ValueError(f"alleles of {int(k.min())}-{kmax} bp do not fit a {length} bp window with {m} bp flanks")
    buf = np.empty((n, 2 * m + kmax), dtype=np.uint8)
    buf[:, :m] = left
    buf[:, m + kmax:] = right
    for i, a in enumerate(alleles):
        buf[i, m:m + a.size] = a
    lf = ((length - k) // 2)[:, None]
    j = np.arange(length, dtype=np.int64)[None, :]
    kk = k[:, None]
    idx = np.where(j < lf, m - lf + j, np.where(j < lf + kk, m + j - lf, m + kmax + j - lf - kk))
    return np.take_along_axis(buf, idx, axis=1)


def contig_aliases(name: str) -> list[str]:
    """Other spellings of a contig name: ``chr1`` <-> ``1``, ``chrM`` <-> ``MT`` / ``M``."""
    out = []
    mito = {"chrM", "chrMT", "MT", "M"}
    if name in mito:
        out += [m for m in ("chrM", "MT", "chrMT", "M") if m != name]
    if name.startswith("chr"):
        out.append(name[3:])
    else:
        out.append("chr" + name)
    return out


class ContigMap:
    """VCF contig -> genome sequence name (or None), with the aliases of :func:`contig_aliases`."""

    def __init__(self, genome: Any) -> None:
        self.genome = genome
        self._map: dict[str, str | None] = {}
        self.aliased: dict[str, str] = {}

    def __call__(self, name: str) -> str | None:
        try:
            return self._map[name]
        except KeyError:
            pass
        got: str | None = name if name in self.genome else None
        if got is None:
            for alt in contig_aliases(name):
                if alt in self.genome:
                    got = alt
                    self.aliased[name] = alt
                    break
        self._map[name] = got
        return got


# ------------------------------------------------------------------------------------------------
# reading


def _require_cyvcf2():
    try:
        import cyvcf2  # noqa: WPS433
    except ImportError:
        raise UserError("--vcf needs cyvcf2: pip install 'bsp_fast[variants]' (or pip install cyvcf2)") from None
    try:  # htslib's own warnings/errors would go to stderr as extra lines; the errors are reported here
        import ctypes

        ctypes.CDLL(cyvcf2.cyvcf2.__file__).hts_set_log_level(0)
    except Exception:
        pass
    return cyvcf2


def _line_of_record(path: str, n_records: int) -> tuple[int, str] | None:
    """(line number, text) of the record after the first ``n_records`` ones in a text VCF, else None."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            if fh.read(3) == b"BCF":  # binary: no lines to name
                return None
        seen = 0
        with opener(path, "rt", errors="replace") as fh:
            for ln, line in enumerate(fh, 1):
                if line.startswith("#"):
                    continue
                if seen == n_records:
                    return ln, line.rstrip("\n")
                seen += 1
    except (OSError, EOFError, UnicodeError):
        return None
    return None


@dataclass
class Row:
    """One ALT allele of one record."""

    chrom: str
    pos: int  # 1-based, as in the VCF
    id: str
    ref: str
    alt: str
    record: int  # index of the record in the chunk
    flag: str = ""
    gname: str | None = None
    ref_codes: np.ndarray | None = None
    alt_codes: np.ndarray | None = None


@dataclass
class Counts:
    records: int = 0
    rows: int = 0
    scored: int = 0
    flags: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FLAGS})


def _is_symbolic(alt: str) -> bool:
    return (not alt or alt in (".", "*") or alt.startswith("<") or "[" in alt or "]" in alt
            or alt.startswith(".") or alt.endswith("."))


def classify(rec: Any, genome: Any, contigs: ContigMap, max_indel: int, idx: int, vcf_path: str,
             n_before: int) -> list[Row]:
    """The rows (one per ALT) of a cyvcf2 record, flagged; REF checked against the genome."""
    chrom, pos = rec.CHROM, int(rec.POS)
    ref = rec.REF or ""
    alts = list(rec.ALT) or ["."]
    rid = rec.ID or "."
    rows = [Row(chrom, pos, rid, ref, a, idx) for a in alts]
    gname = contigs(chrom)
    if gname is None:
        for r in rows:
            r.flag = "contig_missing"
        return rows
    size = int(genome.lengths[genome.chrom_id(gname)])
    if pos < 1:
        raise UserError(f"--vcf {vcf_path}: record {n_before + 1} ({chrom}:{pos}): POS must be >= 1 "
                        f"(telomeric POS 0 records cannot be scored; remove them)")
    if pos - 1 + max(len(ref), 1) > size:
        where = f"record {n_before + 1} ({chrom}:{pos})"
        raise UserError(f"--vcf {vcf_path}: {where}: POS {pos}{' + REF ' + str(len(ref)) + ' bp' if len(ref) > 1 else ''} "
                        f"is past the end of {gname} ({size:,} bp in {Path(str(genome.path)).name}); "
                        f"is the VCF from another assembly?")
    ref_codes = encode_allele(ref)
    genome_ref = None
    for r in rows:
        r.gname = gname
        if _is_symbolic(r.alt):
            r.flag = "symbolic"
            continue
        alt_codes = encode_allele(r.alt)
        if ref_codes is None or alt_codes is None:
            r.flag = "n_in_allele"
            continue
        if abs(len(ref) - len(r.alt)) > max_indel or max(len(ref), len(r.alt)) > max_indel + 1:
            r.flag = "too_long"
            continue
        if genome_ref is None:
            genome_ref = genome.codes(gname, [pos - 1], len(ref))[0]
        if not np.array_equal(genome_ref, ref_codes):
            r.flag = "ref_mismatch"
            continue
        r.ref_codes, r.alt_codes = ref_codes, alt_codes
    return rows


# ------------------------------------------------------------------------------------------------
# scoring


def score_codes(model: torch.nn.Module, codes: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Logits (float64 [n]) of uint8 windows [n, L], in batches."""
    out = np.empty(codes.shape[0], dtype=np.float64)
    autocast = device.type == "cuda"
    with torch.inference_mode():
        for i in range(0, codes.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(codes[i:i + batch_size])).to(device)
            if autocast:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = model(x)
            else:
                y = model(x)
            out[i:i + x.shape[0]] = y.float().cpu().numpy()
    return out


def score_pairs(model: torch.nn.Module, ref: np.ndarray, alt: np.ndarray, lo: int, hi: int, batch_size: int,
                device: torch.device) -> tuple[np.ndarray, np.ndarray] | None:
    """(ref, alt) logits of window pairs that differ only in columns ``[lo, hi)``, through the model's
    ``substitution_logits`` (the hybrid reuses the REF convolution for the ALT window); None when the
    model has no such shortcut."""
    fn = getattr(model, "substitution_logits", None)
    if fn is None:
        return None
    both = bool(getattr(model, "rc_average", False))
    n = ref.shape[0]
    out_r, out_a = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
    step = max(1, batch_size // 2)
    with torch.inference_mode():
        for i in range(0, n, step):
            r = torch.from_numpy(np.ascontiguousarray(ref[i:i + step])).to(device)
            a = torch.from_numpy(np.ascontiguousarray(alt[i:i + step])).to(device)
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    got = fn(r, a, lo, hi, both)
            else:
                got = fn(r, a, lo, hi, both)
            if got is None:
                return None
            out_r[i:i + r.shape[0]] = got[0].float().cpu().numpy()
            out_a[i:i + r.shape[0]] = got[1].float().cpu().numpy()
    return out_r, out_a


def score_rows(model: torch.nn.Module, genome: Any, rows: list[Row], length: int, batch_size: int,
               device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(ref logits, alt logits) of the scorable rows (those with codes), in order.

    Substitutions (SNVs, MNVs: REF and ALT of one length k) go through :func:`score_pairs` where the
    model has the shortcut (their windows differ only in the k centre columns); the rest, and every
    row of other models, score their REF windows once per distinct window and their ALT windows."""
    ok = [r for r in rows if r.ref_codes is not None]
    if not ok:
        return np.zeros(0), np.zeros(0)
    m = length // 2 + 1
    ids = genome.chrom_ids(np.array([r.gname for r in ok], dtype=object))
    p0 = np.array([r.pos - 1 for r in ok], dtype=np.int64)
    rlen = np.array([len(r.ref) for r in ok], dtype=np.int64)
    left = genome.codes(ids, p0 - m, m)
    right = genome.codes(ids, p0 + rlen, m)
    ref_out = np.empty(len(ok), dtype=np.float64)
    alt_out = np.empty(len(ok), dtype=np.float64)
    todo = np.ones(len(ok), dtype=bool)
    if getattr(model, "substitution_logits", None) is not None:
        by_k: dict[int, list[int]] = {}
        for i, r in enumerate(ok):
            if len(r.ref) == len(r.alt):
                by_k.setdefault(len(r.ref), []).append(i)
        for k, idx_list in by_k.items():
            idx = np.array(idx_list, dtype=np.int64)
            rw = allele_windows(left[idx], right[idx], [ok[i].ref_codes for i in idx_list], length)
            aw = allele_windows(left[idx], right[idx], [ok[i].alt_codes for i in idx_list], length)
            lo = (length - k) // 2
            got = score_pairs(model, rw, aw, lo, lo + k, batch_size, device)
            if got is None:
                break
            ref_out[idx], alt_out[idx] = got
            todo[idx] = False
    rest = np.flatnonzero(todo)
    if rest.size == 0:
        return ref_out, alt_out
    # REF windows: one per distinct (contig, position, REF)
    keys: dict[tuple[int, int, str], int] = {}
    ref_index = np.empty(rest.size, dtype=np.int64)
    first = []
    for n, i in enumerate(rest.tolist()):
        key = (int(ids[i]), int(p0[i]), ok[i].ref.upper())
        j = keys.get(key)
        if j is None:
            j = keys[key] = len(first)
            first.append(i)
        ref_index[n] = j
    first_a = np.array(first, dtype=np.int64)
    ref_win = allele_windows(left[first_a], right[first_a], [ok[i].ref_codes for i in first], length)
    alt_win = allele_windows(left[rest], right[rest], [ok[i].alt_codes for i in rest.tolist()], length)
    logits = score_codes(model, np.concatenate([ref_win, alt_win]), batch_size, device)
    ref_out[rest] = logits[:len(first)][ref_index]
    alt_out[rest] = logits[len(first):]
    return ref_out, alt_out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _num(x: float) -> str:
    return f"{x:.6g}"


# ------------------------------------------------------------------------------------------------
# writing


class _Table:
    """The effects table, written to a temporary file and renamed by close()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        raw = open(self.tmp, "wb")
        self.fh = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=4) if path.name.endswith(".gz") else raw
        self.raw = raw
        self.fh.write(("\t".join(COLUMNS) + "\n").encode())

    def write(self, text: str) -> None:
        self.fh.write(text.encode())

    def close(self) -> None:
        if self.fh is not self.raw:
            self.fh.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self.fh is not self.raw:
                self.fh.close()
            self.raw.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)


class _VcfOut:
    """The input records with BSP_* INFO fields, through cyvcf2 (temporary file, renamed by close())."""

    def __init__(self, path: Path, reader: Any, cyvcf2: Any) -> None:
        self.path = path
        name = path.name.lower()
        mode = "wb" if name.endswith(".bcf") else "wz" if name.endswith(".gz") else "w"
        suffix = ".bcf" if mode == "wb" else ".vcf.gz" if mode == "wz" else ".vcf"
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
        for key, desc in INFO_FIELDS:
            reader.add_info_to_header({"ID": key, "Description": desc, "Type": "Float", "Number": "A"})
        self.writer = cyvcf2.Writer(str(self.tmp), reader, mode=mode)
        self.closed = False

    def write(self, rec: Any, values: list[tuple[str, str, str]]) -> None:
        f = str(rec).rstrip("\n").split("\t")
        add = ";".join(f"{key}={','.join(v[k] for v in values)}" for k, (key, _) in enumerate(INFO_FIELDS))
        f[7] = add if f[7] in (".", "") else f"{f[7]};{add}"
        try:
            self.writer.write_record(self.writer.variant_from_string("\t".join(f)))
        except Exception as exc:
            raise UserError(f"--vcf-out {self.path}: cannot write record {rec.CHROM}:{rec.POS} ({exc}); "
                            f"are all its INFO/FORMAT tags declared in the VCF header?") from None

    def close(self) -> None:
        self.writer.close()
        self.closed = True
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.closed:
            try:
                self.writer.close()
            except Exception:
                pass
        self.tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# command


def main(argv: Sequence[str] | None = None) -> int:
    return guard(PROG, lambda: _main(argv))


def _records(reader: Any, path: str, counts: Counts) -> Iterator[Any]:
    it = iter(reader)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except Exception as exc:  # htslib could not parse a record
            where = _line_of_record(path, counts.records)
            if where is not None:
                ln, text = where
                raise UserError(f"--vcf {path}:{ln}: malformed record: {text[:100]!r}") from None
            raise UserError(f"--vcf {path}: malformed record after record {counts.records} "
                            f"({str(exc).splitlines()[0][:100]})") from None
        yield rec


def _main(argv: Sequence[str] | None) -> int:
    from bsp_fast.data import Genome
    from bsp_fast.models import seq_len
    from bsp_fast.train import _one_line, resolve_device

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    for flag, v in (("--batch-size", args.batch_size), ("--chunk", args.chunk)):
        if v < 1:
            raise UserError(f"{flag}: expected a positive integer, got {v}")
    if args.max_indel < 0:
        raise UserError(f"--max-indel: expected >= 0, got {args.max_indel}")
    out = Path(args.out)
    vcf_out = Path(args.vcf_out) if args.vcf_out else None
    for flag, path in (("--out", out), ("--vcf-out", vcf_out)):
        if path is not None and path.is_dir():
            raise UserError(f"{flag} {path}: is a directory (expected a file name)")
    if not out.name.lower().endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        raise UserError(f"--out {out}: expected a .tsv or .tsv.gz file name")
    if vcf_out is not None and not vcf_out.name.lower().endswith((".vcf", ".vcf.gz", ".bcf")):
        raise UserError(f"--vcf-out {vcf_out}: expected a .vcf, .vcf.gz or .bcf file name")
    cyvcf2 = _require_cyvcf2()
    if not Path(args.vcf).is_file():
        raise UserError(f"--vcf {args.vcf}: no such file")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(ckpt, args.checkpoint)
    except CheckpointError as exc:
        raise UserError(f"--checkpoint: {exc}") from None
    model.rc_average = not args.no_rc
    model.to(device).eval()
    length = seq_len(model.config)
    if args.max_indel + 1 >= length:
        raise UserError(f"--max-indel {args.max_indel}: must be shorter than the model's {length} bp window")
    try:
        genome = Genome(args.genome, cache_dir=args.cache_dir)
    except (ValueError, OSError) as exc:
        raise UserError(f"--genome {args.genome}: {_one_line(exc)}") from None
    try:
        reader = cyvcf2.VCF(args.vcf)
    except Exception as exc:
        raise UserError(f"--vcf {args.vcf}: not a readable VCF/BCF ({str(exc).splitlines()[0][:100]})") from None
    if vcf_out is None:
        try:
            reader.set_samples([])  # genotypes are not needed: parse less
        except Exception:
            pass
    contigs = ContigMap(genome)
    declared = list(getattr(reader, "seqnames", []) or [])
    if declared and all(contigs(c) is None for c in declared):
        # the header declares contigs and none of them is in the genome: every record would be flagged
        raise UserError(f"--vcf {args.vcf}: none of its contigs ({_names(declared)}) is in the genome "
                        f"{Path(args.genome).name} (it has {_names(genome.names)})")

    outputs: list[Any] = []
    flag, path = "--out", out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        table = _Table(out)
        outputs.append(table)
        if vcf_out is not None:  # the writer itself is made after the first chunk (see below)
            flag, path = "--vcf-out", vcf_out
            vcf_out.parent.mkdir(parents=True, exist_ok=True)
            probe = vcf_out.with_name(f".{vcf_out.name}.{os.getpid()}.probe")
            open(probe, "wb").close()
            probe.unlink()
    except OSError as exc:
        for o in outputs:
            o.abort()
        raise UserError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        for o in outputs:
            o.abort()
        raise

    vout: _VcfOut | None = None
    counts = Counts()
    bar = progress(total=None, desc="variants", unit="variant", disable=args.no_progress)
    t0 = time.perf_counter()
    try:
        chunk: list[Any] = []
        records = _records(reader, args.vcf, counts)
        while True:
            rec = next(records, None)
            if rec is not None:
                chunk.append(rec)
                counts.records += 1
            if chunk and (rec is None or len(chunk) >= args.chunk):
                if vcf_out is not None and vout is None:
                    # made once the first chunk is read: htslib adds the tags a VCF uses without declaring
                    # them to the reader's header as it reads, and the writer copies that header
                    vout = _VcfOut(vcf_out, reader, cyvcf2)
                    outputs.append(vout)
                _do_chunk(chunk, model, genome, contigs, args, length, device, table, vout, counts, bar)
                chunk = []
            if rec is None:
                break
        if vcf_out is not None and vout is None:  # an empty VCF: header only
            vout = _VcfOut(vcf_out, reader, cyvcf2)
            outputs.append(vout)
        bar.close()
        if counts.records and counts.flags["contig_missing"] == counts.rows:
            seen = sorted(contigs._map)
            raise UserError(f"--vcf {args.vcf}: none of its contigs ({_names(seen)}) is in the genome "
                            f"{Path(args.genome).name} (it has {_names(genome.names)})")
        for o in outputs:
            o.close()
        outputs = []
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    finally:
        for o in outputs:  # only on an error: nothing half-written
            o.abort()
    dt = time.perf_counter() - t0
    if counts.records == 0:
        print(f"{PROG}: {args.vcf} holds no variant records; wrote the header line only to {out}", file=sys.stderr)
        return 0
    flags = ", ".join(f"{k} {v:,}" for k, v in counts.flags.items())
    alias = (", contigs aliased " + ", ".join(f"{a}->{b}" for a, b in sorted(contigs.aliased.items())[:6])
             + (" ..." if len(contigs.aliased) > 6 else "")) if contigs.aliased else ""
    print(f"{PROG}: {counts.records:,} records, {counts.rows:,} alleles: {counts.scored:,} scored; not scored: {flags}"
          f"{alias}; {counts.scored / max(dt, 1e-9):,.0f} variants/s; wrote {out}"
          f"{' and ' + str(vcf_out) if vcf_out else ''}", file=sys.stderr)
    return 0


def _names(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _do_chunk(chunk: list[Any], model: torch.nn.Module, genome: Any, contigs: ContigMap, args: Any, length: int,
              device: torch.device, table: _Table, vout: _VcfOut | None, counts: Counts, bar: Any) -> None:
    rows: list[Row] = []
    n_before = counts.records - len(chunk)
    for i, rec in enumerate(chunk):
        rows += classify(rec, genome, contigs, args.max_indel, i, args.vcf, n_before + i)
    ref_l, alt_l = score_rows(model, genome, rows, length, args.batch_size, device)
    lines = []
    per_record: list[list[tuple[str, str, str]]] = [[] for _ in chunk]
    k = 0
    for r in rows:
        if r.ref_codes is not None:
            a, b = float(ref_l[k]), float(alt_l[k])
            k += 1
            d = b - a
            pa, pb = float(_sigmoid(np.float64(a))), float(_sigmoid(np.float64(b)))
            vals = (_num(pa), _num(pb), _num(d), _num(d / math.log(2)))
            per_record[r.record].append(vals[:3])
            counts.scored += 1
        else:
            vals = ("NA", "NA", "NA", "NA")
            per_record[r.record].append((".", ".", "."))
            counts.flags[r.flag] += 1
        lines.append(f"{r.chrom}\t{r.pos}\t{r.id}\t{r.ref}\t{r.alt}\t" + "\t".join(vals) + f"\t{r.flag}\n")
    counts.rows += len(rows)
    table.write("".join(lines))
    if vout is not None:
        for rec, values in zip(chunk, per_record):
            vout.write(rec, values)
    bar.update(len(rows))


if __name__ == "__main__":
    sys.exit(main())
