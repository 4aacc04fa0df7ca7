"""Multiplication accounting per layer, in the manner of Liu & Pool (2018), Tables 2–4.

For each Winograd layer, per image:

* **direct**: K·C·H_out·W_out·r^d — a spatial convolution;
* **dense Winograd**: K·C·T·n^d — every Winograd-domain product, T tiles of n^d;
* **sparse Winograd (weights)**: T·nnz(U) — zero weights are skipped;
* **sparse Winograd (weights + activations)**: Σ_tiles Σ_p Σ_c [V[c,p,t] ≠ 0]·nnz_k(U[:,c,p])
  — products whose transformed input is also zero are skipped too, which Winograd-ReLU
  makes common. Measured on real inputs: the integer V' when the layer is quantized
  (exactly what the hardware sees), otherwise the float V.

Non-Winograd layers (the linear head, unconverted convolutions) are counted as dense
and listed separately, so the totals never hide work.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from winnow.model.nn.layers import WinogradConv
from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.algebra.winograd_conv import input_positions


def _winograd_layer_counts(layer: WinogradConv, x: torch.Tensor) -> dict:
    N = x.shape[0]
    geom = ConvGeometry.of(x.shape[2:], layer.padding, layer.m, layer.r)
    K, C, d = layer.out_channels, layer.in_channels, layer.dims
    T, P = geom.num_tiles, layer.n**d
    mask = layer.mask.detach().reshape(K, C, P).cpu().numpy() != 0
    nnz = int(mask.sum())
    nnz_k = mask.sum(axis=0)  # (C, P): output channels that use V[c, p]
    with torch.no_grad():
        if layer.qat is not None:
            q = layer.qat
            lo, hi = ((-(2 ** (q.config.act_bits - 1)) + 1) if q.first else -(2 ** (q.config.act_bits - 1))), 2 ** (q.config.act_bits - 1) - 1
            xq = np.clip(np.rint(x.detach().to(torch.float64).cpu().numpy() / q.in_scale), lo, hi).astype(np.int64)
            v = input_positions(xq, geom, q.config.transforms.BT)  # exact integer V' (P, N, C, T)
        else:
            v = input_positions(x.detach().to(torch.float64), geom, layer.alg.BT_f64).cpu().numpy()
    if layer.winograd_relu:
        v = np.maximum(v, 0)
    nonzero = (v != 0)  # (P, N, C, T)
    act_density = float(nonzero.mean())
    per_image_active = np.einsum("pnct,cp->", nonzero.astype(np.float64), nnz_k.astype(np.float64)) / N
    out = tuple(geom.out)
    return {
        "K": K, "C": C, "input": list(x.shape[2:]), "output": list(out), "tile": f"F({layer.m},{layer.r})",
        "tiles": T, "weight_density": nnz / mask.size, "activation_density": act_density,
        "direct": K * C * math.prod(out) * layer.r**d,
        "dense_winograd": K * C * T * P,
        "sparse_weights": T * nnz,
        "sparse_weights_activations": float(per_image_active),
        "winograd_relu": layer.winograd_relu,
    }  # fmt: skip


def count_multiplications(model: nn.Module, x: torch.Tensor) -> dict:
    """Per-layer and total multiplications per image (module docstring) on inputs ``x``."""
    rows, other = [], []
    hooks = []
    names = {mod: name for name, mod in model.named_modules()}

    def conv_hook(mod, inp, out):
        rows.append({"name": names[mod], **_winograd_layer_counts(mod, inp[0])})

    def other_hook(mod, inp, out):
        if isinstance(mod, nn.Linear):
            macs = mod.in_features * mod.out_features
        else:
            macs = int(np.prod(mod.weight.shape)) * int(np.prod(out.shape[2:]))
        other.append({"name": names[mod], "type": type(mod).__name__, "multiplications": macs})

    for mod in model.modules():
        if isinstance(mod, WinogradConv):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            hooks.append(mod.register_forward_hook(other_hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    keys = ("direct", "dense_winograd", "sparse_weights", "sparse_weights_activations")
    total = {k: float(sum(r[k] for r in rows)) for k in keys}
    dense_other = float(sum(o["multiplications"] for o in other))
    reduction = {k: (total["direct"] / total[k] if total[k] else float("inf")) for k in keys}
    return {"layers": rows, "other_layers": other, "total_winograd_layers": total,
            "reduction_vs_direct": reduction, "other_multiplications": dense_other}  # fmt: skip


def accounting_markdown(acc: dict) -> str:
    """Liu & Pool-style table of :func:`count_multiplications`' result."""
    lines = ["| layer | tile | K×C | weight density | act. density | direct | dense Winograd | sparse W | sparse W+A |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: f"{v / 1e6:.3f} M" if v >= 1e5 else f"{v / 1e3:.1f} k"  # noqa: E731
    for r in acc["layers"]:
        lines.append(f"| {r['name']} | {r['tile']} | {r['K']}×{r['C']} | {r['weight_density']:.3f} | "
                     f"{r['activation_density']:.3f} | {fmt(r['direct'])} | {fmt(r['dense_winograd'])} | "
                     f"{fmt(r['sparse_weights'])} | {fmt(r['sparse_weights_activations'])} |")
    t, red = acc["total_winograd_layers"], acc["reduction_vs_direct"]
    lines.append(f"| **total** | | | | | {fmt(t['direct'])} | {fmt(t['dense_winograd'])} | {fmt(t['sparse_weights'])} | "
                 f"{fmt(t['sparse_weights_activations'])} |")
    lines.append(f"| **reduction vs direct** | | | | | 1.00× | {red['dense_winograd']:.2f}× | {red['sparse_weights']:.2f}× | "
                 f"{red['sparse_weights_activations']:.2f}× |")
    if acc["other_layers"]:
        lines.append("")
        lines.append("Not in the Winograd totals (dense): " + ", ".join(
            f"{o['name']} ({o['type']}, {o['multiplications']:,} multiplications)" for o in acc["other_layers"]))
    return "\n".join(lines)
