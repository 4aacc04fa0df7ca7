"""One point of the space on one network: exact cycles per layer with the memory term, and its resources.

Per layer, the compute cycles are the exact cycle model's:

* ``banked``/``serial`` arrays run the whole layer: :func:`winnow.hw.cycle_model.cycles` on the
  segments the packer's balancing gives (:func:`winnow.hw.balance.segment_lengths`, what
  :func:`winnow.hw.cycle_model.shape_cycles` does);
* ``tiled`` arrays run it as passes: :func:`winnow.hw.tiled_packer.tiled_shape_cycles` over the
  plan of :func:`winnow.hw.tiling.plan_layer` (equal to :func:`winnow.hw.tiled_packer.tiled_cycles`).

The memory term is the bytes the plan moves over the memory port
(:meth:`winnow.hw.tiling.LayerPlan.traffic`: input windows, weight segments, quantization
words, outputs, in whole bus beats) over the port's bytes per cycle. With the transfers
double-buffered behind the computation (docs/hardware.md, "Real-size layers") a layer takes
max(compute, memory) cycles and is *memory-bound* when the second is the larger; a whole-layer
array moves each layer's data once.
"""

from __future__ import annotations

import math

from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.errors import ConfigError
from winnow.model.sources import source_digest

from winnow.hw.balance import segment_lengths
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import cycles
from winnow.hw.packer import check_shape
from winnow.hw.tiled_packer import buffers_of, tiled_shape_cycles
from winnow.hw.tiling import MemoryPort, TiledBuffers, plan_layer

from .networks import Network
from .space import array_config

#: The code whose change makes cached evaluations stale.
MODEL_SOURCES = ("hw", "model/algebra", "winnow/explore/evaluate.py", "winnow/explore/networks.py",
                 "winnow/explore/space.py")


def model_version() -> str:
    return source_digest(*MODEL_SOURCES)[:16]


def port_for(bandwidth: float) -> MemoryPort:
    """The memory port of ``bandwidth`` bytes per cycle: the narrowest power-of-two bus that carries it."""
    bus = 1 << max(0, math.ceil(math.log2(max(bandwidth, 1.0))))
    return MemoryPort(bus_bytes=bus, bytes_per_cycle=float(bandwidth))


def layer_cycles(cfg: AccelConfig, net: Network, i: int, bandwidths) -> dict:
    """Exact compute cycles of layer ``i`` of ``net`` on ``cfg`` and the bytes it moves at each bandwidth."""
    L = net.layers[i]
    m = cfg.m
    if cfg.tiled:
        plan = plan_layer(cfg, buffers_of(cfg), in_channels=L.C, out_channels=L.K, size=L.size, padding=L.padding)
        rep, _, entries, longest = tiled_shape_cycles(cfg, plan, net.counts(i, m, cfg.c_block), dense=False)
    else:
        check_shape(cfg, L.name, L.C, L.K, L.size, max(L.padding))
        counts = net.counts(i, m, L.C)[:, :, 0]
        seg = segment_lengths(cfg, counts)
        geom = ConvGeometry.of(L.size, L.padding, m, cfg.r)
        rep = cycles(cfg, in_channels=L.C, out_channels=L.K, tiles=geom.num_tiles, segments=seg,
                     nnz=int(counts.sum()))
        entries = int(seg.sum())
        longest = int(seg.sum(axis=1).max())  # a PE's stream holds its segments of every block
        th, tw = geom.tiles
        plan = plan_layer(cfg, TiledBuffers(c_block=L.C, patch_h=th, patch_w=tw, stream_depth=1),
                          in_channels=L.C, out_channels=L.K, size=L.size, padding=L.padding)
    if longest > cfg.stream_depth:
        raise ConfigError(f"layer {L.name}: a PE needs {longest:,} stream entries, beyond stream_depth = "
                          f"{cfg.stream_depth:,}")
    traffic = {str(bw): plan.traffic(port_for(bw), entries).total for bw in bandwidths}
    return {"layer": L.name, "compute": rep.cycles, "floor": rep.floor, "unit": rep.bottleneck,
            "itu": rep.itu, "pe": rep.pe, "otu": rep.otu, "nnz": rep.nnz, "entries": entries,
            "passes": plan.passes if cfg.tiled else 1, "bytes": traffic}


def evaluate_cycles(point: dict, net: Network, bandwidths) -> dict:
    """The cycle part of a point (everything but its bandwidth and resources): one engine task.

    Returns {"status": "ok", "layers": [...]} or {"status": "invalid", "error": why}.
    """
    try:
        cfg = array_config(point, net.limits())
        layers = [layer_cycles(cfg, net, i, bandwidths) for i in range(len(net.layers))]
    except ConfigError as exc:
        return {"status": "invalid", "error": str(exc)}
    return {"status": "ok", "layers": layers, "counts": "exact" if net.exact(point["m"]) else "estimated"}


def evaluate_many(points, net: Network, bandwidths) -> list[dict]:
    """:func:`evaluate_cycles` of several points (one engine task for a batch)."""
    return [evaluate_cycles(p, net, bandwidths) for p in points]


def with_bandwidth(cyc: dict, bandwidth: float) -> dict:
    """Per-layer and network cycles at ``bandwidth``: max(compute, ⌈bytes/bandwidth⌉), the bound of each layer."""
    rows, total, mem_bound = [], 0, 0
    for L in cyc["layers"]:
        memory = math.ceil(L["bytes"][str(bandwidth)] / bandwidth)
        c = max(L["compute"], memory)
        bound = "memory" if memory > L["compute"] else "compute"
        mem_bound += bound == "memory"
        total += c
        rows.append({"layer": L["layer"], "cycles": c, "compute": L["compute"], "memory": memory, "bound": bound,
                     "floor": L["floor"], "efficiency": L["floor"] / c if c else 1.0, "unit": L["unit"],
                     "passes": L["passes"], "bytes": L["bytes"][str(bandwidth)]})
    return {"cycles": total, "memory_bound_layers": mem_bound, "layers": rows}
