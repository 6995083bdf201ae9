"""python -m bsp_fast.train: outputs, exact resume, NaN stop, bad input (tiny runs on a tiny genome)."""

from __future__ import annotations

import dataclasses
import json
import math
import types

import numpy as np
import pytest
import torch

from bsp_fast import train
from bsp_fast.checkpoint import load_checkpoint


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    from bsp_fast.data.synthetic import ensure_builtin

    root = tmp_path_factory.getbasetemp() / "bsp_fast_builtin"
    b = ensure_builtin(root, scale=0.05)
    cache = tmp_path_factory.getbasetemp() / "bsp_fast_genomes"
    return types.SimpleNamespace(fasta=str(b.fasta), labels=str(b.labels), cell=b.cell, builtin=b, cache=str(cache))


def data_args(tiny, *extra):
    return ["--genome", tiny.fasta, "--labels", tiny.labels, "--cell", tiny.cell, "--cache-dir", tiny.cache,
            "--batch-size", "16", "--threads", "1", "--no-progress", "--eval-batch-size", "512", *extra]


def small_model():
    return ["--model", "bigru-small", "--hidden", "8", "--region", "60", "--flank", "20"]


def test_train_writes_everything(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main(data_args(tiny, *small_model(), "--steps", "12", "--eval-every", "6", "--out", str(out)))
    assert rc == 0
    for name in ("metrics.json", "history.jsonl", "checkpoint.pt", "best.pt", "loss.png", "valid.png", "roc_pr.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for key in ("auroc", "auprc", "recall_at_fdr10", "recall_at_fdr50", "n_pos", "n_neg",
                "train_sequences_per_second", "data_wait_fraction", "config", "data"):
        assert key in m, key
    assert m["n_pos"] == tiny.builtin.stats["splits"]["test"]["B"]  # every test bin, true prevalence
    assert m["n_neg"] == tiny.builtin.stats["splits"]["test"]["U"]
    assert 0 <= m["data_wait_fraction"] <= 1 and m["train_sequences_per_second"] > 0
    assert m["data"]["labels"].endswith("GABPA.train.labels.tsv.gz")
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {h["kind"] for h in hist} == {"train", "valid"}
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 12 and {"optimizer", "sampler", "rng", "config", "model_config"} <= set(ck)
    assert ck["model_config"]["hidden"] == 8
    assert "test auROC" in capsys.readouterr().out


def _weights(path):
    return load_checkpoint(path)["model"]


def dense_model():
    return ["--model", "hybrid-dense", "--filters", "4", "--hidden", "8", "--bins-per-stretch", "12"]


@pytest.mark.parametrize("model", [small_model, dense_model], ids=["windowed", "dense"])
def test_resume_is_exact(tiny, tmp_path, model):
    common = data_args(tiny, *model(), "--eval-every", "100", "--lr-schedule", "constant", "--weight-decay", "0.01")
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main(common + ["--steps", "10", "--out", str(a)]) == 0
    assert train.main(common + ["--steps", "4", "--out", str(b)]) == 0
    assert train.main(data_args(tiny, "--steps", "10", "--out", str(b), "--resume")) == 0
    wa, wb = _weights(a / "checkpoint.pt"), _weights(b / "checkpoint.pt")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca["sampler"] == cb["sampler"] and ca["step"] == cb["step"] == 10
    steps = [json.loads(x)["step"] for x in (b / "history.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert steps == sorted(steps)  # history continues, nothing logged twice


def test_nan_loss_stops_and_keeps_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nan"
    assert train.main(data_args(tiny, *small_model(), "--steps", "3", "--out", str(out))) == 0
    before = (out / "checkpoint.pt").read_bytes()
    calls = {"n": 0}
    real = torch.nn.functional.binary_cross_entropy_with_logits

    def bce(logits, labels):
        calls["n"] += 1
        loss = real(logits, labels)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(train, "F", types.SimpleNamespace(binary_cross_entropy_with_logits=bce))
    capsys.readouterr()
    rc = train.main(data_args(tiny, "--steps", "9", "--checkpoint-minutes", "0", "--out", str(out), "--resume"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "loss became nan at step 6" in err and "last good checkpoint" in err
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 5  # checkpoints up to the last good step, none after the NaN
    assert all(math.isfinite(float(v.abs().sum())) for v in ck["model"].values())
    assert before != (out / "checkpoint.pt").read_bytes()


def _bad(capsys, argv, *needles):
    capsys.readouterr()
    rc = train.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip() and "it/s" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_bad_input(tiny, tmp_path, capsys):
    out = tmp_path / "bad"
    _bad(capsys, data_args(tiny, "--model", "lstm", "--out", str(out)), "--model", "lstm", "bigru-small")
    _bad(capsys, data_args(tiny, "--frobnicate", "--out", str(out)), "--frobnicate")
    _bad(capsys, data_args(tiny, "--out", str(out)) + ["--cell", "K562"], "--cell", "K562", "SYNTH")
    _bad(capsys, data_args(tiny, "--test-chroms", "chr1,chrX", "--out", str(out)), "--test-chroms", "chrX")
    _bad(capsys, data_args(tiny, "--test-chroms", "chr1,chr2,chr3,chr4,chr5,chr6,chr8",
                           "--valid-chroms", "chr11,chr21", "--out", str(out)), "training")
    _bad(capsys, ["--genome", str(tmp_path / "missing.fa"), "--labels", tiny.labels, "--out", str(out)],
         "--genome", "missing.fa")
    _bad(capsys, data_args(tiny, "--steps", "0", "--out", str(out)), "--steps")
    assert not out.exists()  # nothing written for a user's mistake
    # unreadable / mismatched checkpoints
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    _bad(capsys, data_args(tiny, "--resume", "--out", str(out)), "checkpoint.pt")
    assert (out / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    _bad(capsys, data_args(tiny, "--out", str(out)), "--out", "--resume")  # would overwrite a run
    good = tmp_path / "good"
    assert train.main(data_args(tiny, *small_model(), "--steps", "2", "--out", str(good))) == 0
    before = (good / "checkpoint.pt").read_bytes()
    _bad(capsys, data_args(tiny, "--resume", "--model", "cnn", "--out", str(good)), "--resume", "checkpoint.pt")
    assert (good / "checkpoint.pt").read_bytes() == before


def test_cli_dispatch(capsys):
    from bsp_fast import cli

    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert cli.main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli.main(["train", "--model", "nope", "--genome", "/nonexistent.fa"]) == 2


def test_train_from_peaks(tiny, tmp_path):
    out = tmp_path / "peaks"
    argv = ["--genome", tiny.fasta, "--peaks", str(tiny.builtin.peaks_bed), "--cache-dir", tiny.cache,
            "--batch-size", "16", "--threads", "1", "--no-progress", "--model", "cnn", "--steps", "3",
            "--out", str(out)]
    assert train.main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_pos"] > 0 and "peaks" in m["data"]


def test_train_ensemble_and_predict_from_it(tiny, tmp_path):
    """--members 2 trains an ensemble that the checkpoint rebuilds and predict scores."""
    from bsp_fast import predict
    from bsp_fast.models import Ensemble, build_model

    out = tmp_path / "ens"
    assert train.main(data_args(tiny, *small_model(), "--members", "2", "--steps", "6", "--out", str(out))) == 0
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["model_config"]["members"] == 2
    assert isinstance(build_model(**ck["model_config"]), Ensemble)
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["auprc"] <= 1.0
    preds = tmp_path / "p.tsv"
    assert predict.main(["--checkpoint", str(out / "best.pt"), "--genome", tiny.fasta, "--chroms", "chr21",
                         "--cache-dir", tiny.cache, "--threads", "1", "--no-progress", "--out", str(preds)]) == 0
    rows = preds.read_text().splitlines()
    assert len(rows) > 10 and all(0.0 <= float(r.split("\t")[3]) <= 1.0 for r in rows[:50])


def test_default_model_is_hybrid_dense(tiny, tmp_path):
    """No --model: hybrid-dense, one model; --model hybrid: the occupancy head and 100 bp flanks;
    --model hybrid --head dense: the plain hybrid (its own 50 bp flanks)."""
    out = tmp_path / "default"
    assert train.main(data_args(tiny, "--steps", "2", "--filters", "4", "--hidden", "8", "--out", str(out))) == 0
    cfg = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert (cfg["name"], cfg["flank"], cfg["members"]) == ("hybrid-dense", 100, 2)  # the real-data recipe's 2
    out = tmp_path / "hybrid"
    assert train.main(data_args(tiny, "--model", "hybrid", "--steps", "2", "--filters", "4", "--hidden", "8",
                                "--out", str(out))) == 0
    cfg = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert (cfg["name"], cfg["head"], cfg["flank"], cfg["members"]) == ("hybrid", "occupancy", 100, 1)
    out = tmp_path / "dense"
    assert train.main(data_args(tiny, "--model", "hybrid", "--steps", "2", "--filters", "4", "--hidden", "8",
                                "--head", "dense", "--out", str(out))) == 0
    cfg = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert (cfg["head"], cfg["flank"]) == ("dense", 50)


def test_dense_train_writes_everything_and_predict_scores_densely(tiny, tmp_path):
    from bsp_fast import predict
    from bsp_fast.data import Genome
    from bsp_fast.dense import score_grid
    from bsp_fast.checkpoint import model_from_checkpoint

    out = tmp_path / "dense"
    assert train.main(data_args(tiny, *dense_model(), "--steps", "8", "--eval-every", "4", "--out", str(out))) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_pos"] == tiny.builtin.stats["splits"]["test"]["B"] and m["n_neg"] == tiny.builtin.stats["splits"]["test"]["U"]
    assert m["config"]["dense"] is True and m["config"]["bins_per_stretch"] == 12 and m["config"]["positive_weight"] >= 1
    # labelled bins per second: up to 12 per sequence (A bins and bins past a chromosome's grid do not count)
    assert 0 < m["train_bins_per_second"] <= 12 * m["train_sequences_per_second"] * 1.0001
    preds = tmp_path / "p.tsv"
    assert predict.main(["--checkpoint", str(out / "best.pt"), "--genome", tiny.fasta, "--chroms", "chr21",
                         "--cache-dir", tiny.cache, "--threads", "1", "--no-progress", "--out", str(preds)]) == 0
    rows = [r.split("\t") for r in preds.read_text().splitlines()]
    g = Genome(tiny.fasta, cache_dir=tiny.cache)
    size = dict(g.chromosomes)["chr21"]
    assert len(rows) == (size - 200) // 50 + 1 and rows[1][1] == "50"
    model = model_from_checkpoint(load_checkpoint(out / "best.pt"), str(out / "best.pt"))
    # the GC inputs were centred on the training chromosomes' GC (not the default 0.5 / 0.1)
    from bsp_fast.models import gc_norm_from_codes

    member = model.members[0]  # the real-data recipe's ensemble
    norm = member.gc_norm
    assert torch.equal(model.members[1].gc_norm, norm)
    assert member.gc_windows == (100, 300, 1000) and not torch.equal(norm[0], torch.full((3,), 0.5, dtype=norm.dtype))
    train_gc = [float(gc_norm_from_codes(torch.from_numpy(g.codes(c, [0], 100_000)), (1000,), 10)[0, 0])
                for c in m["config"]["train_chroms"]]
    assert min(train_gc) - 0.02 < float(norm[0, 2]) < max(train_gc) + 0.02 and 0.01 <= float(norm[1, 2]) < 0.2
    want = 1 / (1 + np.exp(-score_grid(model, g, g.chrom_id("chr21"), 0, len(rows)).astype(np.float64)))
    np.testing.assert_allclose(np.array([float(r[3]) for r in rows]), want, rtol=1e-4, atol=1e-6)
    # a dense model scores its own grid only
    assert predict.main(["--checkpoint", str(out / "best.pt"), "--genome", tiny.fasta, "--chroms", "chr21",
                         "--cache-dir", tiny.cache, "--step", "25", "--out", str(tmp_path / "q.tsv")]) == 2


def test_dense_bad_input(tiny, tmp_path, capsys):
    assert train.main(data_args(tiny, *dense_model(), "--bins-per-stretch", "0", "--out", str(tmp_path / "x"))) == 2
    assert "--bins-per-stretch" in capsys.readouterr().err
    assert train.main(data_args(tiny, "--model", "hybrid-dense", "--head", "dense", "--out", str(tmp_path / "y"))) == 2
    assert "no option" in capsys.readouterr().err


def _resolved(tiny, *extra):
    """The RunConfig that ``train`` would run with (nothing trained)."""
    args = train.build_parser().parse_args(data_args(tiny, *extra))
    model_name, model = train.build_run_model(args, None)
    data = train.Data(train.data_args(args, None), lambda msg: None)
    info = train.D.DistInfo()
    cfg, sampler = train.resolve_config(args, None, data, model, model_name, torch.device("cpu"), info)
    return cfg, sampler, model


def test_real_data_recipe(tiny, tmp_path):
    """No length flags on real data: 2 members with dropout 0.3 (--dropout sets it), every bin seen 16 times (at least 3000 steps), 15 min,
    validation 20 times per run and by the clock, early stop after 6; a length asked for is not cut
    by the recipe's clock and does not stop early unless --patience says so."""
    cfg, sampler, model = _resolved(tiny, "--out", str(tmp_path / "a"))
    assert model.config["members"] == 2 and cfg.dense and model.config["dropout"] == 0.3
    assert cfg.total_steps == max(3000, math.ceil(16 * len(sampler)))
    assert sampler.jitter == 10 and cfg.jitter == 10
    assert cfg.max_minutes == 15.0 and cfg.patience == 6
    assert cfg.eval_every == max(1, cfg.total_steps // 20) and cfg.eval_every_s == 15.0 * 60 / 20
    assert (cfg.lr, cfg.ema, cfg.batch_size, cfg.bins_per_stretch) == (3e-3, 0.998, 16, 40)
    cfg, _, model = _resolved(tiny, "--steps", "100", "--dropout", "0.2", "--out", str(tmp_path / "b"))
    assert (cfg.total_steps, cfg.max_minutes, cfg.patience) == (100, None, None) and model.config["dropout"] == 0.2
    cfg, _, _ = _resolved(tiny, "--steps", "100", "--patience", "3", "--max-minutes", "2", "--out", str(tmp_path / "c"))
    assert (cfg.total_steps, cfg.max_minutes, cfg.patience) == (100, 2.0, 3)


def test_early_stop(tiny, tmp_path, capsys):
    """With a learning rate too small to change anything, validation never improves on the first
    one: --patience 2 stops two validations later, records why, and still tests the best model."""
    out = tmp_path / "early"
    assert train.main(data_args(tiny, *dense_model(), "--steps", "40", "--eval-every", "3", "--patience", "2",
                                "--lr", "1e-12", "--ema", "0", "--out", str(out))) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == "early stop" and m["steps"] == 9
    valid = [json.loads(l) for l in (out / "history.jsonl").read_text().splitlines() if '"valid"' in l]
    assert [v["step"] for v in valid] == [3, 6, 9] and [v["best"] for v in valid] == [True, False, False]
    assert "early stop at step 9" in capsys.readouterr().err
    assert train.main(data_args(tiny, "--patience", "-1", "--out", str(tmp_path / "x"))) == 2


def test_weight_decay_groups_and_errors(tiny, tmp_path, capsys):
    """--weight-decay: AdamW over the weight matrices only (biases and frozen motif filters keep theirs);
    0 is plain Adam; a negative value is one line, nothing written."""
    cfg, _, model = _resolved(tiny, *dense_model(), "--weight-decay", "0.05", "--out", str(tmp_path / "a"))
    assert cfg.weight_decay == 0.05 and cfg.to_json()["weight_decay"] == 0.05
    opt = train.make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    kept = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decayed | kept == {id(p) for p in model.parameters()} and not decayed & kept
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() > 1), name
    frozen = dataclasses.replace(cfg, frozen_motif_filters=2)
    opt = train.make_optimizer(model, frozen)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    convs = [m.conv.weight for m in getattr(model, "members", [model])]
    assert convs and not any(id(w) in decayed for w in convs)
    # a weight matrix with no gradient shrinks by lr * wd per step; a bias does not move
    cfg0, _, model0 = _resolved(tiny, *dense_model(), "--out", str(tmp_path / "b"))
    assert cfg0.weight_decay == 0.0 and type(train.make_optimizer(model0, cfg0)) is torch.optim.Adam
    lin = torch.nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = train.make_optimizer(lin, dataclasses.replace(cfg, frozen_motif_filters=0))
    lin.weight.grad, lin.bias.grad = torch.zeros_like(lin.weight), torch.zeros_like(lin.bias)
    opt.step()
    torch.testing.assert_close(lin.weight.detach(), w0 * (1 - cfg.lr * 0.05))
    torch.testing.assert_close(lin.bias.detach(), b0, rtol=0, atol=0)
    assert train.main(data_args(tiny, "--weight-decay", "-1", "--out", str(tmp_path / "x"))) == 2
    assert "--weight-decay" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_plateau_schedule_rates(tiny, tmp_path):
    """--lr-schedule plateau: the full rate until the decay starts (validation flat PLATEAU_EVALS
    times, or PLATEAU_LATE of the steps or clock gone), then the cosine to 5 % over a third of the
    steps so far (cut to the steps left), by steps or by the time left, whichever ends sooner."""
    cfg, _, _ = _resolved(tiny, *dense_model(), "--steps", "1000", "--lr", "0.01", "--lr-schedule", "plateau",
                          "--max-minutes", "10", "--out", str(tmp_path / "a"))
    assert cfg.lr_schedule == "plateau" and cfg.to_json()["lr_schedule"] == "plateau"
    assert all(cfg.lr_at(k, 1.0) == 0.01 for k in (0, 500, 999))
    assert cfg.plateau_decay(300, 60.0, plateaued=False) is None
    d = cfg.plateau_decay(300, 60.0, plateaued=True)
    assert (d.start_step, d.start_s, d.steps) == (300, 60.0, 100)
    assert train.LrDecay.from_json(d.to_json()) == d
    cosine = lambda f: 0.01 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))  # noqa: E731
    for k, f in ((300, 0.0), (325, 0.25), (350, 0.5), (400, 1.0), (450, 1.0)):
        assert cfg.lr_at(k, 60.0, d) == pytest.approx(cosine(f)), k
    # the clock: 540 s left at the start, so 270 s later the decay is half done whatever the step
    assert cfg.decay_fraction(301, 60.0 + 270.0, d) == pytest.approx(0.5)
    late = cfg.plateau_decay(800, 60.0, plateaued=False)  # 80 % of the steps
    assert (late.start_step, late.steps) == (800, 200)
    late = cfg.plateau_decay(900, 60.0, plateaued=True)  # a third of 900 is more than the 100 left
    assert late.steps == 100
    assert cfg.plateau_decay(10, 0.8 * 600, plateaued=False).start_s == 480.0  # 80 % of the clock
    cosine_cfg, _, _ = _resolved(tiny, *dense_model(), "--steps", "1000", "--out", str(tmp_path / "b"))
    assert cosine_cfg.plateau_decay(900, 60.0, plateaued=True) is None  # only the plateau schedule decays so


def test_plateau_schedule_run(tiny, tmp_path, capsys):
    """With a learning rate too small to change anything, validation is flat from the first one: the
    decay starts three validations later (step 12), lasts 12 // 3 steps and ends the run at step 16,
    recorded as stopped by the schedule, the decay kept in the checkpoint for a resume."""
    out = tmp_path / "plateau"
    assert train.main(data_args(tiny, *dense_model(), "--steps", "60", "--eval-every", "3", "--lr-schedule", "plateau",
                                "--lr", "1e-12", "--ema", "0", "--out", str(out))) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == "schedule" and m["steps"] == 16
    err = capsys.readouterr().err
    assert "learning rate decays from step 12 over 4 steps (validation stopped improving)" in err
    lrs = {r["step"]: r["lr"] for r in map(json.loads, (out / "history.jsonl").read_text().splitlines())
           if r["kind"] == "train"}
    # the rate each step ran at, over the rate asked for: full to step 12, then 12 + 1 .. 12 + 4 at
    # 0, 1/4, 1/2, 3/4 of the cosine
    ratio = {s: lrs[s] / 1e-12 for s in lrs}
    assert all(ratio[s] == 1.0 for s in ratio if s <= 13)
    cosine = lambda f: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f))  # noqa: E731
    assert [round(ratio[s], 6) for s in (14, 15, 16)] == [round(cosine(f), 6) for f in (0.25, 0.5, 0.75)]
    assert load_checkpoint(out / "checkpoint.pt")["lr_decay"][0::2] == [12, 4]


def test_extend_rule(tiny, tmp_path):
    """--extend: another cycle only at the end of a cosine run whose last validation is its best and
    lifts the best of all but the last three by more than EXTEND_RISE, with time left; never beyond
    --extend cycles, never for the other schedules."""
    cfg, _, _ = _resolved(tiny, *dense_model(), "--steps", "1000", "--extend", "1", "--max-minutes", "10",
                          "--out", str(tmp_path / "a"))
    assert cfg.extend == 1 and cfg.to_json()["extend"] == 1
    rising, flat = [0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.48, 0.49, 0.49, 0.5]
    d = cfg.extension(1000, 60.0, rising, cycles=0)
    assert (d.start_step, d.start_s, d.steps) == (1000, 60.0, 1000)
    assert cfg.lr_at(1000, 60.0, d) == pytest.approx(cfg.lr) and cfg.lr_at(1500, 60.0, d) < cfg.lr
    assert cfg.extension(1000, 60.0, flat, cycles=0) is None  # 0.5 - 0.48 is 4 % of 0.5
    assert cfg.extension(1000, 60.0, [0.1, 0.2, 0.6, 0.3, 0.5], cycles=0) is None  # not the best
    assert cfg.extension(1000, 60.0, rising, cycles=1) is None  # cycles used up
    assert cfg.extension(1000, 0.76 * 600, rising, cycles=0) is None  # under a quarter of the clock left
    assert cfg.extension(1000, 60.0, rising[2:], cycles=0) is None  # too few validations to tell
    cfg, _, _ = _resolved(tiny, *dense_model(), "--steps", "1000", "--out", str(tmp_path / "b"))
    assert cfg.extend == 0 and cfg.extension(1000, 60.0, rising, cycles=0) is None  # off unless asked


@pytest.mark.parametrize("rise", [None, -1.0], ids=["levelled", "rising"])
def test_extend_run(tiny, tmp_path, monkeypatch, capsys, rise):
    """At the end of the cosine the loop validates once (not again in the final evaluation); where the
    rule says so (forced here: no rise needed) it trains another cycle of the same length with the rate
    restarted, and stops after --extend cycles."""
    if rise is not None:
        monkeypatch.setattr(train, "EXTEND_RISE", rise)
    out = tmp_path / "x"
    assert train.main(data_args(tiny, *dense_model(), "--steps", "8", "--eval-every", "2", "--extend", "1",
                                "--lr", "1e-12", "--ema", "0", "--out", str(out))) == 0
    m = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    valid = [r["step"] for r in rows if r["kind"] == "valid"]
    lrs = {r["step"]: r["lr"] / 1e-12 for r in rows if r["kind"] == "train"}
    if rise is None:
        assert m["steps"] == 8 and m["stopped_by"] == "steps" and valid == [2, 4, 6, 8]
    else:
        assert m["steps"] == 16 and m["stopped_by"] == "steps" and valid == [2, 4, 6, 8, 10, 12, 14, 16]
        assert lrs[9] == pytest.approx(1.0) and lrs[8] < 0.2 and lrs[16] < 0.2  # restarted, decayed again
        assert "another 8 steps, the learning rate restarted (--extend, cycle 1 of 1)" in capsys.readouterr().err
        assert load_checkpoint(out / "checkpoint.pt")["extend_cycles"] == 1
