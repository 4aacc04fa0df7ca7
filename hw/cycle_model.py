"""Exact cycle model of :class:`hw.array.WinogradArray` and the physical floor.

The array runs G + 2 phases for G = ⌈T/L⌉ tile groups (schedule in :mod:`hw.array`).
Phase t launches, in one cycle, the units that have work in it and ends when all are
idle::

    ITU  (t < G)        C·L + ITU_LATENCY
    PEs  (1 ≤ t ≤ G)    max_j (len_j + PE_LATENCY), an empty stream counting 0
    OTU  (t ≥ 2)        K·L + OTU_LATENCY

    cycles = Σ_t (1 + max over the active units) + 1      (the final idle check)

The floor of an array of P·L multipliers is ⌈T · nnz / (P·L)⌉: every non-zero weight
meets every tile once and nothing else is done. The dense baseline runs the same
array on streams holding every weight (:func:`hw.packer.pack_layer` in dense mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import AccelConfig
from .packer import balance_positions

# The latencies are properties of the RTL pipeline stages, documented in hw/array.py.
ITU_LATENCY = 2
PE_LATENCY = 2
OTU_LATENCY = 4


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
        Busy cycles of each unit per tile group.
    groups : int
    bottleneck : str
        The unit with the longest per-group time ("itu", "pe" or "otu").
    """

    cycles: int
    floor: int
    itu: int
    pe: int
    otu: int
    groups: int
    tiles: int
    nnz: int

    @property
    def efficiency(self) -> float:
        """floor / cycles (1.0 is the physical limit); 1.0 for an empty layer."""
        return self.floor / self.cycles if self.floor else 1.0

    @property
    def bottleneck(self) -> str:
        return max((("pe", self.pe), ("itu", self.itu), ("otu", self.otu)), key=lambda kv: kv[1])[0]

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "floor": self.floor, "efficiency": self.efficiency, "itu": self.itu,
                "pe": self.pe, "otu": self.otu, "groups": self.groups, "tiles": self.tiles, "nnz": self.nnz,
                "bottleneck": self.bottleneck}  # fmt: skip


def cycles(cfg: AccelConfig, *, in_channels: int, out_channels: int, tiles: int, stream_lengths, nnz: int) -> CycleReport:
    """Exact cycles of a layer with the given per-PE stream lengths (see the module docstring)."""
    L = cfg.lanes
    G = math.ceil(tiles / L)
    itu = in_channels * L + ITU_LATENCY
    lens = [int(v) for v in stream_lengths]
    pe = max((v + PE_LATENCY for v in lens if v > 0), default=0)
    otu = out_channels * L + OTU_LATENCY
    total = 1
    for t in range(G + 2):
        active = [itu if t < G else 0, pe if 1 <= t <= G else 0, otu if t >= 2 else 0]
        total += 1 + max(active)
    floor = math.ceil(tiles * nnz / cfg.multipliers)
    return CycleReport(cycles=total, floor=floor, itu=itu, pe=pe, otu=otu, groups=G, tiles=tiles, nnz=nnz)


def packed_cycles(packed) -> CycleReport:
    """Cycles of a :class:`hw.packer.PackedLayer` (its own mode: sparse or dense)."""
    return cycles(packed.config, in_channels=packed.layer.in_channels, out_channels=packed.layer.out_channels,
                  tiles=packed.tiles, stream_lengths=packed.stream_lengths, nnz=packed.layer.nnz)  # fmt: skip


def shape_cycles(cfg: AccelConfig, *, in_channels: int, out_channels: int, tiles: int,
                 nnz_per_position) -> dict[str, CycleReport]:
    """Sparse and dense cycles of a layer known only by its shape and per-position non-zeros.

    Streams are balanced exactly as the packer does (LPT over positions), so this equals
    :func:`packed_cycles` of the packed layer; it avoids building huge layers for
    network-scale tables.
    """
    nnzp = np.asarray(nnz_per_position, dtype=np.int64)
    out = {}
    for mode, loads in (("sparse", nnzp), ("dense", np.full_like(nnzp, in_channels * out_channels))):
        owner = balance_positions(loads, cfg.pes)
        lens = np.bincount(owner, weights=loads, minlength=cfg.pes).astype(np.int64)
        out[mode] = cycles(cfg, in_channels=in_channels, out_channels=out_channels, tiles=tiles,
                           stream_lengths=lens, nnz=int(nnzp.sum()))  # fmt: skip
    return out
