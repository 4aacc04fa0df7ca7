"""Run layers end to end through the HostLink's UART under Verilator or Icarus (cocotb).

``run_hostlink(cfg, [(packed, xq, name)], simulator, build_dir, divisor=4)`` exports the
Verilog (:func:`winnow.boards.export.export_verilog`), builds it once (cached by a stamp of the
configuration and the generator sources), runs ``boards/tb_hostlink.py`` and returns per
layer the outputs, the cycle count read over the serial line, and timings.
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.model.files.atomic import atomic_write_text
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import build_dir_lock, simulator_runner, build_args, cocotb_env, simulator_available, tool_env, tool_environ

from winnow.boards.export import TOP, export_verilog

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LinkRun:
    name: str
    out: np.ndarray
    cycles: int
    wall_s: float
    sim_cycles: int
    bytes_to_board: int
    bytes_from_board: int


def run_hostlink(cfg: AccelConfig, layers, simulator: str = "verilator", build_dir=None, *, divisor: int = 4,
                 timeout_bytes: int = 64, opt: str = "-O1") -> tuple[list[LinkRun], dict]:
    """Run ``layers`` = [(packed, xq, name)] through the UART; returns (runs, timings)."""
    from cocotb_tools.runner import get_results

    reason = simulator_available(simulator)
    if reason:
        raise RuntimeError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim_hostlink" / simulator).resolve()
    with build_dir_lock(build_dir):
        t0 = time.perf_counter()
        stamp = build_dir / "config.stamp"
        key = json.dumps({"config": cfg.to_dict(), "divisor": divisor, "timeout_bytes": timeout_bytes, "opt": opt,
                          "sources": source_digest("hw", "boards")}, sort_keys=True)
        sources = [build_dir / "winnow_array.v", build_dir / f"{TOP}.v"]
        if not stamp.exists() or stamp.read_text() != key or not all(s.exists() for s in sources):
            export_verilog(cfg, build_dir, divisor=divisor, timeout_bytes=timeout_bytes)
            stamp.write_text(key)
        case_file = build_dir / "cases.pkl"
        case_file.write_bytes(pickle.dumps([tuple(item[:3]) if len(item) > 2 else (item[0], item[1], f"layer{i}")
                                            for i, item in enumerate(layers)]))
        res_file = build_dir / "results.json"
        if res_file.exists():
            res_file.unlink()
        # the model runs for seconds, not minutes: compile it quickly rather than well
        with tool_environ(tool_env(opt, slow_opt=opt)):
            # only the ports the testbench touches are public to VPI (as winnow.sim.cocotb_run does): with every
            # signal public, GCC -O1 spent over 25 minutes on Verilator's symbol-table constructor once the
            # array's typed ports passed its split threshold (3,821 public variables)
            runner = simulator_runner(simulator)
            if simulator == "verilator":  # the runner takes the last source as the top's language
                sources = [atomic_write_text(build_dir / "ports.vlt", "`verilator_config\n" + "".join(
                    f'public_flat_rw -module "{TOP}" -var "{p}"\n' for p in ("clk", "rst", "rx", "tx")))] + sources
            runner.build(sources=sources, hdl_toplevel=TOP, build_dir=build_dir, build_args=build_args(simulator),
                         timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
            t1 = time.perf_counter()
            xml = runner.test(test_module="winnow.boards.tb_hostlink", hdl_toplevel=TOP, build_dir=build_dir,
                              test_dir=build_dir, timescale=("1ns", "1ps"), log_file=build_dir / "test.log",
                              extra_env=cocotb_env(WINNOW_HL_CASES=str(case_file), WINNOW_HL_RESULTS=str(res_file),
                                                   WINNOW_HL_DIVISOR=str(divisor)))
        t2 = time.perf_counter()
        n_tests, n_fail = get_results(Path(xml))
        if n_fail or not res_file.exists():
            log = (build_dir / "test.log").read_text()[-3000:] if (build_dir / "test.log").exists() else ""
            raise RuntimeError(f"HostLink cocotb run under {simulator} failed ({n_fail} of {n_tests}); log tail:\n{log}")
        runs = []
        for item, r in zip(layers, json.loads(res_file.read_text())):
            runs.append(LinkRun(name=r["name"], out=np.asarray(r["out"], dtype=np.int64), cycles=r["cycles"],
                                wall_s=r["wall_s"], sim_cycles=r["sim_cycles"], bytes_to_board=r["bytes_to_board"],
                                bytes_from_board=r["bytes_from_board"]))
        return runs, {"build_s": t1 - t0, "test_s": t2 - t1, "total_s": t2 - t0}
