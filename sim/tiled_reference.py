"""A layer run the way the streaming array runs it: patch by patch, block by block, C block by C block.

:func:`run_plan` follows a :class:`winnow.hw.tiling.LayerPlan` literally: for every job
(patch, output-channel block) it takes the patch's input window from the padded input
(as it lies in external memory), and for every C block transforms that block's
channels of the window and adds the Winograd-domain products of the block's rows to
the patch's accumulators; after the last C block it applies the output transform, the
bias and the requantization of the block's rows and writes the patch's outputs. It
must equal :func:`winnow.sim.layers.reference_output` bit for bit, which checks the
tiling itself (windows, halos, ragged patches, the partial sums across C blocks)
before any RTL runs it.
"""

from __future__ import annotations

import numpy as np

from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.algebra.winograd_conv import (assemble_positions, input_positions, output_transform,
                                                weights_by_position)
from winnow.model.files.layer_file import SparseLayer
from winnow.model.integer.quant import round_shift, saturate

from winnow.hw.tiling import LayerPlan


def run_plan(layer: SparseLayer, xq: np.ndarray, plan: LayerPlan) -> np.ndarray:
    """Output (K, Ho, Wo) of ``layer`` on input ``xq`` (C, H, W), computed job by job as ``plan`` says."""
    dp = layer.config
    m, r = dp.m, dp.r
    geom = plan.geometry
    (ph, pw) = geom.padding
    C, K = layer.in_channels, layer.out_channels
    xq = np.asarray(xq, dtype=np.int64)
    xpad = np.pad(xq, ((0, 0), (ph, ph), (pw, pw)))
    u = weights_by_position(layer.to_dense())[:, 0]  # (P, K, C)
    shifts = dp.shifts.reshape(-1, 1, 1, 1)
    ho, wo = geom.out
    out = np.zeros((K, ho, wo), dtype=np.int64)
    kb_max = plan.config.k_block
    for patch, b in plan.jobs:
        h0, h1, w0, w1 = patch.window(geom)
        th, tw = patch.ty1 - patch.ty0, patch.tx1 - patch.tx0
        wgeom = ConvGeometry.of((th * m + r - 1, tw * m + r - 1), 0, m, r)  # exactly th × tw tiles
        k0, kb = b * kb_max, plan.block_rows[b]
        acc = np.zeros((dp.positions, 1, kb, th * tw), dtype=np.int64)
        c0 = 0
        for cb in plan.c_blocks:
            win = np.zeros((1, cb) + wgeom.size, dtype=np.int64)  # beyond the padded input: zeros
            win[0, :, :h1 - h0, :w1 - w0] = xpad[c0:c0 + cb, h0:h1, w0:w1]
            v = input_positions(win, wgeom, dp.transforms.BT)  # (P, 1, cb, T)
            if layer.winograd_relu:
                v = np.maximum(v, 0)
            acc += u[:, None, k0:k0 + kb, c0:c0 + cb] @ v
            c0 += cb
        y = output_transform(np.left_shift(acc, shifts), dp.transforms.AT, 2)
        z = assemble_positions(y, wgeom)[0] + layer.bias[k0:k0 + kb, None, None]
        q = saturate(round_shift(z * layer.mult[k0:k0 + kb, None, None], layer.shift[k0:k0 + kb, None, None]),
                     dp.act_bits)
        if layer.relu:
            q = np.maximum(q, 0)
        oh0, oh1, ow0, ow1 = patch.out_rows(geom)
        out[k0:k0 + kb, oh0:oh1, ow0:ow1] = q[:, :oh1 - oh0, :ow1 - ow0]
    return out
