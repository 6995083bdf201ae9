"""interpret.modisco + ``motifs --modisco``: TF-MoDISco (modisco-lite) patterns of the attributions of
the default-type model's top-scoring windows; its top pattern matches GABPA."""

import json

import numpy as np
import pytest

from bsp_fast.interpret.modisco import save_npz, trim
from bsp_fast.motif_io import read_meme

pytest.importorskip("modiscolite")
pytest.importorskip("captum")

from test_interpret_matching import KNOWN  # noqa: E402


def test_trim_and_npz_layout(tmp_path):
    contrib = np.zeros((10, 4))
    contrib[3:6, 1] = [0.5, 1.0, 0.4]
    ppm = np.full((10, 4), 0.25)
    p, c = trim(ppm, contrib)
    assert p.shape == (3, 4) and np.array_equal(c[:, 1], [0.5, 1.0, 0.4])
    ohe = np.zeros((2, 4, 30), dtype=np.float32)
    save_npz(tmp_path / "ohe.npz", tmp_path / "attr.npz", ohe, ohe + 1)
    assert np.load(tmp_path / "ohe.npz")["arr_0"].shape == (2, 4, 30)  # modisco motifs -s ohe.npz -a attr.npz


def test_modisco_top_pattern_of_the_default_type_model_matches_gabpa(builtin_hybrid, builtin_cache, tmp_path, capsys):
    """``motifs --modisco`` on the small default-type model (hybrid + occupancy head, tests/conftest.py):
    integrated gradients (DeepLIFT is blocked by the FusedBiGRU and the head) of its 300 top-scoring of
    1000 built-in windows -> modisco-lite -> TomTom. Measured: the top pattern (most seqlets) matches
    GABPA MA0062.4 with p 5.6e-11, q 3.4e-10, then MA0062.3, ELK1 third (p 1.9e-5); thresholds q < 0.05
    and ELK1 below GABPA. 1.5-2 min on a shared 2-core VM."""
    from bsp_fast import motifs as mo

    _, ck, _, _ = builtin_hybrid
    out = tmp_path / "m"
    rc = mo.main(["--checkpoint", str(ck), "--builtin", "--builtin-cache", builtin_cache, "--max-seqs", "1000",
                  "--modisco", "--modisco-seqs", "300", "--known", str(KNOWN), "--logos", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    d = out / "modisco"
    for f in ("motifs.meme", "motifs.jaspar", "motifs.tsv", "matches.tsv", "ohe.npz", "attr.npz", "logos/motif1.png"):
        assert (d / f).stat().st_size > 0, f
    summary = json.loads((out / "summary.json").read_text())["modisco"]
    assert summary["attributions"] == "ig" and summary["windows"] == 300
    assert summary["completeness_delta_relative_median"] < 0.02  # measured ~2e-4
    assert read_meme(d / "motifs.meme")[0].id == "motif1"
    rows = [line.split("\t") for line in (d / "matches.tsv").read_text().splitlines()]
    head = rows[0]
    top = [dict(zip(head, r)) for r in rows[1:] if r[0] == "motif1"]
    assert top[0]["rank"] == "1" and top[0]["known_name"] == "GABPA", top[:3]
    assert float(top[0]["q_value"]) < 0.05
    elk1 = next(r for r in top if r["known_name"] == "ELK1")
    assert int(elk1["rank"]) > 1 and float(elk1["p_value"]) > float(top[0]["p_value"])
    assert np.load(d / "attr.npz")["arr_0"].shape == (300, 4, 400)
