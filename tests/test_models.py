"""bsp_fast.models: the contract (codes in, one logit out, config rebuilds, first_conv), layouts, RC."""

import pytest
import torch

from bsp_fast.models import (DEFAULTS, MODEL_NAMES, build_model, occupancy_logit, one_hot, revcomp_codes, seq_len,
                             window_offset)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_contract(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    length = seq_len(model.config)
    codes = torch.randint(0, 5, (3, length), dtype=torch.uint8)
    out = model(codes)
    assert out.shape == (3,) and out.dtype == torch.float32
    torch.testing.assert_close(model(codes.long()), out)
    clone = build_model(**model.config).eval()
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone(codes), out)
    assert (model.first_conv is None) == (name.startswith("bigru"))
    if model.first_conv is not None:
        assert isinstance(model.first_conv, torch.nn.Conv1d) and model.first_conv.in_channels == 4
    # gradients reach every parameter
    model.train()
    model(codes).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layouts_and_defaults():
    big = build_model("bigru")
    assert (big.config["region"], big.config["flank"], big.config["hidden"]) == (200, 100, 128)
    assert big.config["dropout"] == 0.1 and seq_len(big.config) == 400 and window_offset(big.config) == -100
    small = build_model("bigru-small")
    assert (small.config["hidden"], seq_len(small.config)) == (32, 80)  # the thesis' small net: 20 + 40 + 20
    assert window_offset(small.config) == 60  # centred on a 200 bp bin
    custom = build_model("bigru-small", region=100, flank=50, hidden=8)
    assert seq_len(custom.config) == 200 and custom.gru.hidden_size == 8
    assert set(DEFAULTS) == {"bigru", "bigru-small", "cnn", "hybrid", "hybrid-dense"}


def test_bad_options():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lstm")
    with pytest.raises(ValueError, match="no option"):
        build_model("cnn", hidden=3)
    with pytest.raises(ValueError, match="dropout"):
        build_model("bigru", dropout=0.9 + 0.2)
    with pytest.raises(ValueError, match="shorter"):
        build_model("bigru-small")(torch.zeros(2, 30, dtype=torch.uint8))
    with pytest.raises(TypeError):
        build_model("cnn")(torch.zeros(2, 400))


def test_one_hot_and_revcomp():
    codes = torch.tensor([[0, 1, 2, 3, 4]], dtype=torch.uint8)
    oh = one_hot(codes)
    assert oh.shape == (1, 5, 4)
    torch.testing.assert_close(oh[0, :4], torch.eye(4))
    assert oh[0, 4].abs().sum() == 0  # N is an all-zero row
    assert revcomp_codes(codes).tolist() == [[4, 0, 1, 2, 3]]  # reversed AND complemented
    assert revcomp_codes(revcomp_codes(codes)).tolist() == codes.tolist()


@pytest.mark.parametrize("name", ["bigru-small", "hybrid"])
def test_rc_average_is_strand_symmetric(name):
    torch.manual_seed(1)
    model = build_model(name, rc_average=True).eval()
    codes = torch.randint(0, 4, (4, seq_len(model.config)), dtype=torch.uint8)
    torch.testing.assert_close(model(codes), model(revcomp_codes(codes)), rtol=1e-4, atol=1e-5)
    plain = build_model(name, rc_average=False).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(codes), plain(revcomp_codes(codes)))


def test_bigru_reads_flanks_by_direction():
    """A 1-layer bigru: the forward state at the region end never sees the right flank and vice versa,
    so the logit depends on the flanks only through the direction coming from that side."""
    torch.manual_seed(2)
    model = build_model("bigru-small", layers=1, region=10, flank=5, dropout=0.0).eval()
    h = model.hidden
    codes = torch.randint(0, 4, (2, 20), dtype=torch.uint8)
    feats = {}

    def hook(_m, inp, _out):
        feats["x"] = inp[0].detach().clone()

    model.head.register_forward_hook(hook)
    model(codes)
    base = feats["x"]
    right = codes.clone()
    right[:, -3:] = (right[:, -3:] + 1) % 4  # change the right flank
    model(right)
    torch.testing.assert_close(feats["x"][:, :h], base[:, :h])  # forward half unchanged
    assert not torch.allclose(feats["x"][:, h:], base[:, h:])
    left = codes.clone()
    left[:, :3] = (left[:, :3] + 1) % 4
    model(left)
    torch.testing.assert_close(feats["x"][:, h:], base[:, h:])  # backward half unchanged
    assert not torch.allclose(feats["x"][:, :h], base[:, :h])


def test_rc_conv_scans_both_strands():
    torch.manual_seed(3)
    cnn = build_model("cnn").eval()  # rc_conv on by default: both strands scanned
    codes = torch.randint(0, 4, (4, 400), dtype=torch.uint8)
    torch.testing.assert_close(cnn(codes), cnn(revcomp_codes(codes)), rtol=1e-4, atol=1e-5)
    one = build_model("cnn", rc_conv=False).eval()
    one.load_state_dict(cnn.state_dict())
    assert not torch.allclose(one(codes), one(revcomp_codes(codes)))


@pytest.mark.parametrize("name", ["cnn", "bigru-small", "hybrid"])
def test_ensemble_members(name):
    """members=k: k independently initialised copies; [k, B] logits in training, their mean in evaluation."""
    torch.manual_seed(1)
    ens = build_model(name, members=3, dropout=0.0)
    assert len(ens.members) == 3 and ens.config["members"] == 3 and ens.name == name
    w = [next(m.parameters()).detach() for m in ens.members]
    assert not torch.equal(w[0], w[1])  # own initialisations
    codes = torch.randint(0, 5, (4, seq_len(ens.config)), dtype=torch.uint8)
    ens.train()
    out = ens(codes)
    assert out.shape == (3, 4)
    ens.eval()
    mean = ens(codes)
    assert mean.shape == (4,)
    torch.testing.assert_close(mean, torch.stack([m(codes) for m in ens.members]).mean(0))
    clone = build_model(**ens.config).eval()
    clone.load_state_dict(ens.state_dict())
    torch.testing.assert_close(clone(codes), mean)
    assert ens.first_conv is ens.members[0].first_conv
    assert ens.min_length() == ens.members[0].min_length()
    ens.rc_average = True
    assert all(m.rc_average for m in ens.members)
    assert type(build_model(name, members=1)).__name__ != "Ensemble"
    with pytest.raises(ValueError, match="members"):
        build_model(name, members=0)


def test_hybrid_center_max_sees_where_the_site_is():
    """center_max adds each filter's best match in the region's middle half; the global max cannot
    tell a site there from one in the flank, the centre pool can."""
    torch.manual_seed(0)
    m = build_model("hybrid", center_max=True, filters=4, kernel_size=5).eval()
    assert m.mlp[0].in_features == 2 * m.hidden + 2 * 4
    L = seq_len(m.config)  # 50 + 200 + 50
    with torch.no_grad():
        m.conv.weight.zero_()
        m.conv.bias.zero_()
        m.conv.weight[0, 0, :] = 1.0  # filter 0 fires on AAAAA
    captured = {}
    m.mlp.register_forward_hook(lambda mod, inp, out: captured.__setitem__("feat", inp[0]))
    codes = torch.full((2, L), 2, dtype=torch.uint8)  # G everywhere
    codes[0, 150:155] = 0  # the region's centre
    codes[1, 10:15] = 0  # the left flank
    m(codes)
    feat = captured["feat"]
    glob = feat[:, 2 * m.hidden : 2 * m.hidden + 4]
    cent = feat[:, 2 * m.hidden + 4 :]
    assert glob[0, 0] == glob[1, 0] > 0  # both see the site somewhere
    assert cent[0, 0] > 0 and cent[1, 0] == 0  # only the centred one is in the middle half


def _occupancy_direct(a, centres, flank, length):
    """log(1 - prod_middle(1 - p)) - sum_region log(1 - p), straight from the definition in float64."""
    p = torch.sigmoid(a.double())
    region = length - 2 * flank
    middle = (centres >= flank + region // 4) & (centres < flank + 3 * region // 4)
    inside = (centres >= flank) & (centres < flank + region)
    p_bound = 1 - torch.prod(torch.where(middle, 1 - p, torch.ones_like(p)), dim=1)
    p_free = torch.prod(torch.where(inside, 1 - p, torch.ones_like(p)), dim=1)
    return torch.log(p_bound) - torch.log(p_free)


@pytest.mark.parametrize("n,flank,length", [(400, 100, 400), (37, 3, 50), (50, 100, 400)])
def test_occupancy_logit_matches_its_definition(n, flank, length):
    torch.manual_seed(n)
    a = torch.randn(5, n) * 3 - 4
    centres = torch.arange(n) * (length // n) + (length // n) // 2
    got = occupancy_logit(a, centres, flank, length)
    torch.testing.assert_close(got.double(), _occupancy_direct(a, centres, flank, length), rtol=1e-4, atol=1e-4)
    # gradients stay finite even where every site is all but certainly free (P(B) -> 0)
    a = torch.full((2, n), -30.0, requires_grad=True)
    occupancy_logit(a, centres, flank, length).sum().backward()
    assert torch.isfinite(a.grad).all()


@pytest.mark.parametrize("name", ["cnn", "hybrid"])
def test_occupancy_head_contract_and_where_sites_count(name):
    """head='occupancy': one logit per sequence; a strong site in the middle half of the region raises
    it, the same site in a flank (outside the region) leaves it unchanged."""
    torch.manual_seed(0)
    m = build_model(name, head="occupancy", flank=100, filters=4, kernel_size=5, dropout=0.0).eval()
    L = seq_len(m.config)
    assert not hasattr(m, "mlp")  # no unused dense head
    with torch.no_grad():
        m.conv.weight.zero_()
        m.conv.bias.zero_()
        m.conv.weight[0, 0, :] = 1.0  # filter 0 fires on AAAAA (on both strands: TTTTT too)
    codes = torch.full((3, L), 2, dtype=torch.uint8)  # G everywhere: no filter fires
    codes[1, 196:201] = 0  # AAAAA in the middle of the region [100, 300)
    codes[2, 10:15] = 0  # the same in the left flank
    m.train()  # gradients reach every parameter
    m(codes).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    # make the site head read filter 0's response (whatever else it learnt)
    site = m.site
    with torch.no_grad():
        for layer in (site[0], site[3]):
            layer.weight.zero_()
        site[0].weight[0, 0, :] = 1.0
        site[0].bias.fill_(0.0)
        site[3].weight[0, 0, 0] = 20.0
        site[3].bias.fill_(-10.0)
    out = m(codes)
    assert out[1] > out[0] + 5  # a site in the bin's middle: bound is far more likely
    torch.testing.assert_close(out[2], out[0])  # a site outside the region counts for nothing


def test_occupancy_options_checked():
    with pytest.raises(ValueError, match="head"):
        build_model("hybrid", head="attention")
    with pytest.raises(ValueError, match="center_max"):
        build_model("hybrid", head="occupancy", center_max=True)
    with pytest.raises(ValueError, match="no option"):
        build_model("bigru", head="occupancy")
    ens = build_model("hybrid", head="occupancy", members=2, filters=4)
    codes = torch.randint(0, 4, (3, seq_len(ens.config)), dtype=torch.uint8)
    assert ens.train()(codes).shape == (2, 3) and ens.eval()(codes).shape == (3,)


@pytest.mark.parametrize("opts", [dict(head="occupancy", flank=100, members=2), dict(), dict(center_max=True),
                                  dict(kernel_size=18), dict(rc_conv=False)])
def test_hybrid_both_strands_from_one_convolution(opts):
    """hybrid's rc_average reuses the convolution for the reverse strand: the same as scoring it anew."""
    from bsp_fast.models import _Base, revcomp_codes

    torch.manual_seed(0)
    m = build_model("hybrid", **opts).eval()
    x = torch.randint(0, 5, (6, 400), dtype=torch.uint8)
    members = m.members if hasattr(m, "members") else [m]
    with torch.no_grad():
        want = torch.stack([0.5 * (k.logits(x) + k.logits(revcomp_codes(x))) for k in members]).mean(0)
        plain = torch.stack([_Base.rc_mean_logits(k, x) for k in members]).mean(0)
        got = m(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, want, rtol=1e-5, atol=1e-5)


def test_hybrid_occupancy_evaluation_skips_the_flanks():
    """At evaluation the hybrid's site head runs only on positions inside the region: same logits."""
    from bsp_fast.models import occupancy_logit

    torch.manual_seed(0)
    m = build_model("hybrid", head="occupancy", flank=100, rc_average=False).eval()
    x = torch.randint(0, 5, (4, 400), dtype=torch.uint8)
    with torch.no_grad():
        got = m(x)
        h = one_hot(x).transpose(1, 2)
        c = torch.relu(m.conv(h)) + torch.relu(m.conv(h.flip(1).flip(2))).flip(2)
        p = m.pool(c)
        y = m.gru(p.transpose(1, 2).contiguous())[0]
        a = m.site(torch.cat([p, y.transpose(1, 2)], 1)).squeeze(1)  # every position
        centres = torch.arange(a.shape[1]) * m.pool_size + m.pool_size // 2
        want = occupancy_logit(a, centres, 100, 400)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
