"""Run a tiled layer on the generated RTL of a tiled-mode array, pass after pass (cocotb).

``run_tiled(cfg, layer, xq, simulator)`` cuts the layer into passes
(:func:`winnow.hw.tiled_packer.passes`), runs them back to back through the load port on
one simulator instance (the accumulators keep their partial sums from one pass to the
next, as on the board), reads the outputs of every finishing pass and assembles the
layer's output. Each pass's measured cycles come back beside the cycle model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import packed_cycles
from winnow.hw.tiled_packer import assemble, passes, plan_for
from winnow.model.files.layer_file import SparseLayer
from winnow.sim.cocotb_run import CXX_OPT, run_layers


@dataclass
class TiledResult:
    """A tiled layer's output and, per pass, (name, RTL cycles, model cycles)."""

    out: np.ndarray
    passes: list

    @property
    def cycles(self) -> int:
        return sum(c for _, c, _ in self.passes)

    @property
    def model_cycles(self) -> int:
        return sum(c for _, _, c in self.passes)


def run_tiled(cfg: AccelConfig, layer: SparseLayer, xq: np.ndarray, simulator: str = "verilator", build_dir=None,
              cxx_opt: str = CXX_OPT) -> TiledResult:
    plan = plan_for(cfg, layer)
    runs = passes(layer, xq, cfg, plan)
    res = run_layers(cfg, [(r.packed, r.x, r.name) for r in runs], simulator, build_dir=build_dir, cxx_opt=cxx_opt)
    out = assemble(plan, runs, [r.out for r in res])
    return TiledResult(out=out, passes=[(r.name, rr.cycles, packed_cycles(r.packed).cycles)
                                        for r, rr in zip(runs, res)])
