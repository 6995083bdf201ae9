"""The vanishing-gradient study: the behaviour the exercise sheet asks about, deterministically."""

import json

import numpy as np
import pytest
import torch

from bsp_fast import gradients as G


@pytest.fixture(autouse=True, scope="module")  # before the module-scoped fixtures too
def _one_thread():
    """Small tensors: one torch thread is fastest, and the 2-core machine is shared (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mlp():
    return G.mlp_study(depth=20, width=64, seed=0)


def test_sigmoid_first_layer_gradient_orders_of_magnitude_below_last(mlp):
    w = mlp["sigmoid plain"]["weight_grad"]
    assert w[0] < 1e-6 * w[-1]
    assert np.all(np.diff(np.log10(w)) > 0)  # monotone decay towards the input


def test_skip_connections_and_batchnorm_keep_layers_within_a_small_factor(mlp):
    for act in G.ACTIVATIONS:
        for var in ("skip", "batchnorm+skip"):
            g = mlp[f"{act} {var}"]
            assert g["act_grad"].max() / g["act_grad"].min() < 10, (act, var)
            assert g["weight_grad"].max() / g["weight_grad"].min() < 100, (act, var)
        plain = mlp[f"{act} plain"]["weight_grad"]
        skip = mlp[f"{act} skip"]["weight_grad"]
        assert skip.max() / skip.min() < 1e-2 * plain.max() / plain.min()
    bn = mlp["sigmoid batchnorm"]["weight_grad"]
    assert bn.max() / bn.min() < 10


def test_deterministic():
    a = G.mlp_layer_gradients("elu", "batchnorm", depth=5, seed=3)
    b = G.mlp_layer_gradients("elu", "batchnorm", depth=5, seed=3)
    np.testing.assert_array_equal(a["weight_grad"], b["weight_grad"])
    r1 = G.rnn_state_gradients("gru", steps=30, hidden=8, seed=1)
    r2 = G.rnn_state_gradients("gru", steps=30, hidden=8, seed=1)
    np.testing.assert_array_equal(r1, r2)


def test_gru_keeps_the_gradient_at_t0_far_above_elman():
    elman = G.rnn_state_gradients("elman", steps=400, hidden=32, batch=4, seed=0)
    gru = G.rnn_state_gradients("gru", steps=400, hidden=32, batch=4, seed=0)
    assert len(elman) == len(gru) == 400
    assert elman[0] > 0 and gru[0] > 0  # float64: no underflow to zero
    assert gru[0] > 1e6 * elman[0]
    assert elman[0] < 1e-20 * elman[-1]  # the Elman RNN's gradient vanishes over 400 steps


def test_command_writes_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "g"
    assert G.main(["--out", str(out), "--depth", "6", "--steps", "40", "--hidden", "8"]) == 0
    for f in ("summary.md", "summary.tsv", "rnn_summary.tsv", "mlp_gradients.tsv", "rnn_gradients.tsv",
              "summary.json", "mlp_gradients.png", "rnn_gradients.png"):
        assert (out / f).stat().st_size > 0, f
    s = json.loads((out / "summary.json").read_text())
    assert len(s["mlp"]) == len(G.ACTIVATIONS) * len(G.VARIANTS)
    assert {r["model"] for r in s["rnn"]} == set(G.RNN_MODELS)
    lines = (out / "mlp_gradients.tsv").read_text().splitlines()
    assert lines[0] == "variant\tlayer\tweight_grad\tact_grad" and len(lines) == 1 + 12 * 6
    assert "| sigmoid plain |" in capsys.readouterr().out


def test_bad_flags(tmp_path, capsys):
    assert G.main(["--out", str(tmp_path), "--depth", "1"]) == 2
    assert "--depth" in capsys.readouterr().err
