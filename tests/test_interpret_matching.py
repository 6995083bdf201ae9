"""interpret.matching: TomTom (memelite) offsets, strands and q-values; the learned motifs of the
default-type model match GABPA; our MEME files read back with memelite."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bsp_fast.interpret.matching import bh_qvalues, tomtom_matches
from bsp_fast.motif_io import Motif, read_motifs, write_meme

memelite = pytest.importorskip("memelite")

KNOWN = Path("/work/shared/data/motifs.jaspar")
if not KNOWN.exists():
    KNOWN = Path(__file__).resolve().parents[1] / "bsp_fast" / "resources" / "motifs.jaspar"


def test_bh_qvalues():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 -> p * 4 / rank = 0.04, 0.06, 0.0533, 0.5; step-up minimum from the end
    np.testing.assert_allclose(bh_qvalues(p), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    # with more tests than p-values (unreported, larger ones)
    np.testing.assert_allclose(bh_qvalues(np.array([1e-6, 1e-5]), 1000), [1e-3, 5e-3])
    assert bh_qvalues(np.array([])).shape == (0,)


def test_tomtom_offset_strand_and_rank():
    known = read_motifs(KNOWN)
    gabpa = next(k for k in known if k.id == "MA0062.4").probabilities()
    bg = np.random.default_rng(0).dirichlet(np.ones(4) * 5, size=16)
    fwd, rev = bg.copy(), bg.copy()
    fwd[3:13] = gabpa
    rev[5:15] = gabpa[::-1, ::-1]
    res = tomtom_matches([("fwd", fwd), ("rev", rev), ("short", gabpa[2:])], known)
    best = [next(r for r in rows if r["known_id"] == "MA0062.4") for rows in res]
    assert [(b["offset"], b["strand"]) for b in best] == [(3, "+"), (5, "-"), (-2, "+")]
    for rows in res:
        assert [r["rank"] for r in rows] == list(range(1, len(known) + 1))
        assert [r["p_value"] for r in rows] == sorted(r["p_value"] for r in rows)
        assert rows[0]["known_name"] == "GABPA" and rows[0]["q_value"] < 0.05
    assert len(tomtom_matches([("fwd", fwd)], known, top=2)[0]) == 2


def test_meme_files_we_write_read_back_with_memelite(tmp_path):
    known = read_motifs(KNOWN)
    write_meme(known, tmp_path / "k.meme")
    theirs = memelite.io.read_meme(str(tmp_path / "k.meme"))
    assert len(theirs) == len(known)
    for (key, pwm), k in zip(theirs.items(), known):
        assert key.split()[0] == k.id
        np.testing.assert_allclose(pwm.T, k.probabilities(), atol=1e-6)


def test_default_type_model_top_motif_matches_gabpa(builtin_hybrid):
    """The small default-type model (hybrid, occupancy head; tests/conftest.py): its most important
    kernel's rank-1 TomTom match is GABPA with q < 0.05, ELK1 and the decoys below both GABPA matrices.
    Measured (seed 0): MA0062.3 p 1.2e-12, q 7e-12; ELK1 rank 3, p 1.5e-5."""
    from bsp_fast import motifs as mo

    model, _, codes, _ = builtin_hybrid
    torch.set_num_threads(1)
    sel = np.r_[0:500, len(codes) - 500:len(codes)]  # 500 bound + 500 unbound windows: kernel influence is costly
    found = mo.conv_motifs(model, codes[sel])
    rows = mo.match_all(found[:1], read_motifs(KNOWN))
    best = rows[0]
    assert best["motif"] == "motif1" and best["known_name"] == "GABPA" and best["known_id"].startswith("MA0062"), rows[:3]
    assert best["q_value"] < 0.05
    elk1 = next(r for r in rows if r["known_name"] == "ELK1")
    assert elk1["rank"] > 2 and elk1["p_value"] > 10 * best["p_value"]
