"""train --init-motifs: first-layer filters from known motifs (bsp_fast/motif_init.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from bsp_fast.models import both_strands_conv, build_model, one_hot, strand_conv
from bsp_fast.motif_init import (FLOOR_BELOW_TYPICAL, SITE_NATS_PER_BIT, filter_gain, init_conv_from_motifs,
                                 init_model_from_motifs, init_site_head_from_motifs, kernel_size_for, motif_filter)
from bsp_fast.motif_io import Motif, read_jaspar
from bsp_fast.data.synthetic import motif_path


def _motifs():
    return {m.name: m for m in read_jaspar(motif_path())}


def _codes(seq: str) -> torch.Tensor:
    return torch.tensor([["ACGT".index(c) for c in seq]], dtype=torch.long)


def test_filter_scale_best_site_and_floor():
    m = _motifs()["GABPA"]
    w, b = motif_filter(m, 19)
    lo = m.log_odds(pseudocount=0.5)
    best = lo.max(axis=1).sum()
    a = (19 - len(m)) // 2
    assert np.allclose(w[:, :a], 0) and np.allclose(w[:, a + len(m):], 0)
    consensus = lo.argmax(axis=1)
    response = w[consensus, a + np.arange(len(m))].sum() + b
    assert response == pytest.approx(4.0)
    typical = (m.probabilities(0.5) * lo).sum()
    # a site scoring the floor (typical - 4 bits) responds 0: linear in the score with gain 4 / (best - floor)
    assert FLOOR_BELOW_TYPICAL == 4.0
    floor = typical - FLOOR_BELOW_TYPICAL
    gain = w[consensus[0], a] / lo[0, consensus[0]]
    assert gain * floor + b == pytest.approx(0.0, abs=1e-9)
    assert gain == pytest.approx(4.0 / (best - floor))
    assert filter_gain(m) == pytest.approx((floor, gain))
    # a short, weak matrix: the floor stays at least 1 bit under its best site
    flat = Motif("F1", "flat", np.array([[0.4, 0.2, 0.2, 0.2]] * 3))
    f_floor, f_gain = filter_gain(flat)
    f_best = flat.log_odds(pseudocount=0.5).max(axis=1).sum()
    assert f_floor <= f_best - 1.0 + 1e-12 and f_gain == pytest.approx(4.0 / (f_best - f_floor))


def test_conv_finds_the_motif_on_both_strands():
    torch.manual_seed(0)
    mot = _motifs()["GABPA"]
    conv = nn.Conv1d(4, 6, 19, padding=9)
    init_conv_from_motifs(conv, [mot])
    cons = "".join("ACGT"[i] for i in mot.log_odds(pseudocount=0.5).argmax(axis=1))
    rng = np.random.default_rng(1)
    bg = "".join(rng.choice(list("ACGT"), size=120))
    seq = bg[:50] + cons + bg[50 + len(cons):]
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    peaks = []
    with torch.no_grad():
        for s in (seq, rc):
            x = one_hot(_codes(s)).transpose(1, 2)
            y = both_strands_conv(conv, x)[0, 0]
            assert torch.allclose(y, strand_conv(conv, x, True)[0, 0], atol=1e-5)
            peaks.append((int(y.argmax()), float(y.max())))
    # the consensus scores the filter's peak (4) on the strand it is on, and on the other one
    assert peaks[0][0] == 50 + len(cons) // 2
    assert peaks[0][1] == pytest.approx(4.0, abs=1e-4) and peaks[1][1] == pytest.approx(4.0, abs=1e-4)
    assert torch.isfinite(conv.weight).all()


def test_model_members_kernel_and_errors():
    motifs = list(_motifs().values())
    ens = build_model("hybrid-dense", members=3, filters=8)
    assert init_model_from_motifs(ens, motifs[:2]) == 3
    for member in ens.members:
        w, _ = motif_filter(motifs[1], member.conv.weight.shape[2])
        assert np.allclose(member.conv.weight[1].detach().numpy(), w, atol=1e-6)
    assert not torch.equal(ens.members[0].conv.weight[2], ens.members[1].conv.weight[2])  # the rest random
    with pytest.raises(ValueError, match="no first-layer convolution"):
        init_model_from_motifs(build_model("bigru-small"), motifs[:1])
    with pytest.raises(ValueError, match=f"{len(motifs)} motifs for 4 filters"):
        init_model_from_motifs(build_model("hybrid-dense", filters=4), motifs)
    long = Motif("X1", "long", np.full((20, 4), 1.0))
    assert kernel_size_for([long], 19) == 21 and kernel_size_for(motifs, 19) == 19
    with pytest.raises(ValueError, match="longer than the filters"):
        motif_filter(long, 19)


@pytest.mark.parametrize("name, options", [("hybrid-dense", {}), ("hybrid", {"head": "occupancy", "flank": 100})])
def test_site_head_starts_as_a_scan(name, options):
    """Hidden unit i copies motif filter i's response; the site logit is bias + gain * response (+ the
    other units as initialised), gain making it rise ln 2 per bit; a model without a site head is left alone."""
    torch.manual_seed(3)
    mot = _motifs()["GABPA"]
    model = build_model(name, filters=8, **options)
    before = model.site[-1].weight.detach().clone().view(-1)
    init_model_from_motifs(model, [mot])
    first, last = model.site[0], model.site[-1]
    w = first.weight.detach().view(first.weight.shape[0], first.weight.shape[1], -1)
    assert w[0].abs().sum() == 1.0 and w[0, 0, w.shape[2] // 2] == 1.0 and first.bias[0] == 0
    slope = float(last.weight.detach().view(-1)[0]) * filter_gain(mot)[1]  # site logit per bit of motif score
    assert slope == pytest.approx(SITE_NATS_PER_BIT, rel=1e-6) and SITE_NATS_PER_BIT == pytest.approx(np.log(2))
    assert torch.equal(last.weight.view(-1)[1:], before[1:])
    assert not init_site_head_from_motifs(build_model("cnn"), [1.0])
    # at the start, a window with the consensus in its middle scores above the same window without it
    cons = "".join("ACGT"[i] for i in mot.log_odds(pseudocount=0.5).argmax(axis=1))
    rng = np.random.default_rng(0)
    bgs = ["".join(rng.choice(list("ACGT"), size=400)) for _ in range(16)]
    with_site = [b[:190] + cons + b[190 + len(cons):] for b in bgs]
    model.eval()
    with torch.no_grad():
        a = model(torch.cat([_codes(x) for x in with_site]))
        b = model(torch.cat([_codes(x) for x in bgs]))
    assert (a > b + 2).all(), (a - b)


def _write(path, motifs):
    path.write_text("".join(f">{m.id}\t{m.name}\n" + "".join(
        f"{b}  [ " + " ".join(f"{v:g}" for v in m.matrix[:, i]) + " ]\n" for i, b in enumerate("ACGT"))
        for m in motifs))
    return path


def test_train_init_motifs(tmp_path, capsys):
    """A 20 bp motif widens the default model's filters to 21 bp and is the first filter of every
    member at the start; bad files and a contradicting --kernel-size are one-line errors."""
    from bsp_fast import train
    from bsp_fast.checkpoint import load_checkpoint
    from bsp_fast.data.synthetic import ensure_builtin

    b = ensure_builtin(tmp_path / "b", scale=0.05)
    rng = np.random.default_rng(0)
    long = Motif("MA9999.1", "long", rng.integers(1, 50, size=(20, 4)).astype(float))
    f = _write(tmp_path / "m.jaspar", [long])
    base = ["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", str(tmp_path / "c"),
            "--threads", "1", "--no-progress", "--hidden", "8", "--batch-size", "4", "--steps", "1", "--lr", "1e-12",
            "--ema", "0"]
    plain = list(base)
    base = base + ["--filters", "4", "--bins-per-stretch", "12"]
    out = tmp_path / "run"
    assert train.main(base + ["--init-motifs", str(f), "--out", str(out)]) == 0
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["model_config"]["kernel_size"] == 21 and ck["model_config"]["members"] == 2
    assert ck["model_config"]["dropout"] == 0.1  # the real-data recipe's 0.3 is for filters learnt from scratch
    w, _ = motif_filter(long, 21)
    for k in range(2):
        got = ck["model"][f"members.{k}.conv.weight"][0].numpy()
        assert np.allclose(got, w, atol=1e-4)  # one step at lr 1e-12 moves nothing
    assert train.main(base + ["--init-motifs", str(f), "--kernel-size", "9", "--out", str(tmp_path / "x")]) == 2
    assert "needs filters of 21 bp, --kernel-size is 9" in capsys.readouterr().err
    bad = tmp_path / "bad.jaspar"
    bad.write_text(">X y\nA [ 1 2 ]\nC [ 1 ]\n")
    assert train.main(base + ["--init-motifs", str(bad), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--init-motifs" in err and "bad.jaspar" in err
    assert train.main(plain + ["--model", "bigru-small", "--init-motifs", str(f), "--out", str(tmp_path / "z")]) == 2
    assert "no first-layer convolution" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_freeze_motifs(tmp_path):
    """With --freeze-motifs, at a learning rate that moves everything, the motif filters (weights and
    biases, every member) end as they started while the other filters move, also across a resume;
    without it they move too."""
    from bsp_fast import train
    from bsp_fast.checkpoint import load_checkpoint
    from bsp_fast.data.synthetic import ensure_builtin

    b = ensure_builtin(tmp_path / "b", scale=0.05)
    f = _write(tmp_path / "m.jaspar", [_motifs()["GABPA"]])
    base = ["--genome", str(b.fasta), "--labels", str(b.labels), "--cell", b.cell, "--cache-dir", str(tmp_path / "c"),
            "--threads", "1", "--no-progress", "--hidden", "8", "--batch-size", "4", "--lr", "1e-2", "--ema", "0",
            "--filters", "4", "--bins-per-stretch", "12", "--init-motifs", str(f), "--eval-every", "3"]
    frozen_flag = ["--freeze-motifs"]
    w0, b0 = motif_filter(_motifs()["GABPA"], 19)
    out = tmp_path / "frozen"
    assert train.main(base + frozen_flag + ["--steps", "3", "--out", str(out)]) == 0
    assert train.main(base + ["--steps", "6", "--out", str(out), "--resume"]) == 0  # kept from the checkpoint
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["config"]["frozen_motif_filters"] == 1 and ck["step"] == 6
    for k in range(2):
        w = ck["model"][f"members.{k}.conv.weight"].numpy()
        bias = ck["model"][f"members.{k}.conv.bias"].numpy()
        assert np.allclose(w[0], w0, atol=1e-6) and bias[0] == pytest.approx(b0, abs=1e-6)
        assert np.abs(w[1:]).max() > 0 and not np.allclose(w[1:], 0)
    tuned = tmp_path / "tuned"
    assert train.main(base + ["--steps", "3", "--out", str(tuned)]) == 0
    ck = load_checkpoint(tuned / "checkpoint.pt")
    assert ck["config"]["frozen_motif_filters"] == 0
    assert not np.allclose(ck["model"]["members.0.conv.weight"][0].numpy(), w0, atol=1e-4)
