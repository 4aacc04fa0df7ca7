"""Whole networks on the bit-accurate integer reference.

:func:`build_integer_network` turns a fake-quantized model (:func:`winnow.model.nn.qat.prepare_qat`)
into integer operations — :class:`~winnow.model.integer.reference.QuantizedConv` layers, max pooling,
ReLU, flatten and an integer linear head — so the accuracy of the integer datapath on a
test set is *measured*. Supported: ``nn.Sequential`` models (nested allowed) of Winograd
layers, ReLU, MaxPool (kernel = stride, no padding), Flatten, Identity, Dropout and one
final linear layer. Anything else is refused with the module's name and type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from winnow.model.errors import ConfigError
from winnow.model.nn.layers import WinogradConv
from winnow.model.nn.qat import QuantLinear
from winnow.model.integer.quant import qmax, quantize
from winnow.model.integer.reference import MaxPool, QuantizedConv, check_int_array, integer_conv, quantize_winograd_weights


@dataclass(frozen=True)
class IntReLU:
    name: str = "relu"

    def __call__(self, xq, trace=None):
        return np.maximum(xq, 0)


@dataclass(frozen=True)
class Flatten:
    name: str = "flatten"

    def __call__(self, xq, trace=None):
        return xq.reshape(xq.shape[0], -1)


@dataclass(frozen=True)
class QuantizedLinear:
    """Integer linear head: acc = W_q · x_q + b_q (int64); logits = acc · in_scale · w_scale."""

    weights: np.ndarray  # (out, in) int64
    bias: np.ndarray  # (out,) int64
    in_scale: float
    w_scale: float
    act_bits: int
    name: str = "linear"

    def __call__(self, xq, trace=None):
        x = check_int_array(f"{self.name} input", xq, self.act_bits)
        if x.ndim != 2 or x.shape[1] != self.weights.shape[1]:
            raise ConfigError(f"{self.name} expects (N, {self.weights.shape[1]}) inputs; got {x.shape}")
        return x @ self.weights.T + self.bias

    def logits(self, acc: np.ndarray) -> np.ndarray:
        return acc.astype(np.float64) * (self.in_scale * self.w_scale)


@dataclass
class IntegerNetwork:
    """Integer operations in order; the input is quantized with ``input_scale``.

    ``inputs`` (optional, one tuple per operation) names the operations each one reads by
    index, −1 for the network input: a residual ``add`` reads two. Without it every
    operation reads the one before it (a sequential network). The network's output is the
    last operation's.
    """

    ops: list
    input_scale: float
    act_bits: int
    input_shape: tuple = field(default=())
    inputs: tuple | None = None

    def op_inputs(self, i: int) -> tuple:
        """Indices of the operations operation ``i`` reads (−1: the network input)."""
        return (i - 1,) if self.inputs is None else tuple(self.inputs[i])

    def values(self, h: np.ndarray) -> list:
        """Every operation's output for the integer input ``h``, in order."""
        vals: list = []
        for i, op in enumerate(self.ops):
            vals.append(op(*(h if j < 0 else vals[j] for j in self.op_inputs(i))))
        return vals

    def run(self, x) -> np.ndarray:
        """Float images → float logits (the final integer accumulators times their scale)."""
        x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        h = self.values(quantize(x, self.input_scale, self.act_bits))[-1]
        last = self.ops[-1]
        return last.logits(h) if isinstance(last, QuantizedLinear) else h.astype(np.float64)

    def predict(self, x, batch_size: int = 250) -> np.ndarray:
        return np.concatenate([self.run(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def conv_layers(self) -> list[QuantizedConv]:
        return [op for op in self.ops if isinstance(op, QuantizedConv)]


def _flat_modules(model: nn.Module, prefix: str = ""):
    if isinstance(model, nn.Sequential):
        for name, child in model.named_children():
            yield from _flat_modules(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip("."), model


def build_integer_network(model: nn.Module) -> IntegerNetwork:
    """Integer twin of a fake-quantized Sequential model (module docstring)."""
    if not isinstance(model, nn.Sequential):
        raise ConfigError(f"integer networks are built from nn.Sequential models; got {type(model).__name__}")
    mods = list(_flat_modules(model))
    ops: list = []
    input_scale = None
    act_bits = None
    i = 0
    while i < len(mods):
        name, mod = mods[i]
        if isinstance(mod, WinogradConv):
            if mod.qat is None:
                raise ConfigError(f"layer {name} has no quantization: run winnow.model.nn.qat.prepare_qat first")
            q = mod.qat
            relu = i + 1 < len(mods) and isinstance(mods[i + 1][1], nn.ReLU)
            with torch.no_grad():
                u = mod.masked_weight().detach().to(torch.float64).cpu().numpy()
                b = None if mod.bias is None else mod.bias.detach().to(torch.float64).cpu().numpy()
            if not np.isfinite(u).all() or (b is not None and not np.isfinite(b).all()):
                raise ConfigError(f"layer {name}: its weights hold NaN or infinite values (training diverged: lower "
                                  f"the learning rate or the method's penalty); nothing to quantize")
            ops.append(quantize_winograd_weights(u, b, q.in_scale, q.out_scale, q.config, padding=mod.padding,
                                                 relu=relu, winograd_relu=mod.winograd_relu, name=name))
            if input_scale is None:
                input_scale, act_bits = q.in_scale, q.config.act_bits
            i += 2 if relu else 1
            continue
        if isinstance(mod, QuantLinear):
            if i != len(mods) - 1:
                raise ConfigError(f"the linear layer {name} must be the last layer of an integer network")
            with torch.no_grad():
                sw = float(mod.weight_scale())
                w = mod.linear.weight.detach().to(torch.float64).cpu().numpy()
            if not (np.isfinite(w).all() and math.isfinite(sw)):
                raise ConfigError(f"layer {name}: its weights hold NaN or infinite values (training diverged: lower "
                                  f"the learning rate); nothing to quantize")
            with torch.no_grad():
                lim = qmax(mod.weight_bits)
                wq = np.clip(np.rint(w / sw), -lim, lim).astype(np.int64)
                if mod.linear.bias is not None:
                    bq = np.rint(mod.linear.bias.detach().to(torch.float64).cpu().numpy() / (mod.in_scale * sw)).astype(np.int64)
                else:
                    bq = np.zeros(wq.shape[0], dtype=np.int64)
            ops.append(QuantizedLinear(wq, bq, mod.in_scale, sw, mod.act_bits, name=name))
            if input_scale is None:
                input_scale, act_bits = mod.in_scale, mod.act_bits
        elif isinstance(mod, nn.ReLU):
            ops.append(IntReLU(name))
        elif isinstance(mod, (nn.MaxPool2d, nn.MaxPool3d)):
            k, s, p = mod.kernel_size, mod.stride, mod.padding
            k = k if isinstance(k, int) else k[0]
            if (s not in (k, (k,) * 2, (k,) * 3)) or p not in (0, (0, 0), (0, 0, 0)) or mod.dilation not in (1, (1, 1), (1, 1, 1)) or mod.ceil_mode:
                raise ConfigError(f"layer {name}: only max pooling with stride = kernel, no padding, floor mode is supported")
            ops.append(MaxPool(k, name))
        elif isinstance(mod, nn.Flatten):
            ops.append(Flatten(name))
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            pass
        elif isinstance(mod, nn.Linear):
            raise ConfigError(f"layer {name} (Linear) is not quantized: run winnow.model.nn.qat.prepare_qat first")
        else:
            raise ConfigError(f"layer {name} ({type(mod).__name__}) is not supported by the integer network")
        i += 1
    if input_scale is None:
        raise ConfigError("the model has no quantized layer")
    # consecutive convolutions must agree on scale (checked like run_network)
    prev = None
    for op in ops:
        if isinstance(op, QuantizedConv):
            if prev is not None and not np.isclose(prev.out_scale, op.in_scale, rtol=1e-12):
                raise ConfigError(f"{op.name} reads scale {op.in_scale:g} but {prev.name} writes {prev.out_scale:g}")
            prev = op
    return IntegerNetwork(ops, float(input_scale), int(act_bits))
