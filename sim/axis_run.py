"""Build the AXI-Stream wrapper's Verilog under Verilator or Icarus and run layers through it (cocotb).

``run_axis(cfg, [(packed, xq, name), …], simulator, build_dir)`` writes
``winnow_array.v``, ``winnow_array_axis.v`` (:func:`winnow.hw.generate.generate` with
``axis=True``, as ``winnow gen`` writes them) and params.json into ``build_dir``, builds
the two once (cached by the simulator's make flow, rebuilt when
the configuration or hw/ changes), and runs every layer back to back through the
AXI-Stream ports with cocotbext-axi (sim/tb_axis.py). It returns per layer the output
(K, Ho, Wo) read back through ``m_axis_out``, the frame lengths TLAST cut it into and
the ``cycles`` port. The build helpers (tools, arguments, environment) are
:mod:`winnow.sim.cocotb_run`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.hw.axis_wrapper import wrapper_signature
from winnow.hw.config import AccelConfig
from winnow.hw.generate import AXIS_TOP, TOP, generate
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import build_dir_lock, CXX_OPT, ROOT, SimulationError, run_cocotb, simulator_available


@dataclass
class AxisResult:
    """One layer through the wrapper: output (K, Ho, Wo), TLAST-delimited frame lengths, RUN cycles."""

    name: str
    out: np.ndarray
    frames: list
    cycles: int
    extra_after_last: bool


def _public_ports(cfg: AccelConfig) -> str:
    """Verilator config making the wrapper's ports (its signature's members) reachable through VPI."""
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{AXIS_TOP}" -var "{p}"'
                                     for p in wrapper_signature(cfg).members]
    return "\n".join(lines) + "\n"


def run_axis(cfg: AccelConfig, layers, simulator: str = "verilator", build_dir=None, *, seed: int = 0,
             source_pause: float = 0.3, sink_pause: float = 0.4, cxx_opt: str = CXX_OPT) -> list[AxisResult]:
    """Run ``layers`` = [(packed, xq, name)] through the AXI-Stream wrapper of ``cfg``.

    ``source_pause`` and ``sink_pause`` are the per-cycle probabilities that the load
    master pauses and that the output sink holds ``tready`` low (``seed`` fixes them).
    """
    from winnow.hw.cycle_model import packed_cycles

    reason = simulator_available(simulator)
    if reason:
        raise SimulationError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim" / f"axis_{simulator}").resolve()
    with build_dir_lock(build_dir):
        vfiles = [build_dir / f"{TOP}.v", build_dir / f"{AXIS_TOP}.v"]  # the core, then the wrapper (the top)
        stamp_text = json.dumps({"config": cfg.to_dict(), "hw_sources": source_digest("hw"), "cxx_opt": cxx_opt},
                                sort_keys=True)
        stamp = build_dir / "config.stamp"
        if not all(f.exists() for f in vfiles) or not stamp.exists() or stamp.read_text() != stamp_text:
            generate(cfg, build_dir, axis=True)
            atomic_write_text(stamp, stamp_text)
        cases = []
        for packed, xq, name in layers:
            model = packed_cycles(packed).cycles
            cases.append({"name": name, "load": packed.load_port_words(xq), "outputs": len(packed.output_reads()),
                          "model_cycles": model, "max_cycles": 2 * model + 1000})
        case_file = atomic_write_json(build_dir / "cases.json", {"seed": seed, "source_pause": source_pause,
                                                                 "sink_pause": sink_pause, "cases": cases})
        results = run_cocotb(simulator, vfiles, AXIS_TOP, _public_ports(cfg), build_dir, "winnow.sim.tb_axis", case_file,
                             cxx_opt)
        out = []
        for (packed, _xq, _name), r in zip(layers, results):
            words = r["out"][:len(packed.output_reads())]  # the frames' count is checked by the caller
            full = words + [0] * (len(packed.output_reads()) - len(words))
            out.append(AxisResult(name=r["name"], out=packed.unpack_reads(full), frames=r["frames"], cycles=r["cycles"],
                                  extra_after_last=r["extra_after_last"]))
        return out
