# amaranth: UnusedElaboratable=no
"""Build the AXI4 master engines' top under Verilator or Icarus and run command lists against ``AxiRam``.

``run_axi(params, cases, simulator, build_dir)`` writes ``winnow_axi_master.v``
(:func:`winnow.hw.generate.axi_master_verilog_text` of ``params``, the engines'
parameters) into ``build_dir``, builds it once (rebuilt when ``params`` or hw/ changes)
and runs the cases of :mod:`winnow.sim.tb_axi_master` (its docstring has their format
and the results' fields) through cocotb, returning one result dict per case. The build
helpers are :mod:`winnow.sim.cocotb_run`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from winnow.hw.axi_master import AxiMasterTop
from winnow.hw.generate import AXI_TOP, axi_master_verilog_text
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import ROOT, SimulationError, run_cocotb, simulator_available

#: The design is small and the runs short: a model compiled without optimisation builds fastest.
CXX_OPT = "-O0"


def _public_ports(params: dict) -> str:
    """Verilator config making every top-level port reachable through VPI."""
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{AXI_TOP}" -var "{p}"'
                                     for p in AxiMasterTop(**params).signature.members]
    return "\n".join(lines) + "\n"


def run_axi(params: dict, cases: list[dict], simulator: str = "verilator", build_dir=None,
            cxx_opt: str = CXX_OPT) -> list[dict]:
    """Run ``cases`` on :class:`winnow.hw.axi_master.AxiMasterTop` (``params``) with ``AxiRam`` on its port."""
    reason = simulator_available(simulator)
    if reason:
        raise SimulationError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim" / f"axi_{simulator}").resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    vfile = build_dir / f"{AXI_TOP}.v"
    stamp_text = json.dumps({"params": params, "hw_sources": source_digest("hw"), "cxx_opt": cxx_opt}, sort_keys=True)
    stamp = build_dir / "config.stamp"
    if not vfile.exists() or not stamp.exists() or stamp.read_text() != stamp_text:
        atomic_write_text(vfile, axi_master_verilog_text(**params))
        atomic_write_text(stamp, stamp_text)
    case_file = atomic_write_json(build_dir / "cases.json", cases)
    return run_cocotb(simulator, [vfile], AXI_TOP, _public_ports(params), build_dir, "winnow.sim.tb_axi_master",
                      case_file, cxx_opt)
