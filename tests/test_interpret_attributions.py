"""interpret.attributions: ISM, integrated gradients (captum), DeepLIFT/SHAP (tangermeme) on planted
sites; completeness (sum of attributions vs f(x) - f(reference)); the models DeepLIFT cannot cover."""

import numpy as np
import pytest
import torch

from bsp_fast.cv import train_model
from bsp_fast.interpret import attributions as A
from bsp_fast.models import build_model
from bsp_fast.seqsets import encode

pytest.importorskip("captum")
pytest.importorskip("tangermeme")

PLANT = "CCGGAAGTGC"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _planted(n=400, length=60, seed=0):
    """Random sequences; every other one carries PLANT at a random position (recorded)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    labels = (np.arange(n) % 2).astype(np.int64)
    at = np.full(n, -1)
    for i in np.flatnonzero(labels):
        at[i] = int(rng.integers(5, length - len(PLANT) - 5))
        codes[i, at[i]:at[i] + len(PLANT)] = encode(PLANT)
    return codes, labels, at


@pytest.fixture(scope="module")
def trained():
    """A small dense-head cnn trained on the planted set (~2 s on one core), rc_average on."""
    codes, labels, at = _planted()
    torch.manual_seed(0)
    model = build_model("cnn", region=60, flank=0, filters=8, kernel_size=10, dense=8, rc_average=True)
    train_model(model, codes, labels, epochs=8, batch_size=32, lr=5e-3, seed=0)
    return model.eval(), codes, labels, at


def _inside_outside(attr, at):
    """Mean per-position attribution inside the planted core vs outside, over the planted sequences."""
    per_pos = attr.sum(axis=1)  # [N, L]
    inside, outside = [], []
    for i, a in enumerate(at):
        if a < 0:
            continue
        mask = np.zeros(per_pos.shape[1], dtype=bool)
        mask[a:a + len(PLANT)] = True
        inside.append(per_pos[i, mask].mean())
        outside.append(per_pos[i, ~mask].mean())
    return np.mean(inside), np.mean(outside)


def test_one_hot_and_forward_one_hot_agree(trained):
    model, codes, _, _ = trained
    c = codes[:5].copy()
    c[0, 3:7] = 4  # N bases: all-zero columns
    X = A.one_hot_codes(c)
    assert X.shape == (5, 4, 60) and (X[0, :, 3:7] == 0).all() and (X[1].sum(0) == 1).all()
    with torch.no_grad():
        np.testing.assert_allclose(model.forward_one_hot(torch.from_numpy(X)).numpy(),
                                   model(torch.from_numpy(c)).numpy(), atol=1e-6)


def test_ism_batches_equal_one_batch(trained):
    model, codes, _, _ = trained
    r1, d1 = A.ism(model, codes[:3], batch_size=7)
    r2, d2 = A.ism(model, codes[:3], batch_size=4096)
    np.testing.assert_allclose(d1, d2, atol=1e-5)
    np.testing.assert_allclose(r1, r2, atol=1e-6)


def test_integrated_gradients_peak_on_sites_and_complete(trained):
    model, codes, labels, at = trained
    sel = np.arange(40)
    att = A.integrated_gradients(model, A.one_hot_codes(codes[sel]), n_steps=64, batch_size=16)
    assert att.attr.shape == att.hypothetical.shape == (40, 4, 60)
    assert (att.attr[A.one_hot_codes(codes[sel]) == 0] == 0).all()  # only observed bases carry attribution
    inside, outside = _inside_outside(att.attr, at[sel])
    # measured: inside ~0.3-0.5 logit per base, outside ~0.00-0.02: require a clear 5x margin
    assert inside > 0.1 and inside > 5 * abs(outside), (inside, outside)
    # completeness (64 Gauss-Legendre points): measured max |delta| 0.012 logit, median relative 0.4 %
    # (relative: |delta| / |f(x) - f(0)|; up to 10 % where f(x) ~ f(0)); tolerances 0.05 logit and 2 %
    assert np.abs(att.delta).max() < 0.05, np.abs(att.delta).max()
    assert np.median(att.relative_delta()) < 0.02, np.median(att.relative_delta())
    np.testing.assert_allclose(att.attr.reshape(40, -1).sum(1) - (att.output - att.reference_output), att.delta,
                               atol=1e-6)


def test_deep_lift_shap_peaks_on_sites_and_is_complete(trained):
    model, codes, _, at = trained
    sel = np.arange(20)
    with torch.no_grad():  # the DeepLIFT view is the model
        X = torch.from_numpy(A.one_hot_codes(codes[sel]))
        np.testing.assert_allclose(A.DeepLiftCNN(model)(X)[:, 0].numpy(), model(torch.from_numpy(codes[sel])).numpy(),
                                   atol=1e-5)
    att = A.deep_lift_shap(model, A.one_hot_codes(codes[sel]), n_shuffles=10, seed=0)
    inside, outside = _inside_outside(att.attr, at[sel])
    assert inside > 0.1 and inside > 5 * abs(outside), (inside, outside)
    # DeepLIFT is exact up to float rounding: measured |delta| < 1e-6; tolerance 1e-4 logit
    assert np.abs(att.delta).max() < 1e-4, att.delta
    # hypothetical * one-hot = attributions
    np.testing.assert_allclose(att.hypothetical * att.ohe, att.attr)


def test_deep_lift_shap_ensemble_of_cnns():
    torch.manual_seed(1)
    model = build_model("cnn", region=30, flank=0, filters=4, kernel_size=6, dense=4, members=2).eval()
    codes = np.random.default_rng(3).integers(0, 4, size=(4, 30)).astype(np.uint8)
    assert A.deeplift_blocker(model) is None
    att = A.deep_lift_shap(model, A.one_hot_codes(codes), n_shuffles=5)
    assert np.abs(att.delta).max() < 1e-4


@pytest.mark.parametrize("name, opts, needle", [
    ("hybrid", dict(region=40, flank=10, filters=4, hidden=4), "FusedBiGRU"),
    ("bigru-small", dict(hidden=4), "FusedBiGRU"),
    ("hybrid-dense", dict(filters=4, hidden=4, dense=4), "hybrid-dense model's FusedBiGRU"),
    ("cnn", dict(region=40, flank=10, filters=4, kernel_size=5, head="occupancy"), "occupancy head"),
    ("cnn", dict(region=40, flank=10, filters=4, kernel_size=5, head="occupancy", members=2), "ensemble of 2"),
])
def test_deep_lift_shap_names_the_blocking_op(name, opts, needle):
    model = build_model(name, **opts).eval()
    X = A.one_hot_codes(np.zeros((1, 60), dtype=np.uint8))
    with pytest.raises(A.UnsupportedModel, match=needle) as info:
        A.deep_lift_shap(model, X)
    assert "--method ig" in str(info.value)


def test_integrated_gradients_through_the_fused_gru_and_occupancy_head():
    """The default model's kind (hybrid, occupancy head): IG runs through FusedBiGRU and the head's
    log/prod pooling; measured relative deltas ~2e-4 (64 points); tolerance 2 %."""
    torch.manual_seed(0)
    model = build_model("hybrid", region=40, flank=10, filters=4, hidden=4, dense=4, head="occupancy",
                        members=2).eval()  # an ensemble, as the default run trains
    codes = np.random.default_rng(0).integers(0, 5, size=(3, 60)).astype(np.uint8)
    att = A.integrated_gradients(model, A.one_hot_codes(codes))
    assert np.abs(att.delta).max() <= 0.02 * np.abs(att.output - att.reference_output).max() + 1e-6
