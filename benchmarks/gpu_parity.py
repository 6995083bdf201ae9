#!/usr/bin/env python3
"""FusedBiGRU against cuDNN nn.GRU (2 layers, bidirectional): outputs, h_n and every gradient.

    python benchmarks/gpu_parity.py --device cuda --json parity.json     (step `parity` of gpu_checks.py)
    python benchmarks/gpu_parity.py --device cpu --quick                 (the CPU smoke run of the tests)

Cases: the CPU parity shapes of tests/test_gru_module.py (B, T, H, input size, zero / non-zero h0),
plus T = 1000, H = 256 and the benchmark shape B=512 T=400 H=128. Each case copies nn.GRU's
weights into FusedBiGRU, draws fresh random inputs (seeded per case), runs forward + backward of a
random projection of (output, h_n), and compares output, h_n, dx, dh0 and the 16 parameter
gradients.

Error measure per tensor: max|a - b| / max(1, max|b|) (scale-aware, as tests/test_gru_cuda.py) and
the relative Frobenius error |a - b| / |b|. Tolerances (stated in the output JSON):
  fp32 (FusedBiGRU fp32 vs cuDNN fp32, TF32 off): outputs / h_n 2e-5, gradients 1e-4 (scale-aware max)
  bf16 (FusedBiGRU bf16, tensor-core and FFMA kernels, vs the fp32 cuDNN reference on the same
        bf16-rounded weights and inputs): outputs / h_n 3e-2 scale-aware max; gradients 5e-2 relative
        Frobenius (a bf16 dot of length H rounds at ~4e-3; T steps of state in bf16 add up)
NaN or Inf never passes. Exit status 1 when a case fails. Results are written as each case ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import torch

TOL = {
    "float32": {"out": 2e-5, "grad": 1e-4, "measure": "max|a-b| / max(1, max|b|)"},
    "bfloat16": {"out": 3e-2, "grad": 5e-2, "measure": "outputs: max|a-b| / max(1, max|b|); gradients: |a-b|_F / |b|_F"},
}
# B, T, H, input size, non-zero h0 (tests/test_gru_module.py PARITY_CASES, then the long / large ones)
CASES = [
    (1, 1, 4, 4, False), (3, 7, 4, 8, True), (67, 7, 32, 4, True), (3, 1, 32, 64, False), (3, 400, 32, 64, True),
    (1, 400, 128, 4, True), (3, 7, 128, 256, False), (67, 1, 128, 4, True),
    (5, 1000, 32, 4, True), (8, 1000, 128, 4, True), (6, 1000, 256, 4, True), (9, 40, 256, 16, False),
    (512, 400, 128, 4, False),
]
BF16_CASES = [(33, 200, 128, 4, True), (17, 1000, 64, 4, True), (8, 100, 256, 4, False), (512, 400, 128, 4, False)]
QUICK = [(3, 7, 4, 8, True), (2, 5, 32, 4, False)]



@contextlib.contextmanager
def _mma_env(mma: str | None):
    """BSP_FAST_GRU_MMA set for the block ("mma" -> 1, else 0; None: left as it is), then restored."""
    old = os.environ.get("BSP_FAST_GRU_MMA")
    if mma:
        os.environ["BSP_FAST_GRU_MMA"] = "1" if mma == "mma" else "0"
    try:
        yield
    finally:
        if mma:
            if old is None:
                os.environ.pop("BSP_FAST_GRU_MMA", None)
            else:
                os.environ["BSP_FAST_GRU_MMA"] = old

def errs(a: torch.Tensor, b: torch.Tensor) -> dict:
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    if a.shape != b.shape:
        return {"max_scaled": float("inf"), "rel_fro": float("inf"), "finite": False, "shape": [list(a.shape), list(b.shape)]}
    finite = bool(torch.isfinite(a).all())
    if a.numel() == 0:
        return {"max_scaled": 0.0, "rel_fro": 0.0, "finite": finite}
    d = a - b
    return {"max_scaled": d.abs().max().item() / max(1.0, b.abs().max().item()),
            "rel_fro": d.norm().item() / max(b.norm().item(), 1e-30), "finite": finite}


def run_case(B, T, H, I, nz, dtype, device, mma=None, seed=0) -> dict:
    from bsp_fast.gru import FusedBiGRU

    name = f"{'fp32' if dtype == torch.float32 else 'bf16'}-B{B}-T{T}-H{H}-I{I}" + (f"-{mma}" if mma else "")
    torch.manual_seed(seed)
    ref = torch.nn.GRU(I, H, 2, batch_first=True, bidirectional=True)
    if dtype == torch.bfloat16:  # the reference sees the same bf16-rounded weights
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(p.to(torch.bfloat16).float())
    fused = FusedBiGRU(I, H, 2, batch_first=True)
    fused.load_state_dict(ref.state_dict())
    ref = ref.to(device)
    fused = fused.to(device, dtype)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(B, T, I, generator=g)
    h0 = torch.randn(4, B, H, generator=g) * 0.5 if nz else None
    r_out = torch.randn(B, T, 2 * H, generator=g)
    r_hn = torch.randn(4, B, H, generator=g)
    if dtype == torch.bfloat16:
        x = x.to(dtype).float()
        h0 = None if h0 is None else h0.to(dtype).float()
    x, r_out, r_hn = x.to(device), r_out.to(device), r_hn.to(device)
    h0 = None if h0 is None else h0.to(device)

    def go(mod, dt):
        xx = x.to(dt).detach().requires_grad_(True)
        hh = None if h0 is None else h0.to(dt).detach().requires_grad_(True)
        mod.zero_grad(set_to_none=True)
        out, hn = mod(xx, hh)
        ((out.float() * r_out).sum() + (hn.float() * r_hn).sum()).backward()
        gr = {"dx": xx.grad}
        if hh is not None:
            gr["dh0"] = hh.grad
        gr.update({n: p.grad for n, p in mod.named_parameters()})
        return out, hn, gr

    with _mma_env(mma):
        out_r, hn_r, g_r = go(ref, torch.float32)
        out, hn, g_f = go(fused, dtype)
        if device == "cuda":
            torch.cuda.synchronize()
    tol = TOL["float32" if dtype == torch.float32 else "bfloat16"]
    key_out, key_grad = ("max_scaled", "max_scaled") if dtype == torch.float32 else ("max_scaled", "rel_fro")
    tensors = {"output": errs(out, out_r), "h_n": errs(hn, hn_r)}
    for n in g_r:
        tensors[f"grad {n}"] = errs(g_f[n], g_r[n]) if g_f.get(n) is not None else {"max_scaled": float("inf"),
                                                                                   "rel_fro": float("inf"), "finite": False}
    worst_out = max(tensors[k][key_out] for k in ("output", "h_n"))
    grads = {k: v for k, v in tensors.items() if k.startswith("grad")}
    worst_k = max(grads, key=lambda k: grads[k][key_grad])
    worst_grad = grads[worst_k][key_grad]
    finite = all(v["finite"] for v in tensors.values())
    ok = finite and worst_out <= tol["out"] and worst_grad <= tol["grad"]
    kernel = None
    if device == "cuda":
        try:
            from bsp_fast.gru import cuda_backend as cb

            from bsp_fast.gru.cuda_backend import padded_hidden

            with _mma_env(mma):
                kernel = cb.plan(dtype, B, padded_hidden(H))["kernel"]
        except Exception as exc:  # noqa: BLE001
            kernel = repr(exc)[:60]
    return {"name": name, "B": B, "T": T, "H": H, "I": I, "nonzero_h0": nz, "dtype": str(dtype).replace("torch.", ""),
            "kernel": kernel, "worst_out": worst_out, "worst_grad": worst_grad, "worst_tensor": worst_k,
            "finite": finite, "ok": ok, "tensors": tensors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", help="write the results here (rewritten after every case)")
    ap.add_argument("--quick", action="store_true", help="two tiny fp32 cases (CPU smoke run)")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    plan = [(c, torch.float32, None) for c in (QUICK if args.quick else CASES)]
    if args.device == "cuda" and not args.quick:
        plan += [(c, torch.bfloat16, m) for c in BF16_CASES for m in ("mma", "ffma")]
    res = {"device": args.device, "tolerances": TOL, "cases": [],
           "cmd": "python benchmarks/gpu_parity.py --device " + args.device + (" --quick" if args.quick else "")}
    bad = 0
    for i, ((B, T, H, I, nz), dt, mma) in enumerate(plan):
        t0 = time.perf_counter()
        try:
            c = run_case(B, T, H, I, nz, dt, args.device, mma, seed=1000 + i)
        except Exception as exc:  # noqa: BLE001  (record it, go on with the next case)
            c = {"name": f"{dt}-B{B}-T{T}-H{H}-I{I}-{mma}", "B": B, "T": T, "H": H, "I": I, "dtype": str(dt),
                 "kernel": mma, "ok": False, "error": repr(exc)[:400]}
        c["seconds"] = round(time.perf_counter() - t0, 3)
        bad += not c["ok"]
        res["cases"].append(c)
        print(f"{c['name']:<36} {'ok ' if c['ok'] else 'BAD'} out {c.get('worst_out', float('nan')):.2e} "
              f"grad {c.get('worst_grad', float('nan')):.2e} ({c.get('worst_tensor', c.get('error', ''))}) "
              f"{c['seconds']:.2f}s", flush=True)
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(res, f, indent=1)
            os.replace(tmp, args.json)
    print(f"parity: {len(plan) - bad}/{len(plan)} cases within tolerance")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
