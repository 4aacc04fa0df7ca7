"""Tiling of real-size layers (hw/tiling.py): patches, blocks, bytes moved, the roofline; and the
tiled computation (sim/tiled_reference.py) bit-exact against the integer reference."""

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.tiling import MemoryPort, TiledBuffers, plan_layer, roofline, row_pitch, run_beats
from winnow.model.errors import ConfigError
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_input, random_layer, reference_output
from winnow.sim.tiled_reference import run_plan


def _cfg(m=2, c_max=16, k_block=4, pes=2, lanes=2, clusters=1):
    return AccelConfig(datapath=DatapathConfig(m=m, r=3, c_max=c_max), pes=pes, lanes=lanes, clusters=clusters,
                       otu_lanes=1, k_max=64, k_block=k_block, h_max=8, w_max=8, stream_depth=1)


# ---------------------------------------------------------------- the tiled computation is exact
CASES = [  # (m, C, K, H, W, padding, c_block, patch_h, patch_w, k_block, flags)
    (2, 5, 7, 9, 11, 1, 2, 2, 3, 4, {}),             # ragged patches, C and K blocks with remainders
    (2, 3, 4, 4, 4, 0, 1, 1, 1, 4, {"relu": True}),  # one-tile patches, one channel per C block
    (4, 6, 5, 13, 10, 1, 4, 2, 1, 2, {"winograd_relu": True}),
    (4, 16, 8, 8, 8, 1, 16, 8, 8, 8, {}),            # everything in one job and one pass
    (6, 4, 3, 15, 9, 1, 3, 1, 2, 2, {"extreme": True}),
    (2, 8, 6, 7, 5, 0, 3, 3, 1, 6, {"extreme": True, "relu": True}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"F({c[0]},3)-{c[1]}x{c[2]}-{c[3]}x{c[4]}")
def test_the_tiled_computation_equals_the_reference_bit_for_bit(case):
    m, C, K, H, W, pad, cb, ph, pw, kb, flags = case
    dp = DatapathConfig(m=m, r=3, c_max=16)
    layer = random_layer(dp, C=C, K=K, H=H, W=W, density=0.5, seed=C * 100 + K, padding=pad, **flags)
    xq = random_input(layer, seed=7, extreme=flags.get("extreme", False))
    cfg = AccelConfig(datapath=dp, pes=2, lanes=2, otu_lanes=1, k_max=16, k_block=kb, h_max=16, w_max=16,
                      stream_depth=1)
    plan = plan_layer(cfg, TiledBuffers(c_block=cb, patch_h=ph, patch_w=pw), in_channels=C, out_channels=K,
                      size=(H, W), padding=pad)
    assert plan.passes > 1 or case == CASES[3]
    np.testing.assert_array_equal(run_plan(layer, xq, plan), reference_output(layer, xq))


def test_a_skipped_c_block_or_a_shifted_window_would_be_caught():
    """The comparison above is sensitive: dropping a C block's channels changes the result."""
    dp = DatapathConfig(m=2, r=3, c_max=16)
    layer = random_layer(dp, C=4, K=3, H=6, W=6, density=0.8, seed=3)
    xq = random_input(layer, seed=4)
    cfg = _cfg(k_block=4)
    plan = plan_layer(cfg, TiledBuffers(c_block=2, patch_h=2, patch_w=2), in_channels=4, out_channels=3,
                      size=(6, 6), padding=1)
    ref = reference_output(layer, xq)
    xz = xq.copy()
    xz[2:] = 0  # what a tiling that forgot the second C block would compute
    assert not np.array_equal(run_plan(layer, xz, plan), ref)
    assert not np.array_equal(run_plan(layer, np.roll(xq, 1, axis=2), plan), ref)


# ---------------------------------------------------------------- plans by hand
def test_patches_cover_the_tiles_with_smaller_ones_at_the_edges():
    # 9×11 input, padding 1, F(2,3): output 9×11 → 5×6 tiles; patches of 2×4 tiles
    plan = plan_layer(_cfg(), TiledBuffers(c_block=2, patch_h=2, patch_w=4), in_channels=5, out_channels=7,
                      size=(9, 11), padding=1)
    shapes = [(p.ty1 - p.ty0, p.tx1 - p.tx0) for p in plan.patches]
    assert shapes == [(2, 4), (2, 2), (2, 4), (2, 2), (1, 4), (1, 2)]
    assert plan.block_rows == (4, 3) and plan.c_blocks == (2, 2, 1)
    assert len(plan.jobs) == 12 and plan.passes == 36
    # the last patch: tiles 4..5 × 4..6 → padded-input rows 8..11 (clipped to 11 rows), columns 8..13
    assert plan.patches[-1].window(plan.geometry) == (8, 11, 8, 13)
    assert plan.patches[-1].out_rows(plan.geometry) == (8, 9, 8, 11)


def test_bytes_moved_by_hand():
    # C = 3, K = 8 (two blocks of 4), 4×4 input, padding 1, F(2,3): 2×2 tiles, one patch of 2×2
    cfg = _cfg(k_block=4)
    port = MemoryPort(bus_bytes=4, bytes_per_cycle=2.0)
    plan = plan_layer(cfg, TiledBuffers(c_block=2, patch_h=2, patch_w=2), in_channels=3, out_channels=8,
                      size=(4, 4), padding=1)
    t = plan.traffic(port, entries=100)
    # window 6×6 of the padded input: 6 rows × 2 beats of 4 bytes per channel, read for each of the 2 blocks
    assert t.input == 2 * 3 * 6 * 2 * 4
    entry_bytes = -(-cfg.to_dict()["derived"]["entry_bits"] // 8)
    assert t.weights == -(-100 * entry_bytes // 4) * 4  # one patch: the weights once
    assert t.output == 8 * 4 * 4  # 8 channels × 4 rows × one 4-byte beat
    # one C block: the window stays on chip across the blocks
    one = plan_layer(cfg, TiledBuffers(c_block=3, patch_h=2, patch_w=2), in_channels=3, out_channels=8,
                     size=(4, 4), padding=1)
    assert one.input_resident and one.traffic(port, 100).input == 3 * 6 * 2 * 4
    # two patches: the weights twice
    two = plan_layer(cfg, TiledBuffers(c_block=2, patch_h=1, patch_w=2), in_channels=3, out_channels=8,
                     size=(4, 4), padding=1)
    assert len(two.patches) == 2 and two.traffic(port, 100).weights == 2 * t.weights


def test_beats_of_a_run_and_row_pitch():
    assert [run_beats(s, n, 8) for s, n in ((0, 8), (1, 8), (7, 2), (0, 0), (8, 9))] == [1, 2, 2, 0, 2]
    assert [row_pitch(w, 8) for w in (1, 8, 9, 226)] == [8, 8, 16, 232]


def test_roofline_bound_follows_the_bandwidth_and_sparsity_stops_paying_when_memory_binds():
    dp = DatapathConfig(m=4, r=3, c_max=256)
    cfg = AccelConfig(datapath=dp, pes=16, lanes=4, clusters=4, otu_lanes=4, k_max=256, k_block=64, h_max=8,
                      w_max=8, stream_depth=1)
    plan = plan_layer(cfg, TiledBuffers(c_block=32, patch_h=8, patch_w=8), in_channels=256, out_channels=256,
                      size=(32, 32), padding=1)
    dense = 256 * 256 * 36
    sparse = int(dense * 0.3)
    fast, slow = MemoryPort(bytes_per_cycle=8.0), MemoryPort(bytes_per_cycle=0.5)
    assert roofline(plan, fast, nnz=sparse, entries=sparse).bound == "compute"
    assert roofline(plan, slow, nnz=sparse, entries=sparse).bound == "memory"
    # with a slow memory the sparse layer's floor gains less than the 1/0.3 the multiplies promise
    gain_fast = roofline(plan, fast, nnz=dense, entries=dense).floor / roofline(plan, fast, nnz=sparse,
                                                                                 entries=sparse).floor
    gain_slow = roofline(plan, slow, nnz=dense, entries=dense).floor / roofline(plan, slow, nnz=sparse,
                                                                                 entries=sparse).floor
    assert gain_fast == pytest.approx(1 / 0.3, rel=0.01) and gain_slow < gain_fast
    r = roofline(plan, slow, nnz=sparse, entries=sparse)
    assert r.memory == -(-r.traffic.total // 0.5) and r.floor == max(r.compute, r.memory)


def test_buffers_are_sized_by_the_configuration_not_the_layer():
    cfg = _cfg(m=4, c_max=512, k_block=16, pes=16, lanes=4, clusters=4)
    b = TiledBuffers(c_block=32, patch_h=4, patch_w=7, stream_depth=1024)
    mems = b.memories(cfg)
    assert mems["input_window"]["depth"] == 32 * (4 * 4 + 2) * (7 * 4 + 2)
    assert mems["v_buffer"]["count"] == 2 * 4 * 36 and mems["v_buffer"]["depth"] == 32
    assert mems["accumulators"]["depth"] == (16 // 4) * 28  # k_block/S rows × 28 tiles (a multiple of L)
    assert b.memory_bits(cfg) == sum(v["bits"] for v in mems.values())
    before = b.memory_bits(cfg)
    plan_layer(cfg, b, in_channels=512, out_channels=512, size=(224, 224), padding=1)  # any size plans
    assert b.memory_bits(cfg) == before


@pytest.mark.parametrize("kw, match", [
    (dict(c_block=0), "c_block must be an integer"), (dict(patch_h=True), "patch_h must be an integer"),
    (dict(stream_depth=2.5), "stream_depth must be an integer"),
])
def test_bad_buffers_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        TiledBuffers(**kw)


@pytest.mark.parametrize("kw, match", [
    (dict(bus_bytes=6), "power of two"), (dict(bytes_per_cycle=0.0), "bytes_per_cycle"),
    (dict(bytes_per_cycle=float("nan")), "bytes_per_cycle"), (dict(bytes_per_cycle=16.0), "bytes_per_cycle"),
    (dict(latency=-1), "latency"),
])
def test_bad_memory_ports_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        MemoryPort(**kw)


def test_a_layer_beyond_c_max_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="c_max = 16"):
        plan_layer(_cfg(), TiledBuffers(), in_channels=17, out_channels=4, size=(8, 8), padding=1)


# ---------------------------------------------------------------- the roofline tables (bench/hw_run.py)
def test_roofline_tables_cover_both_networks_and_sparsity_gains_less_when_memory_is_slow():
    from bench.hw_run import BANDWIDTHS, CIFAR_VGG, VGG16, roofline_tables

    roof = roofline_tables(tiles=(4,), densities=(1.0, 0.3))
    rows = roof["rows"]
    assert len(rows) == (len(VGG16) + len(CIFAR_VGG)) * 2 * len(BANDWIDTHS)
    for net in ("VGG-16", "CIFAR-10 VGG"):
        total = {}
        for r in rows:
            if r["network"] == net:
                key = (r["density"], r["bandwidth"])
                total[key] = total.get(key, 0) + r["floor"]
        slow, fast = min(b for b, _ in BANDWIDTHS), max(b for b, _ in BANDWIDTHS)
        gain = {bw: total[(1.0, bw)] / total[(0.3, bw)] for bw in (slow, fast)}
        assert total[(0.3, slow)] > total[(0.3, fast)]  # a slower memory never helps
        if net == "VGG-16":  # compute-bound when fast: the gain follows the multiplies, and less when slow
            assert gain[fast] == pytest.approx(1 / 0.3, rel=0.02) and gain[slow] < gain[fast] - 0.5
        else:  # 8×8 maps with 4 tiles: memory-bound at every bandwidth, the gain below the multiplies' 1/0.3
            assert max(gain.values()) < 1 / 0.3 - 0.1
    assert {r["bound"] for r in rows} == {"memory", "compute"}


def test_docs_show_the_roofline_tables_rendered_from_the_recorded_json():
    import json
    from pathlib import Path

    from bench.hw_run import render_roofline

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "bench" / "results" / "hw.json").read_text(encoding="utf-8"))
    assert render_roofline(doc["roofline"]) in (root / "docs" / "hardware.md").read_text(encoding="utf-8")


def test_docs_show_the_tiled_rtl_runs_rendered_from_the_recorded_json():
    """The full-size layers of bench-hw ran bit-exact with every pass's cycles equal to the model."""
    import json
    from pathlib import Path

    from bench.hw_run import render_tiled

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "bench" / "results" / "hw.json").read_text(encoding="utf-8"))
    t = doc["tiled_rtl"]
    assert render_tiled(t) in (root / "docs" / "hardware.md").read_text(encoding="utf-8")
    sizes = {(r["C"], r["K"], r["H"]) for r in t["layers"]}
    assert {(256, 256, 32), (512, 512, 14)} <= sizes
    assert all(r["bit_exact"] and r["passes_equal"] and r["rtl_cycles"] == r["layer_model_cycles"]
               for r in t["layers"])


def test_an_absurd_layer_is_refused_before_the_plan_is_built():
    import time

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"passes .* more than 4,194,304"):
        plan_layer(_cfg(), TiledBuffers(c_block=1, patch_h=1, patch_w=1), in_channels=16, out_channels=4096,
                   size=(4000, 4000), padding=1)
    assert time.perf_counter() - t0 < 1.0


def test_docs_show_the_streaming_rtl_runs_rendered_from_the_recorded_json():
    """The full-size layers through external memory ran bit-exact with the cycles the streaming model gives."""
    import json
    from pathlib import Path

    from bench.hw_run import render_stream

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "bench" / "results" / "hw.json").read_text(encoding="utf-8"))
    t = doc["stream_rtl"]
    assert render_stream(t) in (root / "docs" / "hardware.md").read_text(encoding="utf-8")
    assert {(256, 256, 32), (512, 512, 14)} <= {(r["C"], r["K"], r["H"]) for r in t["layers"]}
    tiled = {r["layer"]: r["rtl_cycles"] for r in doc["tiled_rtl"]["layers"]}
    for r in t["layers"]:
        assert r["bit_exact"] and r["rtl_cycles"] == r["model"]["cycles"]
        assert r["compute_cycles"] == tiled[r["layer"]]  # the same passes as the load-port runs
        assert r["dense_cycles"] > r["rtl_cycles"]


def test_docs_show_the_ulx3s_preset_runs_and_the_presets_memory_rendered_from_the_recorded_json():
    """The real-size issue's done-when commands ran on the preset as it is now, bit-exact with cycles = the
    model; the per-preset memory table is what the code counts today (a change of the count fails here)."""
    import json
    from pathlib import Path

    from bench.hw_run import render_preset, render_preset_memory
    from winnow.boards.presets import PRESETS
    from winnow.steps import board_memory

    root = Path(__file__).resolve().parents[1]
    doc = json.loads((root / "bench" / "results" / "hw.json").read_text(encoding="utf-8"))
    text = (root / "docs" / "hardware.md").read_text(encoding="utf-8")
    t = doc["preset_rtl"]
    assert render_preset(t) in text and render_preset_memory(doc["preset_memory"]) in text
    assert t["array"] == PRESETS[t["preset"]].to_dict(), "the preset changed: re-run python -m bench.hw_run --only preset"
    assert {(256, 256, 32), (64, 128, 56)} == {(r["C"], r["K"], r["H"]) for r in t["layers"]}
    assert all(r["status"] == "passed" and r["bit_exact"] and r["rtl_cycles"] == r["model_cycles"] for r in t["layers"])
    for r in doc["preset_memory"]:
        now = board_memory(PRESETS[r["preset"]], r["preset"], progress=lambda line: None)
        assert (r["block_rams"], r["memory_bits"]) == (now["block_rams"], now["memory_bits"]), r["preset"]
        assert r.get("block_rams_measured", 0) <= r["block_rams_available"]
