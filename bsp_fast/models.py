"""The models: ``bigru`` (the thesis' large net done right), ``bigru-small``, ``cnn``, ``hybrid``.

Every model takes DNA codes ``[B, L]`` (uint8 or int64; A=0 C=1 G=2 T=3 N=4) and returns one
logit per sequence ``[B]`` (float32). ``model.config`` rebuilds the model
(``build_model(**model.config)``); ``model.first_conv`` is the first ``nn.Conv1d`` or None.

Sequence layout for the region models: ``flank + region + flank`` bases. A 200 bp label bin
starting at ``s`` is read as the window centred on the bin, ``s + (200 - region) / 2 - flank``
onwards (see :func:`window_offset`).

``bigru`` / ``bigru-small``
    one-hot -> 2-layer :class:`~bsp_fast.gru.FusedBiGRU` -> the forward direction's output at the
    last base of the region (it has read the left flank and the region) and the backward
    direction's output at the first base of the region (it has read the right flank and the region,
    from the right) concatenated -> dropout -> Linear -> logit. This is what the thesis' two GRUs
    did (each flank read only by the direction coming from its side), done in one bidirectional
    pass with shared batching. The thesis reversed the right-hand sequence without complementing
    it; here a bidirectional pass reads the same strand both ways and the proper reverse complement
    enters as data (reverse-complement augmentation in the sampler, and ``rc_average`` at
    evaluation, which scores ``revcomp(codes)`` as well and averages the logits).
    ``bigru``: H=128, 100 + 200 + 100 bp. ``bigru-small``: H=32, 20 + 40 + 20 = 80 bp (the thesis'
    small net: 40 bp regions with exactly 20 bp flanks).
    Sequences of another length L are read with the region ``[flank, L - flank)``.
``cnn``
    DeepBind-like: Conv1d(4 -> filters, kernel_size) -> ReLU -> global max pool -> Linear ->
    ReLU -> dropout -> Linear -> logit (``mean_pool``: the mean of each filter joins its max, as in
    DeepBind's average pooling). Any length >= kernel_size.
``hybrid``
    DanQ / FactorNet style: Conv1d -> ReLU -> MaxPool(pool) -> dropout -> 1-layer FusedBiGRU ->
    [last forward state, last backward state, global max of each conv filter] -> Linear -> ReLU ->
    Linear -> logit. Defaults: 50 + 200 + 50 bp, 32 filters of 19 bp, H=64, scored as the mean of
    both strands at evaluation (``rc_average``). The default model of ``python -m bsp_fast.train``,
    which uses it with ``head="occupancy"`` and 100 bp flanks.

Heads (``head``, cnn and hybrid): ``"dense"`` as above; ``"occupancy"`` gives every position (the cnn's
bases, the hybrid's pooled steps) a binding-site logit from its features (the cnn: its filters and
their mean within +-``context`` bp; the hybrid: its pooled filters and GRU states) and pools them the
way ENCODE-DREAM bins are labelled (:func:`occupancy_logit`): bound when a site is bound in the middle
half of the region, unbound when none is in the region. Made for scoring 200 bp bins; for sequence
sets, where a site anywhere makes a positive, the dense head fits.

Options (``build_model(name, **options)``; unknown options raise ValueError): ``region``,
``flank``, ``hidden``, ``layers``, ``dropout``, ``filters``, ``kernel_size``, ``pool``,
``dense``, ``rc_conv`` (cnn, hybrid: every filter scans both strands, ReLU responses summed; default on),
``head``, ``context``, ``rc_average``, ``gc_windows`` (hybrid-dense: the GC fraction of these many bp
around each site joins the site head's inputs; ``()`` for none), ``members`` (an :class:`Ensemble` of that many independently initialised copies,
trained side by side and averaged at evaluation; default 1).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

__all__ = ["MODEL_NAMES", "DEFAULTS", "Ensemble", "build_model", "model_from_config", "gc_features", "gc_norm_from_codes", "one_hot", "revcomp_codes", "window_offset", "seq_len"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "bigru": dict(region=200, flank=100, hidden=128, layers=2, dropout=0.1, rc_average=False),
    "bigru-small": dict(region=40, flank=20, hidden=32, layers=2, dropout=0.1, rc_average=False),
    "cnn": dict(region=200, flank=100, filters=64, kernel_size=24, dense=32, dropout=0.1, rc_conv=True,
                mean_pool=False, rc_average=False, head="dense", context=100),
    # hybrid: 50 bp flanks hold the CpG context of sites in the bin; 32 filters and averaging with the
    # reverse strand generalise better than 64 filters / 100 bp flanks on the built-in data set
    "hybrid": dict(region=200, flank=50, filters=32, kernel_size=19, pool=8, hidden=64, dense=64,
                   dropout=0.1, rc_conv=True, rc_average=True, center_max=False, head="dense"),
    # hybrid-dense: the occupancy hybrid read over a whole stretch (every 50 bp bin of it in one
    # pass); pool 10 divides the 50 bp step, so every bin sees the same pooled grid
    "hybrid-dense": dict(region=200, flank=100, filters=32, kernel_size=19, pool=10, hidden=64, dense=64,
                         dropout=0.1, rc_average=True, step=50, gc_windows=(100, 300, 1000)),
}
# options added after checkpoints were written: a saved config without one had this value
# (:func:`model_from_config`)
_PREDATING = {"hybrid-dense": {"gc_windows": ()}}
MODEL_NAMES = tuple(DEFAULTS)
HEADS = ("dense", "occupancy")

_ONE_HOT_TABLE = torch.cat([torch.eye(4), torch.zeros(1, 4)])  # code 4 (N) -> all-zero row


def one_hot(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B, L] codes -> [B, L, 4] one-hot (A, C, G, T columns; N all zero)."""
    table = _ONE_HOT_TABLE.to(device=codes.device, dtype=dtype)
    return table[codes.long().clamp_(0, 4)]


def revcomp_codes(codes: torch.Tensor) -> torch.Tensor:
    """Reverse complement of [B, L] codes (A<->T, C<->G, N stays N), same dtype."""
    c = codes.flip(-1)
    return torch.where(c < 4, 3 - c, c)


def seq_len(config: dict[str, Any]) -> int:
    """Bases a model reads per sample: flank + region + flank."""
    return int(config["flank"]) * 2 + int(config["region"])


def window_offset(config: dict[str, Any], bin_size: int = 200) -> int:
    """Offset of a model's input window from a label bin's start (the window is centred on the bin)."""
    return (int(bin_size) - int(config["region"])) // 2 - int(config["flank"])


def _gru_class():
    try:
        from bsp_fast.gru import FusedBiGRU  # noqa: WPS433

        return FusedBiGRU, True
    except Exception as exc:  # pragma: no cover - only while the fused GRU is missing
        warnings.warn(f"bsp_fast.gru.FusedBiGRU unavailable ({exc}); falling back to nn.GRU", RuntimeWarning)
        return None, False


def _make_gru(input_size: int, hidden: int, layers: int, dropout: float) -> nn.Module:
    cls, fused = _gru_class()
    if fused:
        return cls(input_size, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)
    return nn.GRU(input_size, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                  batch_first=True, bidirectional=True)


def strand_conv(conv: nn.Conv1d, x: torch.Tensor, both: bool) -> torch.Tensor:
    """``ReLU(conv)`` over one-hot ``x`` [B, 4, L]; with ``both``, plus ``ReLU(conv)`` over the reverse
    complement, aligned back to the forward coordinates (DeepBind's scan of both strands: a filter
    finds its motif on either strand, so each motif needs learning once). The two strands' responses
    are summed after the ReLU rather than max-ed: the same strand symmetry, and on CPU the backward
    pass is 2-3x cheaper than that of an element-wise maximum."""
    y = torch.relu(conv(x))
    if not both:
        return y
    # one-hot columns A C G T: complement = reversed columns
    return y + torch.relu(conv(x.flip(1).flip(2))).flip(2)


def both_strands_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """:func:`strand_conv` with ``both`` as ONE convolution: [B, 4, L] one-hot -> [B, F, L_out].

    The reverse strand's response to a filter is the forward strand's response to the filter
    reverse-complemented (positions reversed, channels A C G T reversed), aligned as strand_conv
    aligns it; so both strands are one Conv1d with 2F filters ``[W, rc(W)]`` whose two ReLU halves
    are summed: no flipped copies of the input and output (1.5x faster in inference on this CPU).
    ``strand_conv`` is the reference the tests hold it to.
    """
    w = torch.cat([conv.weight, conv.weight.flip(1).flip(2)], 0)
    b = conv.bias.repeat(2) if conv.bias is not None else None
    # in place: the convolution's backward does not need its output
    y = nn.functional.conv1d(x, w, b, stride=conv.stride, padding=conv.padding).relu_()
    f = conv.out_channels
    return y[:, :f] + y[:, f:]


def bin_logits_from_sites(site_logits: torch.Tensor, first_site: int, sites_per_bin: int, sites_per_step: int,
                          n_bins: int) -> torch.Tensor:
    """Every bin's :func:`occupancy_logit` from one row of site logits, by prefix sums: [B, T] -> [B, n_bins].

    Bin j covers sites ``[b_j, b_j + sites_per_bin)`` with ``b_j = first_site + j * sites_per_step``;
    its middle half is ``[b_j + sites_per_bin // 4, b_j + 3 * sites_per_bin // 4)``. The log-free sums
    run in float64: over a long stretch the prefix sums grow while a bin's share stays small.
    """
    a = site_logits.double()
    cs = nn.functional.pad(nn.functional.logsigmoid(-a).cumsum(1), (1, 0))
    b0 = first_site + sites_per_step * torch.arange(n_bins, device=a.device)
    inside = cs[:, b0 + sites_per_bin] - cs[:, b0]
    middle = cs[:, b0 + (3 * sites_per_bin) // 4] - cs[:, b0 + sites_per_bin // 4]
    return (torch.log(-torch.expm1(middle.clamp(max=-1e-6))) - inside).float()


def _region_bp(flank: int, length: int) -> int:
    """Length of the region ``[flank, length - flank)`` (at least 1)."""
    return max(1, int(length) - 2 * int(flank))


def middle_half(flank: int, length: int) -> tuple[int, int]:
    """``[lo, hi)``: the middle half of the region ``[flank, length - flank)`` (where a bound site makes
    an ENCODE-DREAM bin bound: its conservative peak covers at least half the bin)."""
    region = _region_bp(flank, length)
    return int(flank) + region // 4, int(flank) + (3 * region) // 4


GC_CENTER, GC_SCALE = 0.5, 0.1  # gc_features' default scale, until a genome's own is set (gc_norm)


def gc_features(gc: torch.Tensor, known: torch.Tensor, windows: tuple[int, ...], pool: int,
                norm: torch.Tensor | None = None) -> torch.Tensor:
    """GC context of every pooled site: [B, T = L // pool, len(windows)].

    ``gc`` and ``known`` [B, L] mark the G/C bases and the known (non-N) ones (any numeric dtype; a
    one-hot input gives ``x[:, 1] + x[:, 2]`` and ``x.sum(1)``). Site t (centred at ``t * pool + pool
    // 2``, as the site logits are) gets, per window w, the GC fraction of the w bp ``[centre - w // 2,
    centre - w // 2 + w)`` clipped to the input, an unknown base (N) counting as ``centre_w`` GC, as
    ``(fraction - centre_w) / scale_w`` with ``norm`` [2, len(windows)] (centres, scales; default
    GC_CENTER, GC_SCALE). Affine in a one-hot input (an all-zero baseline reads as centre_w), so
    gradients and path attributions (integrated gradients' completeness) see no kink. With an even
    pool and windows and L divisible by the pool, reversing the input (or taking its reverse
    complement: G/C stays G/C) reverses the sites' values exactly.
    """
    cg, ck = _prefix_sums(gc), _prefix_sums(known)
    length = gc.shape[1]
    w = torch.tensor(windows, dtype=torch.long, device=gc.device)[:, None]  # [W, 1]
    start = (torch.arange(length // pool, device=gc.device) * pool + pool // 2)[None] - w // 2  # [W, T]
    lo, hi = start.clamp(0, length), (start + w).clamp(0, length)
    size = (hi - lo).to(torch.float64)  # >= 1: the centre is inside the input
    if norm is None:
        norm = torch.tensor([[GC_CENTER], [GC_SCALE]], dtype=torch.float64).expand(2, len(windows))
    mid, scale = norm.to(device=gc.device, dtype=torch.float64)[:, :, None]  # [W, 1] each
    # (fraction - mid) with an N counting as mid GC: (gc - mid * known) / size; one gather per input,
    # every window at once, and no host sync for the norm on an accelerator
    z = (cg[:, hi] - cg[:, lo] - mid * (ck[:, hi] - ck[:, lo])) / (size * scale)  # [B, W, T]
    return z.transpose(1, 2).float()


def _prefix_sums(marks: torch.Tensor) -> torch.Tensor:
    """[B, L + 1] float64 running counts of ``marks`` [B, L] (exact for any stretch length)."""
    return nn.functional.pad(marks.double().cumsum(1), (1, 0))


def gc_norm_from_codes(codes: torch.Tensor, windows: tuple[int, ...], pool: int) -> torch.Tensor:
    """[2, len(windows)] float64: the mean and standard deviation (at least 0.01) of the GC fraction
    of each window around the pooled sites of ``codes`` [B, L], over the windows inside the rows
    with at least half their bases known."""
    codes = torch.as_tensor(codes)
    gc, known = (codes == 1) | (codes == 2), codes < 4
    length = codes.shape[1]
    cg, ck = _prefix_sums(gc), _prefix_sums(known)
    centre = torch.arange(length // pool, device=codes.device) * pool + pool // 2
    out = torch.empty(2, len(windows), dtype=torch.float64)
    for j, w in enumerate(windows):
        c = centre[(centre - w // 2 >= 0) & (centre - w // 2 + w <= length)]
        if c.numel() == 0:
            raise ValueError(f"GC statistics: rows of {length} bp hold no whole {w} bp window")
        lo, hi = c - w // 2, c - w // 2 + w
        n = ck[:, hi] - ck[:, lo]
        frac = ((cg[:, hi] - cg[:, lo]) / n.clamp(min=1.0))[n >= w / 2]
        if frac.numel() < 2:
            raise ValueError(f"GC statistics: fewer than 2 windows of {w} bp with half their bases known")
        out[0, j], out[1, j] = frac.mean(), frac.std().clamp(min=0.01)
    return out


def occupancy_logit(site_logits: torch.Tensor, centres: torch.Tensor, flank: int, length: int) -> torch.Tensor:
    """The bin's logit from per-site binding logits ``a`` [B, n] whose site centres are ``centres`` [n] bp.

    The multiple-instance reading of how bins are labelled (ENCODE-DREAM): a bin is bound (B) when a
    bound site lies in the middle half of its region, unbound (U) when none lies anywhere in the
    region (the rest are ambiguous and dropped). With sites bound independently, p_i = sigmoid(a_i):
    ``log P(B) - log P(U) = log(1 - prod_middle (1 - p_i)) - sum_region log(1 - p_i)``, computed in
    log space (``logsigmoid(-a) = log(1 - p)``). The region is ``[flank, length - flank)``.
    """
    a = site_logits.float()
    lo, hi = middle_half(flank, length)
    middle = (centres >= lo) & (centres < hi)
    inside = (centres >= flank) & (centres < flank + _region_bp(flank, length))
    log_free = nn.functional.logsigmoid(-a)
    s_middle = (log_free * middle).sum(1).clamp(max=-1e-6)  # log P(no bound site in the middle half)
    return torch.log(-torch.expm1(s_middle)) - (log_free * inside).sum(1)


def _site_head(channels: int, config: dict[str, Any], width: int, middle_sites: int) -> nn.Sequential:
    """Per-position site logits: conv(width) -> ReLU -> dropout -> conv(1), over [B, channels, n]."""
    d = int(config["dense"])
    head = nn.Sequential(nn.Conv1d(channels, d, width, padding=width // 2), nn.ReLU(),
                         nn.Dropout(float(config["dropout"])), nn.Conv1d(d, 1, 1))
    # start with P(B) ~ 0.1 for every bin rather than ~1: the sum over the middle half's sites would
    # otherwise saturate and give no gradient
    p = 0.1 / max(1, middle_sites)
    with torch.no_grad():
        head[-1].bias.fill_(math.log(p / (1 - p)))
    return head


class _Base(nn.Module):
    name = ""

    @property
    def first_conv(self) -> nn.Conv1d | None:
        """The first convolution (its kernels are motifs), or None for the pure recurrent nets."""
        conv = self._modules.get("conv")
        return conv if isinstance(conv, nn.Conv1d) else None

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.rc_average = bool(config.get("rc_average", False))

    def min_length(self) -> int:
        return 1

    def logits(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 2:
            raise ValueError(f"{self.name}: expected codes [B, L], got shape {tuple(codes.shape)}")
        if codes.dtype.is_floating_point:
            raise TypeError(f"{self.name}: expected integer base codes (uint8/int64), got {codes.dtype}")
        if codes.shape[1] < self.min_length():
            raise ValueError(f"{self.name}: sequences of {codes.shape[1]} bp are shorter than the "
                             f"minimum {self.min_length()} bp")

    def _check_one_hot(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != 4:
            raise ValueError(f"{self.name}: expected one-hot input [B, 4, L], got shape {tuple(x.shape)}")
        if x.shape[2] < self.min_length():
            raise ValueError(f"{self.name}: sequences of {x.shape[2]} bp are shorter than the "
                             f"minimum {self.min_length()} bp")

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_codes(codes)
        if self.rc_average and not self.training:
            return self.rc_mean_logits(codes).float()
        return self.logits(codes).float()

    def rc_mean_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """The mean of the logits of ``codes`` and of their reverse complement (``rc_average``)."""
        return 0.5 * (self.logits(codes) + self.logits(revcomp_codes(codes)))

    def logits_one_hot(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """The same logits [B] from a one-hot (or any real-valued) input ``x`` [B, 4, L] (A, C, G, T rows;
        an N base is an all-zero column): ``forward_one_hot(one_hot(codes).transpose(1, 2)) == forward(codes)``.
        Differentiable in ``x``, for gradient attributions (integrated gradients, DeepLIFT)."""
        self._check_one_hot(x)
        x = x.float()
        out = self.logits_one_hot(x)
        if self.rc_average and not self.training:
            out = 0.5 * (out + self.logits_one_hot(x.flip(1).flip(2)))  # reverse complement: both axes reversed
        return out.float()


class BiGRUNet(_Base):
    """One-hot -> FusedBiGRU -> [fwd state at region end, bwd state at region start] -> Linear."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.name = config["name"]
        self.flank = int(config["flank"])
        self.region = int(config["region"])
        h = int(config["hidden"])
        self.hidden = h
        self.gru = _make_gru(4, h, int(config["layers"]), float(config["dropout"]))
        self.drop = nn.Dropout(float(config["dropout"]))
        self.head = nn.Linear(2 * h, 1)
        self._codes_ok: bool | None = None  # whether the GRU takes codes directly (fused one-hot gather)

    def min_length(self) -> int:
        return 2 * self.flank + 1

    def _run_gru(self, codes: torch.Tensor) -> torch.Tensor:
        if self._codes_ok is None:
            self._codes_ok = False
            if not isinstance(self.gru, nn.GRU):
                was_training = self.gru.training
                try:  # eval mode and a forked RNG: the probe must not move the dropout RNG (exact resume)
                    with torch.no_grad(), torch.random.fork_rng(devices=[]):
                        self.gru.eval()
                        probe = torch.tensor([[0, 1, 2, 3, 4, 2]], dtype=torch.uint8, device=codes.device)
                        a = self.gru(probe)[0].float()
                        b = self.gru(one_hot(probe))[0].float()
                    self._codes_ok = bool(torch.allclose(a, b, atol=1e-4, rtol=1e-3))
                except Exception:
                    self._codes_ok = False
                finally:
                    self.gru.train(was_training)
        if self._codes_ok:
            return self.gru(codes)[0]
        return self.gru(one_hot(codes))[0]

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        return self._head(self._run_gru(codes), codes.shape[1])

    def logits_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        return self._head(self.gru(x.transpose(1, 2).contiguous())[0], x.shape[2])

    def _head(self, y: torch.Tensor, length: int) -> torch.Tensor:
        # y: [B, L, 2H]
        h = self.hidden
        fwd = y[:, length - self.flank - 1, :h]  # forward: left flank + region read
        bwd = y[:, self.flank, h:]  # backward: right flank + region read from the right
        feat = self.drop(torch.cat([fwd, bwd], dim=1))
        return self.head(feat).squeeze(1)


class CNNNet(_Base):
    """DeepBind-like: conv -> ReLU -> global max pool -> dense -> logit (or the occupancy head)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.name = "cnn"
        f, k = int(config["filters"]), int(config["kernel_size"])
        self.kernel_size = k
        self.rc_conv = bool(config["rc_conv"])
        self.conv = nn.Conv1d(4, f, k)
        self.mean_pool = bool(config.get("mean_pool", False))
        self.head = str(config["head"])
        if self.head == "occupancy":
            self.flank, self.context = int(config["flank"]), int(config["context"])
            self.site = _site_head(2 * f, config, 3, int(config["region"]) // 2)
        else:
            feats, d = (2 * f if self.mean_pool else f), int(config["dense"])
            self.mlp = nn.Sequential(nn.Linear(feats, d), nn.ReLU(),
                                     nn.Dropout(float(config["dropout"])), nn.Linear(d, 1))

    def min_length(self) -> int:
        return self.kernel_size

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        return self.logits_one_hot(one_hot(codes).transpose(1, 2))  # [B, 4, L]

    def logits_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        c = strand_conv(self.conv, x, self.rc_conv)
        if self.head == "occupancy":
            return self._occupancy(c, x.shape[2])
        # max: the best match; mean (DeepBind's optional average pool): how much of it, e.g. CpG density
        x = torch.cat([c.amax(dim=2), c.mean(dim=2)], dim=1) if self.mean_pool else c.amax(dim=2)
        return self.mlp(x).squeeze(1)

    def _occupancy(self, c: torch.Tensor, length: int) -> torch.Tensor:
        # each position's context: every filter's mean response within +-context bp (CpG density,
        # GC content), from a cumulative sum so that its cost does not grow with the window
        n, r = c.shape[2], self.context
        cs = nn.functional.pad(c.cumsum(2), (1, 0))
        idx = torch.arange(n, device=c.device)
        lo, hi = (idx - r).clamp(0, n), (idx + r + 1).clamp(0, n)
        ctx = (cs[:, :, hi] - cs[:, :, lo]) / (hi - lo).to(c.dtype)
        a = self.site(torch.cat([c, ctx], 1)).squeeze(1)  # [B, n] per-site logit
        return occupancy_logit(a, idx + self.kernel_size // 2, self.flank, length)


class HybridNet(_Base):
    """Conv -> ReLU -> max pool -> BiGRU -> dense or occupancy head (DanQ / FactorNet style)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.name = "hybrid"
        f, k = int(config["filters"]), int(config["kernel_size"])
        self.kernel_size, self.pool_size = k, int(config["pool"])
        self.rc_conv = bool(config["rc_conv"])
        self.hidden = int(config["hidden"])
        self.conv = nn.Conv1d(4, f, k, padding=k // 2)
        self.pool = nn.MaxPool1d(self.pool_size, ceil_mode=True)
        self.drop = nn.Dropout(float(config["dropout"]))
        self.gru = _make_gru(f, self.hidden, 1, 0.0)
        # center_max: each filter's best match in the middle half of the region joins the global
        # max, so that the dense layers can tell a site in the bin's centre from one in its flanks
        self.center_max = bool(config.get("center_max", False))
        self.flank = int(config["flank"])
        self.head = str(config["head"])
        if self.head == "occupancy":
            self.site = _site_head(f + 2 * self.hidden, config, 1, int(config["region"]) // (2 * self.pool_size))
        else:
            n_feat = 2 * self.hidden + f * (2 if self.center_max else 1)
            self.mlp = nn.Sequential(nn.Linear(n_feat, int(config["dense"])), nn.ReLU(),
                                     nn.Dropout(float(config["dropout"])), nn.Linear(int(config["dense"]), 1))

    def min_length(self) -> int:
        return self.kernel_size

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        return self.logits_one_hot(one_hot(codes).transpose(1, 2))  # [B, 4, L]

    def logits_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[2]
        c = strand_conv(self.conv, x, self.rc_conv)  # [B, F, L]
        return self._from_conv(c, length)

    def rc_mean_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Both strands from one convolution: with ``rc_conv`` every filter already scans both strands,
        so the (odd-kernel, same-padded) convolution of the reverse complement is this one reversed,
        exactly (the same two ReLU terms, summed the other way round), and with the window a multiple
        of the pool size so are the pooled steps. Only the layers after the pooling run for both
        strands (as one batch of 2B), with the same results as scoring the reverse complement anew.
        Otherwise (even kernel, ``center_max``, ...) the plain mean of both strands' logits."""
        if not self._shares_strands(codes.shape[1]):
            return super().rc_mean_logits(codes)
        c = strand_conv(self.conv, one_hot(codes).transpose(1, 2), True)
        x = self.pool(c)
        maxes = None if self.head == "occupancy" else [c.amax(dim=2).repeat(2, 1)]  # the same on both strands
        out = self._after_pool(torch.cat([x, x.flip(2)]), maxes, codes.shape[1])
        b = codes.shape[0]
        return 0.5 * (out[:b] + out[b:])

    def _shares_strands(self, length: int) -> bool:
        return (self.rc_conv and self.kernel_size % 2 == 1 and length % self.pool_size == 0
                and not self.center_max)

    def substitution_logits(self, ref: torch.Tensor, alt: torch.Tensor, lo: int, hi: int,
                            both_strands: bool = True) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Logits of ``ref`` and ``alt`` windows [B, L] that differ only in columns ``[lo, hi)`` (SNVs, MNVs).

        The ALT windows' convolution is the REF windows' one except within a kernel of the change, so
        only those pooled steps are recomputed (on both strands' kernels); the layers after the
        pooling run for every window. ``both_strands``: the mean of both strands (as ``rc_average``).
        Returns None where this shortcut does not apply (the caller scores the windows plainly).
        """
        length = ref.shape[1]
        if not self._shares_strands(length) or self.training:
            return None
        r, pool = self.kernel_size // 2, self.pool_size
        steps = length // pool
        t0, t1 = max(0, (lo - r) // pool), min(steps - 1, (hi - 1 + r) // pool)
        a, b = t0 * pool, (t1 + 1) * pool
        c = strand_conv(self.conv, one_hot(ref).transpose(1, 2), True)
        x_ref = self.pool(c)
        # the ALT columns [a, b) from the bases [a - r, b + r) (zero beyond the window, as the padding)
        seg = nn.functional.pad(one_hot(alt).transpose(1, 2), (r, r))[:, :, a:b + 2 * r]
        w, bias = self.conv.weight, self.conv.bias
        c_seg = (torch.relu(nn.functional.conv1d(seg, w, bias))
                 + torch.relu(nn.functional.conv1d(seg, w.flip(1).flip(2), bias)))
        x_alt = x_ref.clone()
        x_alt[:, :, t0:t1 + 1] = self.pool(c_seg)
        maxes = None
        if self.head != "occupancy":
            m_ref = c.amax(dim=2)
            outside = torch.cat([c[:, :, :a], c[:, :, b:]], 2)
            m_alt = c_seg.amax(dim=2) if outside.shape[2] == 0 else torch.maximum(outside.amax(dim=2), c_seg.amax(dim=2))
            maxes = [torch.cat([m_ref, m_ref, m_alt, m_alt]) if both_strands else torch.cat([m_ref, m_alt])]
        parts = [x_ref, x_ref.flip(2), x_alt, x_alt.flip(2)] if both_strands else [x_ref, x_alt]
        out = self._after_pool(torch.cat(parts), maxes, length)
        n = ref.shape[0]
        if both_strands:
            return 0.5 * (out[:n] + out[n:2 * n]).float(), 0.5 * (out[2 * n:3 * n] + out[3 * n:]).float()
        return out[:n].float(), out[n:].float()

    def _from_conv(self, c: torch.Tensor, length: int) -> torch.Tensor:
        """The logits from the convolution's ReLU responses ``c`` [B, F, L] of a ``length`` bp window."""
        maxes = None
        if self.head != "occupancy":
            # each filter's best match (DeepBind's global max pool: a short gradient path that lets the
            # filters find the motifs early), and with center_max its best match in the middle half
            maxes = [c.amax(dim=2)]
            if self.center_max:
                n = c.shape[2]
                lo, hi = middle_half(self.flank, length)
                lo = min(lo, n - 1)
                maxes.append(c[:, :, lo:min(max(hi, lo + 1), n)].amax(dim=2))
        return self._after_pool(self.pool(c), maxes, length)

    def _after_pool(self, x: torch.Tensor, maxes: list[torch.Tensor] | None, length: int) -> torch.Tensor:
        """Pooled responses [B, F, L / pool] (+ the dense head's filter maxima) -> logits [B]."""
        x = self.drop(x)
        y = self.gru(x.transpose(1, 2).contiguous())[0]  # [B, T, 2H]
        h = self.hidden
        if self.head == "occupancy":  # each pooled position's site logit from its filters and GRU states
            feat = torch.cat([x, y.transpose(1, 2)], 1)  # [B, F + 2H, T]
            centres = torch.arange(feat.shape[2], device=feat.device) * self.pool_size + self.pool_size // 2
            if not self.training:
                # only sites in the region count (occupancy_logit), and the site head is per position
                # (width 1): at evaluation the positions in the flanks are left out, with the same result
                inside = ((centres >= self.flank) & (centres < self.flank + _region_bp(self.flank, length))).nonzero()
                if inside.numel():
                    lo, hi = int(inside[0]), int(inside[-1]) + 1
                    feat, centres = feat[:, :, lo:hi], centres[lo:hi]
            a = self.site(feat).squeeze(1)  # [B, T]
            return occupancy_logit(a, centres, self.flank, length)
        # the GRU's summary (motif arrangement and context) plus the filter maxima
        feat = torch.cat([y[:, -1, :h], y[:, 0, h:], *(maxes or [])], dim=1)
        return self.mlp(feat).squeeze(1)


class DenseHybridNet(_Base):
    """``hybrid-dense``: conv -> max pool -> BiGRU -> per-site logits, read over a whole stretch.

    The occupancy hybrid made for dense scoring: an input of ``L = 2 * flank + 200 + 50 * (n - 1)``
    bases gives the logits of its ``n`` bins (200 bp every ``step`` = 50 bp, starting ``flank`` bp in)
    in one pass: the convolution and the site head share all their work between overlapping bins,
    the BiGRU runs once over the stretch (its context is the stretch), and each bin's logit is
    :func:`occupancy_logit` of its sites, by prefix sums (:func:`bin_logits_from_sites`). ``forward``
    returns [B, n], or [B] for one-bin windows (``L = seq_len``), so windowed tools keep working.
    ``pool`` divides ``step`` and ``flank``: every bin then sees the same pooled grid, and the reverse
    strand's features are the forward strand's reversed (the convolution scans both strands), so the
    strand average (``rc_average``) costs a second BiGRU and head pass but no second convolution.
    The site head also reads each site's GC context (``gc_windows``, :func:`gc_features`): the GC
    fraction of 100, 300 and 1000 bp around it, clipped to the stretch. On the real-DNA panel the
    trained models under-used GC that way without it (adding the exact GC term to their logits
    lifted their auPRC), and with it ctcf-human20 and foxa-humanX rose (README, benchmarks).
    """

    native_inference = True  # tests set it False on an instance to score through the reference layers

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.name = "hybrid-dense"
        f, k, p = int(config["filters"]), int(config["kernel_size"]), int(config["pool"])
        self.kernel_size, self.pool_size, self.hidden = k, p, int(config["hidden"])
        self.flank, self.region, self.step = int(config["flank"]), int(config["region"]), int(config["step"])
        if k % 2 != 1:
            raise ValueError(f"model 'hybrid-dense': kernel_size must be odd (a centred filter), got {k}")
        for what, v in (("step", self.step), ("flank", self.flank), ("region", self.region)):
            if v % p:
                raise ValueError(f"model 'hybrid-dense': pool {p} must divide {what} {v}")
        if self.region % 4 or (self.region // p) % 4:
            raise ValueError(f"model 'hybrid-dense': region {self.region} / pool {p} must split into quarters")
        self.conv = nn.Conv1d(4, f, k, padding=k // 2)
        self.pool = nn.MaxPool1d(p)
        self.drop = nn.Dropout(float(config["dropout"]))
        self.gru = _make_gru(f, self.hidden, 1, 0.0)
        d = int(config["dense"])
        self.gc_windows = tuple(config["gc_windows"])
        if self.gc_windows and (p % 2 or any(w % 2 for w in self.gc_windows)):
            # the reverse strand's GC inputs are the forward strand's reversed only then (gc_features)
            raise ValueError(f"model 'hybrid-dense': gc_windows {self.gc_windows} and pool {p} must be even")
        if self.gc_windows:
            # the GC inputs' centre and scale per window, saved with the weights: set from the training
            # genome (set_gc_norm) so that a 19 % or 64 % GC genome feeds the head inputs near N(0, 1)
            self.register_buffer("gc_norm", torch.tensor([[GC_CENTER] * len(self.gc_windows),
                                                          [GC_SCALE] * len(self.gc_windows)], dtype=torch.float64))
        # the site head reads [pooled filters, BiGRU states, GC context]
        self.site = nn.Sequential(nn.Linear(f + 2 * self.hidden + len(self.gc_windows), d), nn.ReLU(),
                                  nn.Dropout(float(config["dropout"])), nn.Linear(d, 1))
        q = 0.1 / max(1, self.region // (2 * p))  # P(B) ~ 0.1 per bin at the start (see _site_head)
        with torch.no_grad():
            self.site[-1].bias.fill_(math.log(q / (1 - q)))

    def min_length(self) -> int:
        return 2 * self.flank + self.region

    def n_bins(self, length: int) -> int:
        """Bins of an input of ``length`` bp; ValueError unless it is a whole stretch."""
        inner = int(length) - 2 * self.flank - self.region
        if inner < 0 or inner % self.step:
            raise ValueError(f"hybrid-dense: an input of {length} bp is not 2 * flank {self.flank} + region "
                             f"{self.region} + a multiple of step {self.step}")
        return inner // self.step + 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled both-strand filter responses [B, F, L / pool] of one-hot ``x`` [B, 4, L] (dropout in training)."""
        # one fused convolution for both strands, unless someone hooks the conv module (motifs'
        # kernel influence replaces its output): then the module is called, as strand_conv does
        hooked = bool(self.conv._forward_hooks or self.conv._forward_pre_hooks)
        c = strand_conv(self.conv, x, True) if hooked else both_strands_conv(self.conv, x)
        return self.drop(self.pool(c))

    def gc_inputs(self, x: torch.Tensor) -> torch.Tensor | None:
        """The GC inputs [B, T, len(gc_windows)] of one-hot ``x`` [B, 4, L] (:func:`gc_features`), or None."""
        if not self.gc_windows:
            return None
        return gc_features(x[:, 1] + x[:, 2], x.sum(1), self.gc_windows, self.pool_size, self.gc_norm)

    def set_gc_norm(self, codes: torch.Tensor) -> None:
        """Centre and scale the GC inputs by the GC of ``codes`` [B, L] (stretches of the training
        genome): per window, the mean and standard deviation of its sites' GC fractions."""
        if not self.gc_windows:
            return
        self.gc_norm.copy_(gc_norm_from_codes(codes, self.gc_windows, self.pool_size).to(self.gc_norm))

    def sites_from_features(self, x: torch.Tensor, gc: torch.Tensor | None = None) -> torch.Tensor:
        """Site logits [B, T] of pooled features ``x`` [B, F, T] and GC inputs ``gc`` [B, T, W] (:meth:`gc_inputs`)."""
        if (gc is None) != (not self.gc_windows):
            raise ValueError(f"hybrid-dense: gc_windows {self.gc_windows}, but GC inputs {'not ' if gc is None else ''}given")
        y = self.gru(x.transpose(1, 2).contiguous())[0]  # [B, T, 2H]
        parts = [x.transpose(1, 2), y] + ([gc] if gc is not None else [])
        return self.site(torch.cat(parts, 2)).squeeze(2)  # [B, T]

    def site_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-site logits [B, L / pool]; site t is centred at ``t * pool + pool // 2``."""
        x = one_hot(codes).transpose(1, 2)
        return self.sites_from_features(self.features(x), self.gc_inputs(x))

    def _bins(self, a: torch.Tensor, n: int) -> torch.Tensor:
        p = self.pool_size
        return bin_logits_from_sites(a, self.flank // p, self.region // p, self.step // p, n)

    def bin_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n] logits of every bin of a stretch (both strands averaged where ``rc_average`` and in eval)."""
        if self._native_inference(codes):
            return self._bin_logits_native(codes)
        return self.bin_logits_one_hot(one_hot(codes).transpose(1, 2))

    def _native_inference(self, codes: torch.Tensor) -> bool:
        # scoring on CPU: the first layer from bsp_fast.strand_conv's kernel (the torch layers below
        # are its reference, used for training, gradients, hooks and other devices)
        w = self.conv.weight
        return (self.native_inference and not self.training and not torch.is_grad_enabled() and w.device.type == "cpu"
                and codes.device.type == "cpu" and w.dtype == torch.float32
                and not (self.conv._forward_hooks or self.conv._forward_pre_hooks))

    def _conv_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel's lookup table of the current conv weights (rebuilt when they change)."""
        from bsp_fast.strand_conv import group_size, lookup_table

        w, b = self.conv.weight, self.conv.bias
        key = (w.data_ptr(), w._version, b.data_ptr(), b._version)
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, lookup_table(self.conv, group_size(w.shape[0], self.kernel_size)))
            self._table_cache = cached
        return cached[1]

    def _bin_logits_native(self, codes: torch.Tensor) -> torch.Tensor:
        from bsp_fast.strand_conv import both_strands_conv_pool

        n = self.n_bins(codes.shape[1])
        both = self.rc_average
        x = both_strands_conv_pool(self.conv, codes, self.pool_size, with_reverse=both, table=self._conv_table())
        gc = None
        if self.gc_windows:
            gc = gc_features((codes == 1) | (codes == 2), codes < 4, self.gc_windows, self.pool_size, self.gc_norm)
            if both:  # the reverse strand's sites are the forward's reversed (see gc_features)
                gc = torch.cat([gc, gc.flip(1)])
        bins = self._bins(self._sites_inference(x, gc), n)
        if both:
            b = codes.shape[0]
            return 0.5 * (bins[:b] + bins[b:].flip(1))
        return bins

    def _sites_inference(self, x: torch.Tensor, gc: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`sites_from_features` of features ``x`` [B, T, F] (a view of a time-major buffer), without
        concatenating them to the BiGRU's output: the site head's first layer is split by its inputs."""
        y = self.gru(x)[0]  # [B, T, 2H] batch-major
        lin, out = self.site[0], self.site[-1]
        f, h2 = x.shape[2], y.shape[2]
        h = torch.addmm(lin.bias, y.reshape(-1, h2), lin.weight[:, f:f + h2].t())  # [B T, d]
        # the features batch-major (a small copy: F per position against d of h) to accumulate in place
        h.addmm_(x.contiguous().view(-1, f), lin.weight[:, :f].t())
        if gc is not None:
            h.addmm_(gc.reshape(-1, gc.shape[2]), lin.weight[:, f + h2:].t())
        return torch.addmv(out.bias, h.relu_(), out.weight[0]).view(y.shape[:2])

    def bin_logits_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`bin_logits` of a one-hot (or any real-valued) input [B, 4, L]; differentiable in it."""
        n = self.n_bins(x.shape[2])
        gc = self.gc_inputs(x.float())
        x = self.features(x.float())
        if self.rc_average and not self.training:
            # the reverse strand's features (and GC inputs) are these reversed (exact: both-strand
            # filters, odd width, a length divisible by the pool), so only the BiGRU and the site
            # head run again, in one batch with the forward strand's; its bins come out in reverse order
            b = x.shape[0]
            gc2 = torch.cat([gc, gc.flip(1)]) if gc is not None else None
            both = self._bins(self.sites_from_features(torch.cat([x, x.flip(2)]), gc2), n)
            return 0.5 * (both[:b] + both[b:].flip(1))
        return self._bins(self.sites_from_features(x, gc), n)

    def logits(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - forward is overridden
        return self.bin_logits(codes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_codes(codes)
        out = self.bin_logits(codes).float()
        return out.squeeze(1) if out.shape[1] == 1 else out

    def forward_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of a one-hot input [B, 4, L] (gradient attributions)."""
        self._check_one_hot(x)
        out = self.bin_logits_one_hot(x).float()
        return out.squeeze(1) if out.shape[1] == 1 else out


_CLASSES = {"bigru": BiGRUNet, "bigru-small": BiGRUNet, "cnn": CNNNet, "hybrid": HybridNet,
            "hybrid-dense": DenseHybridNet}


class Ensemble(nn.Module):
    """``members`` copies of one model (own initialisations) trained side by side on the same batches.

    Training mode returns every member's logits [members, B] (the trainer's loss is then the mean of
    the members' own losses, so they stay independent); evaluation mode returns the mean logit [B]
    (each member averaging the strands itself where its config says so). Motifs come from the first
    member's convolution.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.name = config["name"]
        member = {k: v for k, v in config.items() if k != "members"}
        self.members = nn.ModuleList(_CLASSES[self.name](member) for _ in range(int(config["members"])))

    @property
    def first_conv(self) -> nn.Conv1d | None:
        return self.members[0].first_conv

    @property
    def rc_average(self) -> bool:
        return self.members[0].rc_average

    @rc_average.setter
    def rc_average(self, value: bool) -> None:
        for m in self.members:
            m.rc_average = bool(value)

    def min_length(self) -> int:
        return self.members[0].min_length()

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        out = torch.stack([m(codes) for m in self.members])
        return out if self.training else out.mean(0)

    def n_bins(self, length: int) -> int:
        return self.members[0].n_bins(length)

    def forward_one_hot(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_Base.forward_one_hot` of every member, combined as :meth:`forward` combines them."""
        out = torch.stack([m.forward_one_hot(x) for m in self.members])
        return out if self.training else out.mean(0)

    def substitution_logits(self, ref: torch.Tensor, alt: torch.Tensor, lo: int, hi: int,
                            both_strands: bool = True) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The members' mean of :meth:`HybridNet.substitution_logits` (None where a member lacks it)."""
        if self.training or not all(hasattr(m, "substitution_logits") for m in self.members):
            return None
        outs = [m.substitution_logits(ref, alt, lo, hi, both_strands) for m in self.members]
        if any(o is None for o in outs):
            return None
        return torch.stack([o[0] for o in outs]).mean(0), torch.stack([o[1] for o in outs]).mean(0)


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model (fresh weights) from a saved ``model.config``, e.g. a checkpoint's; an option
    that the config predates takes the value the model had before the option existed."""
    options = dict(config)
    name = options.pop("name")
    for key, value in _PREDATING.get(name, {}).items():
        options.setdefault(key, value)
    return build_model(name, **options)


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a model by name with its defaults overridden by ``options``.

    Raises ValueError for an unknown name or option, or an impossible setting.
    """
    if name not in DEFAULTS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    config = dict(DEFAULTS[name], members=1)
    unknown = sorted(k for k, v in options.items() if k not in config)
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; options: {', '.join(sorted(config))}")
    config.update({k: v for k, v in options.items() if v is not None})
    for key in ("region", "flank", "hidden", "layers", "filters", "kernel_size", "pool", "dense", "context", "step"):
        if key in config:
            config[key] = int(config[key])
            low = 0 if key in ("flank", "context") else 1
            if config[key] < low:
                raise ValueError(f"model {name!r}: {key} must be >= {low}, got {config[key]}")
    config["dropout"] = float(config["dropout"])
    if not 0.0 <= config["dropout"] < 1.0:
        raise ValueError(f"model {name!r}: dropout is the probability of dropping, in [0, 1); got {config['dropout']}")
    config["rc_average"] = bool(config["rc_average"])
    if "mean_pool" in config:
        config["mean_pool"] = bool(config["mean_pool"])
    if "head" in config and config["head"] not in HEADS:
        raise ValueError(f"model {name!r}: head must be one of {', '.join(HEADS)}, got {config['head']!r}")
    if config.get("head") == "occupancy" and config.get("center_max"):
        raise ValueError(f"model {name!r}: center_max belongs to the dense head, not head='occupancy'")
    for key in ("rc_conv", "center_max"):
        if key in config:
            config[key] = bool(config[key])
    if "gc_windows" in config:
        try:
            windows = tuple(int(w) for w in config["gc_windows"])
        except (TypeError, ValueError):
            raise ValueError(f"model {name!r}: gc_windows must be a list of window sizes in bp, got "
                             f"{config['gc_windows']!r}") from None
        if any(w < 2 for w in windows):
            raise ValueError(f"model {name!r}: gc_windows must be >= 2 bp each, got {windows}")
        config["gc_windows"] = windows
    config["members"] = int(config["members"])
    if config["members"] < 1:
        raise ValueError(f"model {name!r}: members (models in the ensemble) must be >= 1, got {config['members']}")
    config = {"name": name, **config}
    if config["members"] > 1:
        return Ensemble(config)
    return _CLASSES[name](config)
