# amaranth: UnusedElaboratable=no
"""The AXI-Stream wrapper (hw/axis_wrapper.py): ports from the core's signature, read-back order, RTL runs.

* every wrapper port is as wide as the core port it adapts (``tdata`` rounded up to
  bytes), for several arrays, and the emitted Verilog declares those widths;
* the read-back walker visits exactly :meth:`PackedLayer.output_reads` (Amaranth
  simulation, several tiles, OTU lane counts and geometries, with stalls);
* the generated ``winnow_array_axis`` under Verilator (the default ``winnow gen``
  array and two other shapes) and Icarus, driven by cocotbext-axi with random source
  pauses and sink back-pressure: every output bit-exact against the NumPy reference,
  TLAST on the last output only, ``cycles`` equal to the cycle model.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from winnow.hw.axis_wrapper import CONTROL, OutputWalker, byte_width, core_signature, wrapper_signature
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.generate import AXIS_TOP, TOP, axis_verilog_text, verilog_text
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_input, random_layer, reference_output

BUILD = Path(__file__).resolve().parents[1] / "build" / "sim"
#: The layers are short: a model compiled without optimisation builds several times faster.
CXX_OPT = "-O0"


def _default_array() -> AccelConfig:
    """What ``winnow gen --out DIR`` builds without array options (through the CLI's own resolution)."""
    from winnow.cli import _resolve_array, parser

    return _resolve_array(parser().parse_args(["gen", "--out", "unused"]))


#: Small arrays besides the default: F(2,3) with two PE clusters, two K blocks and a two-lane OTU,
#: and a position-serial F(2,3).
SHAPES = {
    "f23_s2": lambda: AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=4, clusters=2, lanes=2,
                                  otu_lanes=2, k_max=8, k_block=4, h_max=9, w_max=9),
    "f23_serial": lambda: AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=2, clusters=2, lanes=2,
                                      otu_lanes=1, k_max=6, h_max=8, w_max=8, serial=True),
}
#: Arrays whose port widths are checked: the above, F(6,3) with shared requantizers and a 3-lane
#: OTU, and 6-bit activations (an output word that is not a whole byte).
WIDTH_CONFIGS = {
    **SHAPES,
    "f63": lambda: AccelConfig(datapath=DatapathConfig(m=6, r=3, c_max=16), pes=4, lanes=3, otu_lanes=3,
                               requant=4, k_max=8, h_max=14, w_max=14),
    "act6": lambda: AccelConfig(datapath=DatapathConfig(m=2, r=3, act_bits=6, weight_bits=6, c_max=4), pes=2,
                                lanes=2, k_max=4, h_max=6, w_max=6),
}


def _width(member) -> int:
    return Shape.cast(member.shape).width


# ---------------------------------------------------------------------------- ports
@pytest.mark.parametrize("name", ["default", *WIDTH_CONFIGS])
def test_wrapper_ports_are_as_wide_as_the_core_ports(name):
    cfg = _default_array() if name == "default" else WIDTH_CONFIGS[name]()
    core, top = core_signature(cfg).members, wrapper_signature(cfg).members
    payload = _width(core["load"].signature.members["payload"])
    assert _width(top["s_axis_load_tdata"]) == -(-payload // 8) * 8
    assert _width(top["m_axis_out_tdata"]) == -(-_width(core["rd_data"]) // 8) * 8
    for port in CONTROL:
        assert (top[port].flow, _width(top[port])) == (core[port].flow, _width(core[port])), port
    walker = OutputWalker(cfg, _width(core["rd_bank"]), _width(core["rd_addr"])).signature.members
    walker_out = {"bank": "rd_bank", "addr": "rd_addr"}
    for port, core_port in walker_out.items():  # the walker reaches every bank and address of the core
        assert _width(walker[port]) == _width(core[core_port]), port
        assert 2 ** _width(walker[port]) >= {"bank": cfg.out_banks, "addr": cfg.out_depth}[port]
    flows = {p: top[p].flow for p in top}
    assert {p for p, f in flows.items() if f == In} >= {"aclk", "aresetn", "s_axis_load_tvalid", "s_axis_load_tdata",
                                                        "s_axis_load_tlast", "m_axis_out_tready", "out_start"}
    assert {p for p, f in flows.items() if f == Out} >= {"s_axis_load_tready", "m_axis_out_tvalid",
                                                         "m_axis_out_tdata", "m_axis_out_tlast", "out_busy"}


@pytest.mark.parametrize("name", ["default", *WIDTH_CONFIGS])
def test_tdata_is_whole_bytes(name):
    cfg = _default_array() if name == "default" else WIDTH_CONFIGS[name]()
    top = wrapper_signature(cfg).members
    for port in ("s_axis_load_tdata", "m_axis_out_tdata"):
        assert _width(top[port]) % 8 == 0 and _width(top[port]) > 0, port
    assert [byte_width(b) for b in (1, 7, 8, 9, 75, 80)] == [8, 8, 8, 16, 80, 80]


def test_default_array_reads_back_every_output_bank():
    """The hand-written wrapper this replaces declared rd_bank 4 bits wide: 16 of the default array's 64 banks."""
    cfg = _default_array()
    assert cfg.out_banks == 64
    assert _width(core_signature(cfg).members["rd_bank"]) == 6


def test_emitted_verilog_declares_the_signature_widths():
    cfg = SHAPES["f23_s2"]()
    text = axis_verilog_text(cfg)
    head = text[text.index(f"module {AXIS_TOP}("):]
    head = head[:head.index("endmodule")]
    decl = {name: (d, int(hi) + 1 if hi else 1)
            for d, hi, name in re.findall(r"^  (input|output) (?:\[(\d+):0\] )?(\w+);", head, flags=re.M)}
    top = wrapper_signature(cfg).members
    assert set(decl) == set(top)
    for port, member in top.items():
        assert decl[port] == ("input" if member.flow == In else "output", _width(member)), port



def test_the_wrapper_instantiates_the_core_module_with_every_one_of_its_ports():
    """The wrapper's file holds only the wrapper; its instance of winnow_array names exactly the core's ports."""
    cfg = SHAPES["f23_s2"]()
    core_text = verilog_text(cfg)
    core_ports = set(re.search(rf"^module {TOP}\(([^)]*)\);", core_text, flags=re.M).group(1).replace(" ", "").split(","))
    wrapper = axis_verilog_text(cfg)
    assert f"module {TOP}(" not in wrapper  # converted once, in winnow_array.v
    inst = re.search(rf"^  {TOP} (\S+) \((.*?)\);", wrapper, flags=re.M | re.S)
    assert inst is not None, "no instance of the core"
    assert set(re.findall(r"\.(\w+)\(", inst.group(2))) == core_ports


# ---------------------------------------------------------------------------- read-back order (pysim)
WALKS = [  # (config, [(C, K, H, W, padding)])
    (dict(m=2, pes=4, clusters=2, lanes=2, otu_lanes=2, k_max=8, k_block=4, h_max=9, w_max=9),
     [(2, 3, 7, 9, 1), (1, 1, 1, 1, 1), (2, 8, 9, 4, 0)]),
    (dict(m=3, pes=4, lanes=3, otu_lanes=3, k_max=5, h_max=11, w_max=11),
     [(1, 5, 11, 10, 1), (2, 2, 4, 7, 0)]),
    (dict(m=6, pes=4, lanes=4, otu_lanes=4, requant=4, k_max=3, h_max=14, w_max=14),
     [(1, 3, 14, 13, 1), (1, 2, 6, 9, 1)]),
]


def _walk_config(fields: dict) -> AccelConfig:
    fields = dict(fields)
    return AccelConfig(datapath=DatapathConfig(m=fields.pop("m"), r=3, c_max=4), **fields)


@pytest.mark.parametrize("case", range(len(WALKS)))
def test_walker_visits_output_reads_in_order(case):
    fields, layers = WALKS[case]
    cfg = _walk_config(fields)
    core = core_signature(cfg).members
    dut = OutputWalker(cfg, _width(core["rd_bank"]), _width(core["rd_addr"]))
    packs = [pack_layer(random_layer(cfg.datapath, C=C, K=K, H=H, W=W, density=0.5, padding=pad, seed=i), cfg)
             for i, (C, K, H, W, pad) in enumerate(layers)]
    got = []

    async def bench(ctx):
        rng = random.Random(case)
        for p in packs:
            K, (Ho, Wo) = p.layer.out_channels, p.geometry.out
            ctx.set(dut.last_k, K - 1)
            ctx.set(dut.last_ho, Ho - 1)
            ctx.set(dut.last_wo, Wo - 1)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            seen = []
            while ctx.get(dut.valid):
                step = rng.random() < 0.7  # the FIFO is not always ready
                ctx.set(dut.next, step)
                if step:
                    seen.append((ctx.get(dut.bank), ctx.get(dut.addr), ctx.get(dut.last)))
                await ctx.tick()
                assert len(seen) <= K * Ho * Wo
            got.append(seen)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for p, seen in zip(packs, got):
        want = p.output_reads()
        assert [(b, a) for b, a, _ in seen] == want
        assert [lst for _, _, lst in seen] == [0] * (len(want) - 1) + [1]


# ---------------------------------------------------------------------------- RTL through cocotbext-axi
#: (C, K, H, W, density, padding, extreme, relu): sizes not divisible by m, both paddings, the value corners.
LAYERS = [(5, 6, 7, 9, 0.4, 1, False, True), (8, 5, 8, 5, 1.0, 0, True, False)]


def _items(cfg: AccelConfig, seed: int):
    items = []
    for i, (C, K, H, W, d, pad, ext, relu) in enumerate(LAYERS):
        C, K = min(C, cfg.c_max), min(K, cfg.k_max)
        H, W = min(H, cfg.h_max), min(W, cfg.w_max)
        layer = random_layer(cfg.datapath, C=C, K=K, H=H, W=W, density=d, padding=pad, extreme=ext, relu=relu,
                             seed=seed + i, name=f"l{i}")
        items.append((pack_layer(layer, cfg), random_input(layer, seed=seed + 50 + i, extreme=ext), f"l{i}"))
    return items


def _run_and_check(cfg: AccelConfig, simulator: str, build: str, seed: int):
    from winnow.sim.axis_run import run_axis
    from winnow.sim.cocotb_run import simulator_available

    reason = simulator_available(simulator)
    if reason:
        pytest.skip(reason)
    items = _items(cfg, seed)
    results = run_axis(cfg, items, simulator, build_dir=BUILD / build, seed=seed, cxx_opt=CXX_OPT)
    for (packed, xq, name), res in zip(items, results):
        outputs = len(packed.output_reads())
        assert res.frames == [outputs], f"{name}: TLAST cut the {outputs} outputs into frames {res.frames}"
        assert not res.extra_after_last, f"{name}: the master kept sending after the last output"
        want = reference_output(packed.layer, xq)
        diff = np.argwhere(res.out != want)
        assert diff.size == 0, f"{name}: {len(diff)} outputs differ, first at (k, h, w) = {tuple(diff[0])}: " \
                               f"RTL {res.out[tuple(diff[0])]}, reference {want[tuple(diff[0])]}"
        model = packed_cycles(packed).cycles
        assert res.cycles == model, f"{name}: RTL {res.cycles} cycles, model {model}"


def test_verilator_default_array():
    _run_and_check(_default_array(), "verilator", "axis_verilator_default", seed=1)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_verilator_small_arrays(shape):
    _run_and_check(SHAPES[shape](), "verilator", f"axis_verilator_{shape}", seed=2)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_icarus_small_arrays(shape):
    _run_and_check(SHAPES[shape](), "icarus", f"axis_icarus_{shape}", seed=3)
