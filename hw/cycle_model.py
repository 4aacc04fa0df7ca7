"""Exact cycle model of :class:`winnow.hw.array.WinogradArray` and the physical floor.

The array runs the phases of :mod:`winnow.hw.schedule`. Phase t launches, in one cycle, the
units that have work in it and ends when all are idle; their busy times are::

    input unit   C·L + ITU_LATENCY                  (steps that start a group)
    PEs          max_j (seg_j(b) + pe_latency)      seg_j(b): PE j's entries for block b
    output unit  K_b·L/otu_lanes·Q + otu_latency    K_b: rows of block b; Q = m²/requant

(the latencies are the ABI's: :mod:`winnow.hw.abi`, which the RTL units read too).

In tiled mode (``AccelConfig.tiled``: one pass of a tiled layer per run) the PEs take
one cycle more (the accumulators add the row to the stored partial sum), and the
output unit runs only in a pass with ``finish`` set; otherwise its phases pass idle.

With position-serial memories (``AccelConfig.serial``) the input unit takes
C·L·n² + ITU_LATENCY + n² and the output unit K_b·L/otu_lanes·n² + 6 + Q (the
last tile's Q requantizer cycles follow its n² positions): :func:`itu_cycles`,
:func:`otu_cycles`.

    cycles = Σ_t (1 + max over the units active in phase t) + 1   (the final idle check)

Every PE segment holds at least one entry (an empty one gets a zero-weight
end-of-block marker), so a PE is never idle in a PE phase.

The floor of an array of P·L multipliers is ⌈T · nnz / (P·L)⌉: every non-zero weight
meets every tile once and nothing else is done. The dense baseline runs the same
array on streams holding every weight (:func:`winnow.hw.packer.pack_layer` in dense mode;
:func:`winnow.hw.packer.sparse_and_dense` gives both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from winnow.hw import abi
from winnow.hw.balance import block_rows, segment_lengths
from winnow.hw.config import AccelConfig
from winnow.hw.schedule import phases


def itu_cycles(cfg: AccelConfig, in_channels: int) -> int:
    """Busy cycles of the input unit for one tile group: C·L tiles, n² cycles each when serial."""
    return in_channels * cfg.lanes * abi.itu_tile_cycles(cfg) + abi.itu_latency(cfg)


def otu_cycles(cfg: AccelConfig, rows: int) -> int:
    """Busy cycles of the output unit for one step of ``rows`` output channels."""
    return rows * cfg.lanes // cfg.otu_lanes * abi.otu_item_cycles(cfg) + abi.otu_latency(cfg)


@dataclass(frozen=True)
class CycleReport:
    """Cycles of one layer on one array, with the parts that explain them.

    Attributes
    ----------
    cycles : int
        Exact RUN-state cycles of the RTL.
    floor : int
        ⌈T · nnz / (P·L)⌉.
    itu, pe, otu : int
        Busy cycles of each unit summed over the run (what it would cost alone).
    groups, blocks, tiles, nnz : int
    """

    cycles: int
    floor: int
    itu: int
    pe: int
    otu: int
    groups: int
    blocks: int
    tiles: int
    nnz: int

    @property
    def efficiency(self) -> float:
        """floor / cycles (1.0 is the physical limit); 1.0 for an empty layer."""
        return self.floor / self.cycles if self.floor else 1.0

    @property
    def bottleneck(self) -> str:
        """The unit with the most busy cycles ("pe", "itu" or "otu")."""
        return max((("pe", self.pe), ("itu", self.itu), ("otu", self.otu)), key=lambda kv: kv[1])[0]

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "floor": self.floor, "efficiency": self.efficiency, "itu": self.itu,
                "pe": self.pe, "otu": self.otu, "groups": self.groups, "blocks": self.blocks,
                "tiles": self.tiles, "nnz": self.nnz, "bottleneck": self.bottleneck}  # fmt: skip


def cycles(cfg: AccelConfig, *, in_channels: int, out_channels: int, tiles: int, segments, nnz: int,
           finish: bool = True) -> CycleReport:
    """Exact cycles of a layer whose PE j holds ``segments[j][b]`` entries for block b.

    ``finish`` (tiled mode): the output unit runs; a pass without it only accumulates.
    """
    L = cfg.lanes
    G = math.ceil(tiles / L)
    rows = block_rows(cfg, out_channels)
    seg = np.asarray(segments, dtype=np.int64).reshape(cfg.pes, len(rows))
    itu = itu_cycles(cfg, in_channels)
    pe = [int(seg[:, b].max()) + abi.pe_latency(cfg) for b in range(len(rows))]
    otu = [otu_cycles(cfg, kb) if finish else 0 for kb in rows]
    total = 1
    busy = {"itu": 0, "pe": 0, "otu": 0}
    for ph in phases(G, len(rows)):
        active = [0]
        if ph.itu is not None:
            active.append(itu)
            busy["itu"] += itu
        if ph.pe is not None:
            active.append(pe[ph.pe.block])
            busy["pe"] += pe[ph.pe.block]
        if ph.otu is not None and finish:
            active.append(otu[ph.otu.block])
            busy["otu"] += otu[ph.otu.block]
        total += 1 + max(active)
    floor = math.ceil(tiles * nnz / cfg.multipliers)
    return CycleReport(cycles=total, floor=floor, groups=G, blocks=len(rows), tiles=tiles, nnz=nnz, **busy)


def packed_cycles(packed) -> CycleReport:
    """Cycles of a :class:`winnow.hw.packer.PackedLayer` (its own mode: sparse or dense)."""
    return cycles(packed.config, in_channels=packed.layer.in_channels, out_channels=packed.layer.out_channels,
                  tiles=packed.tiles, segments=packed.segments, nnz=packed.layer.nnz,
                  finish=bool(packed.registers.get("finish", 1)))  # fmt: skip


def shape_cycles(cfg: AccelConfig, *, in_channels: int, out_channels: int, tiles: int,
                 nnz_rows) -> dict[str, CycleReport]:
    """Sparse and dense cycles of a layer known only by its shape and non-zeros per (position, row).

    ``nnz_rows`` is (positions, K): the non-zeros of each row U_p[k, :]. Streams are
    balanced and segmented exactly as the packer does, so this equals
    :func:`packed_cycles` of the packed layer without building huge layers.
    """
    nnz_rows = np.asarray(nnz_rows, dtype=np.int64)
    out = {}
    for mode, counts in (("sparse", nnz_rows), ("dense", np.full_like(nnz_rows, in_channels))):
        seg = segment_lengths(cfg, counts)
        out[mode] = cycles(cfg, in_channels=in_channels, out_channels=out_channels, tiles=tiles, segments=seg,
                           nnz=int(nnz_rows.sum()))  # fmt: skip
    return out
