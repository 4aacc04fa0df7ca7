"""The a-posteriori error bound of the integer datapath against exact float arithmetic.

For integer inputs xq (scale s_x), the float layer output before requantization is

    y_f[k] = s_x Σ_p Kα[·,p] Σ_c U'[k,c,p] V'[c,p] + b[k],   V' = B'ᵀ xq B'  (exact),

and the quantizer writes U'[k,c,p] = s_w[k] 2^{−e_p} (W[k,c,p] + δ), |δ| ≤ ½. With
lsb[k] = s_x s_w[k] 2^{−E} and z = Y + b_q the integer pre-requantization value,

    |y_f − lsb·z| ≤ lsb · ( ½ Σ_p |Kα[·,p]| 2^{E−e_p} Σ_c |V'[c,p]| + ½ ).

Requantization with Ŝ = mult·2^{−shift} ≈ S = lsb/s_out adds |z|·|Ŝ − S| and the
final rounding ½; saturation and ReLU are 1-Lipschitz. Hence, in output LSBs,

    |out − relu(sat(y_f / s_out))| ≤ ½ + |z|·|Ŝ − S| + S·(½ Σ_p |Kα| 2^{E−e_p} Σ_c |V'| + ½).

Every term is computed from the data, so the bound is tight on each element, and a
violation means the datapath does not implement docs/datapath.md.
"""

from __future__ import annotations

import numpy as np

from .reference import QuantizedConv, check_int_array, integer_conv_biased
from .tiling import ConvGeometry, assemble_tiles, extract_tiles, transform_tiles
from .winograd_conv import from_positions, to_positions


def output_error_bound(xq: np.ndarray, layer: QuantizedConv) -> np.ndarray:
    """Per-element bound (in output LSBs) on |integer output − exact float output|.

    The float output is the layer's real-valued convolution of ``xq · in_scale`` with
    the unquantized Winograd-domain weights, plus bias, divided by ``out_scale``, then
    saturated (and ReLU'd) like the integer output. Not valid with ``winograd_relu``
    off/on mismatches: the ReLU on V' is applied identically on both sides.
    """
    cfg = layer.config
    d = cfg.dims
    x = check_int_array("input", xq, cfg.act_bits)
    geom = ConvGeometry.of(x.shape[2:], layer.padding, cfg.m, cfg.r)
    N, K, C, P = x.shape[0], layer.out_channels, layer.in_channels, cfg.positions
    v = transform_tiles(extract_tiles(x, geom), cfg.transforms.BT, d)
    vp = to_positions(v, d).astype(np.float64)
    if layer.winograd_relu:
        vp = np.maximum(vp, 0)
    vabs = np.abs(vp).sum(axis=1, keepdims=True)  # Σ_c |V'| : (P, 1, N·T)
    weight = np.exp2(cfg.shifts.reshape(P, 1, 1).astype(np.float64))
    mt = from_positions(np.broadcast_to(vabs * weight, (P, 1, vabs.shape[2])), N, geom.tiles, cfg.n, d)
    amat = np.abs(cfg.transforms.AT).astype(np.float64)
    e_w = 0.5 * assemble_tiles(transform_tiles(mt, amat, d), geom)  # (N, 1, *out), in Y LSBs
    lsb = layer.output_scale_per_channel()
    s_exact = lsb / layer.out_scale
    s_hw = layer.mult * np.exp2(-layer.shift.astype(np.float64))
    bshape = (1, K) + (1,) * d
    z = integer_conv_biased(x, layer).astype(np.float64)
    bound = (
        0.5
        + np.abs(z) * np.abs(s_hw - s_exact).reshape(bshape)
        + s_exact.reshape(bshape) * (e_w + 0.5)
    )
    return bound * (1 + 1e-9) + 1e-9

