"""Launch layouts of the CUDA bi-GRU kernels for several device profiles (no GPU needed).

``bsp_fast_gru_cuda.plan_for`` runs the host-side planner of csrc/gru_cuda.cu for a hypothetical
device (SM count, opt-in shared memory per block). Skipped where the CUDA module is not built.
"""

from __future__ import annotations

import pytest

ext = pytest.importorskip("bsp_fast_gru_cuda", reason="bsp_fast_gru_cuda not built (no nvcc)")

# (name, SMs, cudaDevAttrMaxSharedMemoryPerBlockOptin)
DEVICES = [("H100", 132, 232448), ("A100", 108, 166912), ("RTX-sm86", 84, 101376), ("L4-sm89", 58, 101376)]
MODES = {0: (4, 4, 8), 1: (2, 4, 8), 2: (8, 8, 4)}  # mode: (W bytes, acc bytes, rows per thread)


@pytest.mark.parametrize("dev,sms,smem", DEVICES, ids=[d[0] for d in DEVICES])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("backward", [False, True])
def test_plan_invariants(dev, sms, smem, mode, backward):
    """FFMA kernels (allow_mma=False; also what fp32 / fp64 always use)."""
    wbytes, abytes, R = MODES[mode]
    for H in (32, 64, 128, 256):
        for B in (1, 2, 3, 7, 8, 9, 63, 64, 65, 511, 512, 513, 1000, 4096, 100003):
            p = ext.plan_for(mode, backward, B, H, sms, smem, False)
            assert p["kernel"] == "ffma"
            G = p["groups"]
            assert p["rows_per_thread"] == R
            assert p["threads"] == G * H <= 512 and G >= 1
            assert p["rows_per_block"] == G * R
            assert p["blocks_per_dir"] == -(-B // (G * R))
            # no whole block, and no whole row group in the only block, is empty
            assert (p["blocks_per_dir"] - 1) * G * R < B
            assert G <= -(-B // R)
            kbuf = 3 * H if backward else H
            expect = 2 * G * R * kbuf * abytes + (3 * H * H * wbytes if p["w_in_smem"] else 0)
            assert p["smem_bytes"] == expect <= smem
            if mode == 2:
                assert not p["w_in_smem"]
            elif 3 * H * H * wbytes + 2 * R * kbuf * abytes <= smem:
                assert p["w_in_smem"], (H, B)  # W goes on chip whenever it fits with one row group


def test_plan_h100_main_shapes():
    h100 = (132, 232448)
    p = ext.plan_for(0, False, 512, 128, *h100)
    assert p["w_in_smem"] and p["blocks_per_dir"] * 2 <= 132  # one wave, W_hh (192 KB fp32) on chip
    p = ext.plan_for(0, True, 512, 128, *h100)
    assert p["w_in_smem"]
    p = ext.plan_for(1, False, 512, 256, *h100)
    assert not p["w_in_smem"]  # 384 KB of bf16 W_hh: read through L1/L2


@pytest.mark.parametrize("dev,sms,smem", DEVICES, ids=[d[0] for d in DEVICES])
@pytest.mark.parametrize("backward", [False, True])
def test_plan_tensor_core_path(dev, sms, smem, backward):
    for H in (32, 64, 128, 256):
        for B in (1, 3, 8, 9, 17, 511, 512, 513, 4096, 100003):
            p = ext.plan_for(1, backward, B, H, sms, smem, True)
            if H == 256:
                assert p["kernel"] == "ffma"
                continue
            nt = p["groups"]
            assert p["kernel"] == "mma" and nt in (1, 2)
            assert p["threads"] == 2 * H and p["rows_per_block"] == 8 * nt
            assert p["blocks_per_dir"] == -(-B // (8 * nt))
            ld = 3 * H + 8 if backward else H + 8
            assert p["smem_bytes"] == 2 * 8 * nt * ld * 2 <= smem
            # fp32 never takes the tensor-core path
            assert ext.plan_for(0, backward, B, H, sms, smem, True)["kernel"] == "ffma"
