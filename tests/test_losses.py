"""bsp_fast.losses: the focal loss against its definition and against BCE at gamma 0."""

import pytest
import torch
import torch.nn.functional as F

from bsp_fast.losses import binary_focal_loss_with_logits


def _data(n=257, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) * 4, (torch.rand(n, generator=g) < 0.2).double()


@pytest.mark.parametrize("pos_weight", [None, 9.0])
def test_gamma_zero_is_bce(pos_weight):
    z, y = _data()
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float64)
    torch.testing.assert_close(binary_focal_loss_with_logits(z, y, 0.0, pos_weight),
                               F.binary_cross_entropy_with_logits(z, y, pos_weight=pw))


@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("pos_weight", [None, 9.0])
def test_matches_definition(gamma, pos_weight):
    z, y = _data(seed=1)
    p = torch.sigmoid(z)
    pt = torch.where(y > 0.5, p, 1 - p)
    w = torch.ones_like(z) if pos_weight is None else torch.where(y > 0.5, pos_weight, 1.0)
    want = (-w * (1 - pt) ** gamma * torch.log(pt)).mean()
    torch.testing.assert_close(binary_focal_loss_with_logits(z, y, gamma, pos_weight), want)


def test_easy_examples_weigh_less_and_extremes_stay_finite():
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    z = torch.tensor([6.0, -6.0, -6.0, 6.0], requires_grad=True)  # easy, hard, easy, hard
    (g,) = torch.autograd.grad(binary_focal_loss_with_logits(z, y, 2.0), z)
    (gb,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(z, y), z)
    # the hard examples keep (almost) their BCE gradient, the easy ones lose nearly all of it
    assert g[1].abs() > 0.9 * gb[1].abs() and g[3].abs() > 0.9 * gb[3].abs()
    assert g[0].abs() < 1e-3 * gb[0].abs() and g[2].abs() < 1e-3 * gb[2].abs()
    big = torch.tensor([1e4, -1e4, 1e4, -1e4], requires_grad=True)
    loss = binary_focal_loss_with_logits(big, y, 2.0, 9.0)
    (gbig,) = torch.autograd.grad(loss, big)
    assert torch.isfinite(loss) and torch.isfinite(gbig).all()


def test_negative_gamma_refused():
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        binary_focal_loss_with_logits(torch.zeros(2), torch.zeros(2), -1.0)
