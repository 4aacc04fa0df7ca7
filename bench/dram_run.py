"""Synthesis of the ULX3S stream top (streaming array + LiteDRAM SDRAM core): bench/results/dram.json.

``python -m bench.dram_run [--pnr] [--out build/dram]``: generates the LiteDRAM core
(:mod:`winnow.boards.dram`), elaborates :class:`winnow.boards.stream_top.StreamTop` for
the LFE5U-85F with a small streaming array, synthesizes the core alone and the whole
design with yosys (YoWASP), and with ``--pnr`` places and routes the whole design with
nextpnr-ecp5. Resource counts come from the yosys netlists (LUT = LUT4 + 2 per carry or
distributed-RAM cell, as nextpnr counts TRELLIS_COMB) and, after place and route, from
``nextpnr --report``. Every tool's command line and version go into the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path

from winnow.hw.config import AccelConfig
from winnow.hw.stream_abi import StreamConfig
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.integer.datapath import DatapathConfig

from winnow.boards.dram import DramConfig, generate_core, package_versions
from winnow.boards.errors import ToolFailedError
from winnow.boards.registry import get_board
from winnow.boards.reports import netlist_cells, netlist_usage
from winnow.boards.stream_top import StreamTop
from winnow.boards.toolchain import find_tool, tool_versions
from winnow.boards.uart import divisor_for

RESULTS = Path(__file__).parent / "results" / "dram.json"
#: The small streaming array of the measurement.
ARRAY = dict(tiled=True, pes=4, lanes=4, k_max=16, h_max=10, w_max=10, pad_max=0, c_block=16)
DATAPATH = dict(m=2, r=3, c_max=64)


def small_config() -> AccelConfig:
    return AccelConfig.resolved(DatapathConfig(**DATAPATH), **ARRAY)


def _run(cmd: list[str], cwd: Path, log: str) -> float:
    t0 = time.perf_counter()
    with open(cwd / log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = (cwd / log).read_text(errors="replace")[-2000:]
        raise ToolFailedError(f"{' '.join(cmd)} failed (exit {proc.returncode}); log {cwd / log}:\n{tail}")
    return round(time.perf_counter() - t0, 1)


def _version(pkg):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _sim_run(build_dir: Path) -> dict:
    """The layer of tests/test_boards_dram.py through LiteDRAM's controller and SDRAM model (sim/dram_run.py)."""
    import numpy as np

    from winnow.sim.dram_run import run_stream_dram
    from winnow.sim.layers import random_input, random_layer, reference_output
    from winnow.sim.stream_run import StreamCase

    dp = DatapathConfig(m=2, r=3, c_max=16)
    fields = dict(pad_max=0, tiled=True, pes=2, lanes=2, otu_lanes=1, k_max=4, h_max=8, w_max=6, c_block=3)
    cfg = AccelConfig(datapath=dp, **fields)
    layer = random_layer(dp, C=7, K=6, H=11, W=9, density=0.4, seed=13, padding=1)
    xq = random_input(layer, seed=11)
    t0 = time.perf_counter()
    (r,) = run_stream_dram(cfg, [StreamCase(layer, xq)], build_dir=build_dir)
    return {"layer": {"C": 7, "K": 6, "H": 11, "W": 9, "padding": 1, "density": 0.4, "seed": 13},
            "array": {"datapath": {"m": 2, "r": 3, "c_max": 16}, **fields}, "passes": r.image.passes,
            "rtl_cycles": r.cycles, "model_cycles": r.model.cycles,
            "model_note": "hw/stream_timing.py: a memory that answers at once (the AxiRam of sim/stream_run.py)",
            "bit_exact": bool(r.out is not None and np.array_equal(r.out, reference_output(layer, xq))),
            "error": r.error, "wall_s": round(time.perf_counter() - t0, 1),
            "command": "winnow.sim.dram_run.run_stream_dram (Verilator, LiteDRAM SDRAMPHYModel)"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/dram")
    ap.add_argument("--pnr", action="store_true", help="also place and route (nextpnr-ecp5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sim", action="store_true",
                    help="also run a layer through LiteDRAM's simulation core (SDRAM model) under Verilator")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    board = get_board("ulx3s")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    n = 4 + args.pnr + args.sim
    rec: dict = {"board": "ulx3s", "device": board.device}

    print(f"[1/{n}] generate the LiteDRAM core")
    dcfg = DramConfig()
    t0 = time.perf_counter()
    core = generate_core(dcfg, out / "litedram")
    rec["litedram"] = {"config": dcfg.__dict__, "generator_config": dcfg.litedram_config(), "info": core.info,
                       "init_writes": len(core.init_writes), "seconds": round(time.perf_counter() - t0, 1),
                       "command": "python -m winnow.boards.dram <dir> (litedram.gen.LiteDRAMCore + Builder)"}

    print(f"[2/{n}] elaborate the stream top")
    cfg = small_config()
    clock = dcfg.sys_clk_hz
    divisor = divisor_for(clock, 115200)
    top = StreamTop(cfg, core, divisor=divisor)
    plat = board.make_platform()
    nextpnr_opts = f"--report top.report.json --seed {args.seed} --timing-allow-fail --router router2"
    plan = plat.build(top, name="top", do_build=False, emit_src=False, debug_verilog=False,
                      nextpnr_opts=nextpnr_opts)
    plan.extract(out)
    cfg.write_params(out)
    commands = json.loads(plan.files["build_top.json"])["commands"]
    rec["array"] = {"datapath": DATAPATH, **ARRAY, "stream": StreamConfig(data_bits=128, addr_bits=core.axi_addr_bits).to_dict()}
    rec["clock_mhz"] = clock / 1e6
    rec["uart"] = {"baud": 115200, "divisor": divisor}

    yosys = find_tool("yosys")
    print(f"[3/{n}] synthesize the LiteDRAM core alone (yosys)")
    atomic_write_text(out / "core.ys", f"read_verilog {core.verilog.name}\nsynth_ecp5 -top {dcfg.name}\n"
                                       "write_json core.json\n")
    (out / core.verilog.name).write_text(core.verilog.read_text())
    secs = _run(yosys + ["-q", "-l", "core.rpt", "core.ys"], out, "core_yosys.log")
    cells = netlist_cells(out / "core.json")
    rec["core_alone"] = {"command": "yosys -q -l core.rpt core.ys (read_verilog; synth_ecp5 -top litedram_core)",
                         "seconds": secs, "resources": netlist_usage(board, cells),
                         "cells": {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}}
    print(f"      core: {rec['core_alone']['resources']} ({secs} s)")

    print(f"[4/{n}] synthesize the whole design (yosys)")
    ycmd = next(c for c in commands if c[0] == "yosys")
    secs = _run(yosys + ycmd[1:], out, "yosys.log")
    cells = netlist_cells(out / "top.json")
    rec["whole_synth"] = {"command": " ".join(ycmd), "seconds": secs, "resources": netlist_usage(board, cells),
                          "cells": {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}}
    print(f"      whole: {rec['whole_synth']['resources']} ({secs} s)")

    if args.pnr:
        print(f"[5/{n}] place and route (nextpnr-ecp5)")
        ncmd = next(c for c in commands if c[0] == "nextpnr-ecp5")
        secs = _run(find_tool("nextpnr-ecp5") + ncmd[1:], out, "nextpnr.log")
        rep = json.loads((out / "top.report.json").read_text())
        util = rep.get("utilization", {})
        keys = board.report_keys
        res = {r: {"used": util[k]["used"], "available": util[k]["available"]} for r, k in keys.items() if k in util}
        fmax = {k: round(v["achieved"], 1) for k, v in rep.get("fmax", {}).items()}
        rec["whole_pnr"] = {"command": " ".join(ncmd), "seconds": secs, "resources": res, "fmax_mhz": fmax,
                            "target_mhz": clock / 1e6}
        print(f"      placed and routed: {res}, Fmax {fmax} ({secs} s)")

    if args.sim:
        print(f"[{n}/{n}] a layer through LiteDRAM's SDRAM model (Verilator)")
        rec["through_litedram_sim"] = _sim_run(out / "sim")
        r = rec["through_litedram_sim"]
        print(f"      through LiteDRAM's SDRAM model: {r['rtl_cycles']:,} cycles (ideal RAM model "
              f"{r['model_cycles']:,}), bit-exact {r['bit_exact']}")

    rec["tools"] = {**tool_versions(board), **package_versions(), "verilator": _version("verilator"),
                    "cocotb": _version("cocotb")}
    rec["git_commit"] = _git_commit()
    rec["capacity"] = board.capacity
    rec["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(RESULTS, rec)
    print(f"wrote {RESULTS}")
    return rec


if __name__ == "__main__":
    main()
