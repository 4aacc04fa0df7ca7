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
violation means the datapath does not implement docs/datapath.md (§6).
"""

from __future__ import annotations

import numpy as np

from winnow.model.integer.reference import QuantizedConv, check_int_array, integer_conv_biased
from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.algebra.winograd_conv import assemble_positions, input_positions, output_transform


def output_error_bound(xq: np.ndarray, layer: QuantizedConv) -> np.ndarray:
    """Per-element bound (in output LSBs) on |integer output − exact float output|.

    The float output is the layer's real-valued convolution of ``xq · in_scale`` with
    the unquantized Winograd-domain weights, plus bias, divided by ``out_scale``, then
    saturated (and ReLU'd) like the integer output; with ``winograd_relu`` the ReLU on
    the transformed tiles is part of both.
    """
    cfg = layer.config
    d, P, K = cfg.dims, cfg.positions, layer.out_channels
    x = check_int_array("input", xq, cfg.act_bits).astype(np.float64)
    geom = ConvGeometry.of(x.shape[2:], layer.padding, cfg.m, cfg.r)
    v = input_positions(x, geom, cfg.transforms.BT.astype(np.float64))  # (P, N, C, T)
    if layer.winograd_relu:
        v = np.maximum(v, 0)
    weight = np.exp2(cfg.shifts.reshape(P, 1, 1, 1).astype(np.float64))
    vabs = np.abs(v).sum(axis=2, keepdims=True) * weight  # 2^{E−e_p} Σ_c |V'| : (P, N, 1, T)
    amat = np.abs(cfg.transforms.AT).astype(np.float64)
    e_w = 0.5 * assemble_positions(output_transform(vabs, amat, d), geom)  # (N, 1, *out), Y LSBs
    lsb = layer.output_scale_per_channel()
    s_exact = lsb / layer.out_scale
    s_hw = layer.mult * np.exp2(-layer.shift.astype(np.float64))
    bshape = (1, K) + (1,) * d
    z = integer_conv_biased(xq, layer).astype(np.float64)
    bound = 0.5 + np.abs(z) * np.abs(s_hw - s_exact).reshape(bshape) + s_exact.reshape(bshape) * (e_w + 0.5)
    return bound * (1 + 1e-9) + 1e-9
