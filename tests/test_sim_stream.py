"""The streaming array: tiled layers run out of external memory (cocotbext-axi AxiRam on its AXI4 port).

Bit-exact against the reference, cycles equal to the exact model on an unthrottled RAM,
longer but still bit-exact (and the array's own cycles exact) on a throttled one; faults
and bad descriptors stop the run with a named flag and the address."""

import numpy as np
import pytest

from winnow.hw.config import AccelConfig
from winnow.hw.memory_image import layer_image
from winnow.hw.stream_abi import StreamConfig, decode_desc, desc_words, encode_desc
from winnow.hw.tiled_packer import plan_for
from winnow.model.errors import ConfigError
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.cocotb_run import simulator_available
from winnow.sim.layers import random_input, random_layer, reference_output

SHAPES = {  # name: (datapath, array fields, layer (C, K, H, W, padding), layer flags)
    "f23": (dict(m=2, c_max=16), dict(pes=2, lanes=2, otu_lanes=1, k_max=4, h_max=8, w_max=6, c_block=3),
            (7, 6, 11, 9, 1), {}),
    "f43_s2": (dict(m=4, c_max=16), dict(pes=4, lanes=2, clusters=2, otu_lanes=2, k_max=4, h_max=10, w_max=14,
                                         c_block=4), (9, 5, 13, 17, 1), {"winograd_relu": True, "relu": True}),
}


def _setup(name, seed=0):
    dpf, af, (C, K, H, W, pad), flags = SHAPES[name]
    dp = DatapathConfig(m=dpf["m"], r=3, c_max=dpf["c_max"])
    cfg = AccelConfig(datapath=dp, pad_max=0, tiled=True, **af)
    layer = random_layer(dp, C=C, K=K, H=H, W=W, density=0.4, seed=C + K + seed, padding=pad, **flags)
    return cfg, layer, random_input(layer, seed=11 + seed)


def _need(sim):
    reason = simulator_available(sim)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One build directory per (shape, simulator) for the module's tests (each builds once)."""
    root = tmp_path_factory.mktemp("stream")
    return lambda name, sim="verilator": root / f"{name}_{sim}"


# ---------------------------------------------------------------- the memory image (no simulator)
def test_input_map_is_planar_pre_padded_and_word_aligned():
    cfg, layer, xq = _setup("f43_s2")
    s = StreamConfig()
    img = layer_image(layer, cfg, s)
    raw = np.frombuffer(img.input_bytes(xq), dtype=np.int8)
    C, (H, W) = layer.in_channels, layer.size
    assert img.row_stride % s.word_bytes == 0 and img.row_stride >= W + 2
    assert img.input_addr % 4096 == 0 and img.output_addr >= img.input_addr + raw.size
    for c, h, w in [(0, 0, 0), (3, 5, 7), (C - 1, H - 1, W - 1)]:
        assert raw[c * img.chan_stride + (h + 1) * img.row_stride + (w + 1)] == xq[c, h, w]
    assert raw[0] == 0 and raw[img.chan_stride + img.row_stride] == 0  # the padding is zeros
    assert raw[img.chan_stride + img.row_stride + 1] == xq[1, 0, 0]


def test_descriptors_point_at_each_pass_window_and_round_trip():
    cfg, layer, _ = _setup("f23")
    s = StreamConfig()
    img = layer_image(layer, cfg, s)
    D = desc_words(cfg, s) * s.word_bytes
    descs = img.blobs[0][1]
    assert len(descs) == img.passes * D
    plan = plan_for(cfg, layer)
    for i, r in enumerate(img.runs):
        d = decode_desc(cfg, s, descs[i * D:(i + 1) * D])
        assert encode_desc(cfg, s, d) == descs[i * D:(i + 1) * D]
        h0, h1, w0, w1 = r.patch.window(plan.geometry)
        c0 = sum(plan.c_blocks[:r.c_index])
        assert d["x_addr"] + d["x_skip"] == img.input_addr + c0 * img.chan_stride + h0 * img.row_stride + w0
        assert (d["x_rows"], d["x_cols"], d["x_c"], d["finish"]) == (h1 - h0, w1 - w0, plan.c_blocks[r.c_index],
                                                                      int(r.finish))
        assert d["x_beats"] * s.word_bytes >= d["x_skip"] + d["x_cols"] > (d["x_beats"] - 1) * s.word_bytes


def test_read_output_assembles_tile_major_words():
    """Memory written by hand in the documented order (channel, tile, m×m row by row) gives the layer's output."""
    cfg, layer, xq = _setup("f23")
    s = StreamConfig()
    img = layer_image(layer, cfg, s)
    y = reference_output(layer, xq)
    m = cfg.m
    mem = bytearray(img.end)
    plan = img.plan
    for r, slot in zip(img.runs, img.out_slots):
        if slot is None:
            continue
        oh0, oh1, ow0, ow1 = r.patch.out_rows(plan.geometry)
        k0 = r.block * cfg.k_block
        th, tw = r.packed.geometry.tiles
        at = slot[0]
        for k in range(r.packed.layer.out_channels):
            for t in range(th * tw):
                for i in range(m):
                    for j in range(m):
                        ho, wo = oh0 + (t // tw) * m + i, ow0 + (t % tw) * m + j
                        inside = ho < oh1 and wo < ow1
                        mem[at] = int(y[k0 + k, ho, wo]) & 0xFF if inside else 0x5A  # outside: ignored
                        at += 1
    out = img.read_output(lambda a, n: bytes(mem[a:a + n]))
    np.testing.assert_array_equal(out, y)


def test_bad_configurations_are_refused_with_the_rule():
    cfg, layer, _ = _setup("f23")
    with pytest.raises(ConfigError, match="tiled"):
        layer_image(layer, cfg.changed(tiled=False, c_block=None), StreamConfig())
    with pytest.raises(ConfigError, match="load-port word"):
        layer_image(layer, cfg, StreamConfig(data_bits=32))
    with pytest.raises(ConfigError, match="row_fifo"):
        layer_image(layer, cfg, StreamConfig(row_fifo=1))
    with pytest.raises(ConfigError, match="base address"):
        layer_image(layer, cfg, StreamConfig(), base=100)
    with pytest.raises(ConfigError, match="fit"):
        encode_desc(cfg, StreamConfig(), {**decode_desc(cfg, StreamConfig(), bytes(64)), "x_c": 1 << 20})


# ---------------------------------------------------------------- RTL with AxiRam
@pytest.mark.parametrize("name", list(SHAPES))
def test_streamed_layer_is_bit_exact_and_takes_the_modelled_cycles(name, builds):
    _need("verilator")
    from winnow.sim.stream_run import StreamCase, run_stream

    cfg, layer, xq = _setup(name)
    cases = [StreamCase(layer, xq, "plain")]
    if name == "f23":  # AxiRam throttled on every channel (the F(4,3) layer's run is longer: plain only)
        slow = {ch: {"random": 0.4, "seed": 3 + i} for i, ch in enumerate(("ar", "r", "aw", "w", "b"))}
        cases.append(StreamCase(layer, xq, "throttled", pause=slow))
    res = run_stream(cfg, cases, "verilator", build_dir=builds(name), cxx_opt="-O0")
    ref = reference_output(layer, xq)
    for r in res:
        assert not r.error and not r.timed_out, (r.name, r.faults)
        np.testing.assert_array_equal(r.out, ref)
        assert r.compute_cycles == r.model.compute  # the array's own cycles, pass by pass, as modelled
    plain = res[0]
    assert plain.cycles == plain.model.cycles == plain.start_to_done
    if len(res) > 1:
        assert res[1].cycles > plain.cycles  # a slower memory: more cycles, the same result
    m = plain.model
    assert m.passes == len(plan_for(cfg, layer).jobs) * len(plan_for(cfg, layer).c_blocks)
    # the windows: every pass's C block × rows × columns, a pixel a cycle, after the first word's 4 cycles + 1
    plan = plan_for(cfg, layer)
    pixels = 0
    for patch, _ in plan.jobs:
        h0, h1, w0, w1 = patch.window(plan.geometry)
        pixels += sum(plan.c_blocks) * (h1 - h0) * (w1 - w0)
    assert m.window == pixels + 5 * m.passes


def test_streamed_layer_on_icarus(builds):
    _need("icarus")
    from winnow.sim.stream_run import StreamCase, run_stream

    cfg, layer, xq = _setup("f23", seed=1)
    (r,) = run_stream(cfg, [StreamCase(layer, xq)], "icarus", build_dir=builds("f23", "icarus"))
    np.testing.assert_array_equal(r.out, reference_output(layer, xq))
    assert r.cycles == r.model.cycles


def test_faults_and_bad_descriptors_stop_the_run_with_the_flag_and_address(builds):
    _need("verilator")
    from winnow.sim.stream_run import StreamCase, run_stream

    cfg, layer, xq = _setup("f23")
    s = StreamConfig()
    img = layer_image(layer, cfg, s)
    D = desc_words(cfg, s) * s.word_bytes

    def bad_cols(image, blobs):  # pass 1's window wider than the array's w_max
        (a, descs), *rest = blobs
        d = decode_desc(cfg, s, descs[D:2 * D])
        d.update(x_cols=cfg.w_max + 1, x_beats=-(-(d["x_skip"] + cfg.w_max + 1) // s.word_bytes))
        return [(a, descs[:D] + encode_desc(cfg, s, d) + descs[2 * D:]), *rest]

    second = img.loads_addr + (img.input_addr - img.loads_addr) // 2
    cases = [StreamCase(layer, xq, "bad_desc", edit=bad_cols),
             StreamCase(layer, xq, "slverr", faults=[(second, second + 16, 2)]),
             StreamCase(layer, xq, "dead_r", pause={"r": {"always": 1}}),
             StreamCase(layer, xq, "no_passes", passes=0)]
    bad, slverr, dead, none = run_stream(cfg, cases, "verilator", stream=s, build_dir=builds("f23"), cxx_opt="-O0")
    assert bad.error and bad.faults == ["bad_desc"] and bad.error_addr == img.desc_addr + D
    assert slverr.error and "read_error" in slverr.faults
    assert img.loads_addr <= slverr.error_addr <= second
    assert dead.error and dead.faults == ["timeout"] and not dead.timed_out
    assert dead.error_addr == img.desc_addr  # the first read never gets its data
    assert not none.error and none.cycles == 1


def test_descriptor_bytes_read_through_amaranths_layout_give_the_window():
    """The descriptor's bits, read with Amaranth's own ``data.Const`` of the layout (what the controller's
    view reads), give each pass's window geometry and load-word count."""
    from amaranth.lib import data

    from winnow.hw.stream_abi import pass_layout

    cfg, layer, _ = _setup("f43_s2")
    s = StreamConfig()
    img = layer_image(layer, cfg, s)
    D = desc_words(cfg, s) * s.word_bytes
    layout = pass_layout(cfg, s)
    plan = img.plan
    for i in (0, 1, img.passes - 1):
        r = img.runs[i]
        c = data.Const(layout, int.from_bytes(img.blobs[0][1][i * D:(i + 1) * D], "little"))
        h0, h1, w0, w1 = r.patch.window(plan.geometry)
        assert (c["x_rows"], c["x_cols"], c["finish"]) == (h1 - h0, w1 - w0, int(r.finish))
        assert c["loads"] == len(r.packed.load_port_words(None)) and c["out_k"] == r.packed.layer.out_channels


def test_docs_hold_the_rendered_descriptor_table():
    import re
    from pathlib import Path

    from winnow.hw.stream_abi import markdown_table

    text = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text(encoding="utf-8")
    mo = re.search(r"<!-- stream:begin -->\n(.*?)<!-- stream:end -->", text, re.S)
    assert mo and mo.group(1) == markdown_table()


def test_an_interrupted_job_leaves_partial_sums_and_the_flush_pass_clears_them(builds):
    """A run stopped after the first pass of a job (C blocks still to come) leaves that pass's sums in the
    accumulators: the next run of the layer comes out wrong. One flush pass (no weights, largest window,
    finishing) in between clears them: the layer is bit-exact again."""
    _need("verilator")
    from winnow.hw.memory_image import flush_layer
    from winnow.sim.stream_run import StreamCase, run_stream

    cfg, layer, xq = _setup("f23")
    assert len(plan_for(cfg, layer).c_blocks) > 1
    flush = flush_layer(cfg)
    assert flush.nnz == 0 and len(layer_image(flush, cfg).runs) == 1
    cases = [StreamCase(layer, xq, "interrupted", passes=1), StreamCase(layer, xq, "after"),
             StreamCase(layer, xq, "interrupted_again", passes=1), StreamCase(flush, np.zeros((1, *flush.size))),
             StreamCase(layer, xq, "after_flush")]
    res = run_stream(cfg, cases, "verilator", build_dir=builds("f23"), cxx_opt="-O0")
    ref = reference_output(layer, xq)
    assert not np.array_equal(res[1].out, ref)  # the stale sums of the interrupted job
    assert res[3].out is not None and not res[3].error
    np.testing.assert_array_equal(res[4].out, ref)
