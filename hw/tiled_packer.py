"""The passes of a tiled layer (:mod:`winnow.hw.tiling`) as runs of a tiled-mode array.

Every pass of a job (patch, output-channel block b) is one run of the array in tiled
mode (``AccelConfig.tiled``): a *sub-layer* made of the block's rows and the C block's
channels of the layer, on the patch's input window with no padding (the window is cut
from the padded input, halo included, so the image border is already zeros). It is
packed by :func:`winnow.hw.packer.pack_layer` like any layer: its own stream segments,
balanced over the PEs for its own non-zeros, its registers, the block's quantization
words. ``finish`` is set in the job's last pass only: the earlier passes add their
products to the patch's accumulators and the last one also runs the output unit.
:func:`assemble` puts the finishing passes' outputs back into the layer's output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from winnow.model.errors import ConfigError, DataError
from winnow.model.files.layer_file import SparseLayer
from winnow.model.integer.reference import QuantizedConv

from winnow.hw.balance import segment_lengths
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import CycleReport, cycles, packed_cycles
from winnow.hw.packer import PackedLayer, pack_layer
from winnow.hw.tiling import LayerPlan, Patch, TiledBuffers, plan_layer


def buffers_of(cfg: AccelConfig) -> TiledBuffers:
    """The tiling a tiled-mode array supports: C blocks of ``c_block``, the whole tiles that fit its window."""
    if not cfg.tiled:
        raise ConfigError("the array is not in tiled mode (tiled = true): it runs whole layers")
    ph, pw = (cfg.h_max - cfg.r + 1) // cfg.m, (cfg.w_max - cfg.r + 1) // cfg.m
    if min(ph, pw) < 1:
        raise ConfigError(f"h_max × w_max = {cfg.h_max} × {cfg.w_max} holds no window of one tile "
                          f"({cfg.n} × {cfg.n}) for {cfg.datapath.alg.name}")
    return TiledBuffers(c_block=cfg.c_block, patch_h=ph, patch_w=pw, stream_depth=cfg.stream_depth)


def plan_for(cfg: AccelConfig, layer: SparseLayer) -> LayerPlan:
    """The plan of ``layer`` on the tiled-mode array ``cfg``."""
    return plan_layer(cfg, buffers_of(cfg), in_channels=layer.in_channels, out_channels=layer.out_channels,
                      size=layer.size, padding=layer.padding)


def sub_layer(layer: SparseLayer, k0: int, kb: int, c0: int, cb: int, size, name: str) -> SparseLayer:
    """Rows k0 … k0+kb−1 and channels c0 … c0+cb−1 of ``layer`` on an input of ``size``, no padding."""
    q = layer.to_quantized_conv()
    part = QuantizedConv(config=layer.config, weights=q.weights[k0:k0 + kb, c0:c0 + cb], bias=q.bias[k0:k0 + kb],
                         mult=q.mult[k0:k0 + kb], shift=q.shift[k0:k0 + kb], padding=(0, 0), relu=q.relu,
                         winograd_relu=q.winograd_relu, in_scale=q.in_scale, out_scale=q.out_scale,
                         weight_scale=q.weight_scale[k0:k0 + kb], name=name)  # fmt: skip
    return SparseLayer.from_quantized_conv(part, size, name=name)


@dataclass(frozen=True)
class Pass:
    """One run of the tiled-mode array: C block ``c_index`` of job (``patch``, ``block``)."""

    job: int
    patch: Patch
    block: int
    c_index: int
    packed: PackedLayer
    x: np.ndarray
    finish: bool

    @property
    def name(self) -> str:
        return f"{self.packed.layer.name}"


def passes(layer: SparseLayer, xq: np.ndarray | None, cfg: AccelConfig, plan: LayerPlan | None = None) -> list[Pass]:
    """Every pass of ``layer`` on input ``xq`` (C, H, W), in run order (``xq`` None: no windows, for the cycles)."""
    plan = plan or plan_for(cfg, layer)
    C = layer.in_channels
    xpad = None
    if xq is not None:
        xq = np.asarray(xq, dtype=np.int64)
        if xq.shape != (C, *layer.size):
            raise DataError(f"input must have shape {(C, *layer.size)} for layer {layer.name}; got {xq.shape}")
        ph, pw = plan.geometry.padding
        xpad = np.pad(xq, ((0, 0), (ph, ph), (pw, pw)))
    out = []
    for j, (patch, b) in enumerate(plan.jobs):
        h0, h1, w0, w1 = patch.window(plan.geometry)
        k0, kb = b * cfg.k_block, plan.block_rows[b]
        c0 = 0
        for i, cb in enumerate(plan.c_blocks):
            last = i == len(plan.c_blocks) - 1
            sub = sub_layer(layer, k0, kb, c0, cb, (h1 - h0, w1 - w0), f"{layer.name}.p{patch.index}.b{b}.c{i}")
            packed = pack_layer(sub, cfg)
            packed = dataclasses.replace(packed, registers={**packed.registers, "finish": int(last)})
            out.append(Pass(job=j, patch=patch, block=b, c_index=i, packed=packed,
                            x=None if xpad is None else xpad[c0:c0 + cb, h0:h1, w0:w1], finish=last))
            c0 += cb
    return out


def assemble(plan: LayerPlan, runs: list[Pass], outputs) -> np.ndarray:
    """The layer's output (K, Ho, Wo) from the outputs (K_b, rows, cols) of its finishing passes.

    ``outputs`` holds one array per pass in ``runs`` (``None`` allowed for passes that do not finish).
    """
    ho, wo = plan.geometry.out
    out = np.zeros((plan.out_channels, ho, wo), dtype=np.int64)
    seen = np.zeros(out.shape, dtype=bool)
    for r, o in zip(runs, outputs):
        if not r.finish:
            continue
        oh0, oh1, ow0, ow1 = r.patch.out_rows(plan.geometry)
        k0 = r.block * plan.config.k_block
        kb = plan.block_rows[r.block]
        o = np.asarray(o)
        if o.shape != (kb, oh1 - oh0, ow1 - ow0):
            raise DataError(f"pass {r.name}: output of shape {o.shape}, expected {(kb, oh1 - oh0, ow1 - ow0)}")
        out[k0:k0 + kb, oh0:oh1, ow0:ow1] = o
        seen[k0:k0 + kb, oh0:oh1, ow0:ow1] = True
    if not seen.all():
        raise DataError(f"the finishing passes cover {int(seen.sum())} of {seen.size} outputs")
    return out


def tiled_cycles(layer: SparseLayer, cfg: AccelConfig) -> tuple[CycleReport, int]:
    """(the layer's cycles on the tiled-mode array, summed over its passes; the dense-Winograd cycles).

    Each pass's cycles are exact (:func:`winnow.hw.cycle_model.packed_cycles`); the dense
    figure runs the same passes with every weight in the streams. The floor is the
    layer's ⌈T·nnz/(P·L)⌉; loading between passes is not counted (the load port's time).
    """
    plan = plan_for(cfg, layer)
    runs = passes(layer, None, cfg, plan)
    reps = [packed_cycles(r.packed) for r in runs]
    dense = 0
    for r in runs:
        sub = r.packed.layer
        counts = np.full((cfg.positions, sub.out_channels), sub.in_channels, dtype=np.int64)
        dense += cycles(cfg, in_channels=sub.in_channels, out_channels=sub.out_channels, tiles=r.packed.tiles,
                        segments=segment_lengths(cfg, counts), nnz=sub.nnz, finish=r.finish).cycles
    T = plan.geometry.num_tiles
    total = CycleReport(cycles=sum(x.cycles for x in reps), floor=-(-T * layer.nnz // cfg.multipliers),
                        itu=sum(x.itu for x in reps), pe=sum(x.pe for x in reps), otu=sum(x.otu for x in reps),
                        groups=sum(x.groups for x in reps), blocks=len(plan.block_rows), tiles=T, nnz=layer.nnz)
    return total, dense


def tiled_shape_cycles(cfg: AccelConfig, plan: LayerPlan, counts,
                       dense: bool = True) -> tuple[CycleReport, int, int, int]:
    """:func:`tiled_cycles` of a layer known only by its non-zeros per (position, row, C block).

    ``counts`` is (positions, K, len(plan.c_blocks)): the non-zeros of row U_p[k, :] among
    the channels of each C block. Each pass is balanced and segmented exactly as the packer
    does its sub-layer, so this equals :func:`tiled_cycles` of the layer without packing a
    pass (passes of equal tile count, block and C block take equal cycles and are counted
    once). Returns (the summed report, the dense cycles (0 unless ``dense``), the stream
    entries of one patch's passes: what :meth:`winnow.hw.tiling.LayerPlan.traffic` takes, the longest
    PE stream of any pass: what ``stream_depth`` must hold).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (cfg.positions, plan.out_channels, len(plan.c_blocks)):
        raise ConfigError(f"counts must have shape {(cfg.positions, plan.out_channels, len(plan.c_blocks))}; "
                          f"got {counts.shape}")
    sizes: dict[int, int] = {}  # patches by tile count: equal passes, counted once and multiplied
    for patch in plan.patches:
        sizes[patch.tiles] = sizes.get(patch.tiles, 0) + 1
    total = {"cycles": 0, "itu": 0, "pe": 0, "otu": 0, "groups": 0}
    dense_cycles = entries = longest = 0
    for b, kb in enumerate(plan.block_rows):
        k0 = b * cfg.k_block
        for i, cb in enumerate(plan.c_blocks):
            finish = i == len(plan.c_blocks) - 1
            sub = counts[:, k0:k0 + kb, i]
            seg = segment_lengths(cfg, sub)
            entries += int(seg.sum())
            longest = max(longest, int(seg.max()))
            full = np.full_like(sub, cb) if dense else None
            full_seg = segment_lengths(cfg, full) if dense else None
            for tiles, n in sizes.items():
                rep = cycles(cfg, in_channels=cb, out_channels=kb, tiles=tiles, segments=seg, nnz=int(sub.sum()),
                             finish=finish)
                for f in total:
                    total[f] += n * getattr(rep, f)
                if dense:
                    dense_cycles += n * cycles(cfg, in_channels=cb, out_channels=kb, tiles=tiles, segments=full_seg,
                                               nnz=int(full.sum()), finish=finish).cycles
    T = plan.geometry.num_tiles
    nnz = int(counts.sum())
    rep = CycleReport(floor=-(-T * nnz // cfg.multipliers), blocks=len(plan.block_rows), tiles=T, nnz=nnz, **total)
    return rep, dense_cycles, entries, longest
