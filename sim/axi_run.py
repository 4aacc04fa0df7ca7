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

from pathlib import Path

from winnow.hw.axi_master import AxiMasterTop
from winnow.hw.generate import AXI_TOP, axi_master_verilog_text
from winnow.model.files.atomic import atomic_write_json
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import (ROOT, SimulationError, build_dir_lock, refresh_verilog, run_cocotb,
                                   simulator_available)

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
    with build_dir_lock(build_dir):
        vfile = refresh_verilog(build_dir, f"{AXI_TOP}.v",
                                {"params": params, "hw_sources": source_digest("hw"), "cxx_opt": cxx_opt},
                                lambda: axi_master_verilog_text(**params))
        case_file = atomic_write_json(build_dir / "cases.json", cases)
        return run_cocotb(simulator, [vfile], AXI_TOP, _public_ports(params), build_dir, "winnow.sim.tb_axi_master",
                          case_file, cxx_opt)


def burst_violations(commands, bursts, data_bits: int, max_burst: int) -> list[str]:
    """What is wrong with the observed ``bursts`` [(addr, AxLEN)] for ``commands`` [(addr, beats)], in order.

    The AXI4 rules and the engines' own: the bursts tile each command in order, each is 1 …
    ``max_burst`` beats, none crosses a 4 KiB boundary, and each is as long as those limits allow.
    """
    nb = data_bits // 8
    problems, queue = [], list(bursts)
    for addr, beats in commands:
        at, end = addr, addr + beats * nb
        while at < end:
            if not queue:
                problems.append(f"command 0x{addr:x} + {beats}: no burst for 0x{at:x}")
                break
            a, alen = queue.pop(0)
            n = alen + 1
            allowed = min(max_burst, (4096 - a % 4096) // nb, (end - a) // nb)
            if a != at:
                problems.append(f"command 0x{addr:x} + {beats}: burst at 0x{a:x}, expected 0x{at:x}")
            if (a + n * nb - 1) // 4096 != a // 4096:
                problems.append(f"burst 0x{a:x} + {n} beats crosses a 4 KiB boundary")
            if n > max_burst:
                problems.append(f"burst 0x{a:x} has {n} beats, more than max_burst = {max_burst}")
            elif n != allowed:
                problems.append(f"burst 0x{a:x} has {n} beats, {allowed} allowed")
            at = a + n * nb
    problems += [f"burst 0x{a:x} beyond the commands" for a, _ in queue]
    return problems
