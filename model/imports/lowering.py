"""Lower an imported graph onto the array: every convolution a stride-1 F(m, r) Winograd layer of one r.

The array runs one datapath, F(m, r) with stride 1 and symmetric zero padding. A convolution
of stride s ∈ {1, 2} and a k×k kernel becomes, exactly:

* **stride 1, k ≤ r, r − k even** (3×3 on F(m,3); 1×1 as the centre tap of an r×r kernel): the
  kernel zero-padded into r×r, centred, padding p + (r − k)/2. No host work.
* **otherwise** (stride 2; even kernels): a host :class:`~winnow.model.integer.host_ops.Polyphase`
  split, then a stride-1 convolution without padding over its components. With s = 2 the
  input's four polyphase components x_ab[c, u, v] = x_pad[c, 2u + a, 2v + b] each meet the taps
  w[:, :, a::2, b::2] of the kernel (⌈k/2⌉ taps a side), so y = Σ_ab conv(x_ab, w_ab): one
  convolution over the components stacked as channels (4·C of them; a component with no tap,
  as three of a 1×1 kernel's four, is left out), kernels zero-padded into r×r at offset
  o = (r − ⌈k/s⌉)//2, the components sized Ho + r − 1 by Wo + r − 1 with zeros outside the
  padded input.

The zero taps stay zero in the Winograd domain: each lowered layer's mask starts as the
structural support of G M Gᵀ (M the tap pattern), so a 1×1 kernel on F(4,3) keeps 16 of the 36
positions and a stride-2 3×3 component 25 or fewer; pruning removes weights from there on.
:func:`lowering_cost` states the multiplications of each lowered layer against the direct
convolution's.

r is the largest lowered kernel of the network (at least ``r``, default 3): a 5×5 stride-1
convolution among 3×3s makes every layer F(m, 5), the 3×3s zero-padded; a stride-2 5×5 stem
needs only 3×3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.algebra.cook_toom import MAX_TILE, winograd
from winnow.model.errors import ConfigError, ModelImportError, UnsupportedOperationError
from winnow.model.imports.graph import Graph, infer_shapes
from winnow.model.integer.host_ops import common_requant, concat_requant, host_requant, polyphase, requant_sum
from winnow.model.integer.quant import qmax
from winnow.model.nn.layers import WinogradConv2d
from winnow.model.nn.qat import LayerQuant, QuantLinear, fake_quant_input, ste_round

SPEC_FORMAT = "winnow-imported-model/1"


@dataclass(frozen=True)
class ConvLowering:
    """How one convolution lands on the array."""

    stride: int
    kernel: int
    padding: int  # the original's
    phases: tuple  # () when no host polyphase split is needed
    offset: int
    size: tuple  # the polyphase output (H, W), () without one

    @property
    def polyphase(self) -> bool:
        return bool(self.phases)


def lowered_kernel(stride: int, k: int) -> int:
    return -(-k // stride)


def plan_conv(stride: int, k: int, padding: int, r: int, out_hw: tuple) -> ConvLowering:
    if stride == 1 and k <= r and (r - k) % 2 == 0:
        return ConvLowering(1, k, padding, (), (r - k) // 2, ())
    kp = lowered_kernel(stride, k)
    if kp > r:
        raise ConfigError(f"a {k}×{k} kernel of stride {stride} needs r >= {kp}; the array has r = {r}")
    phases = tuple((a, b) for a in range(stride) for b in range(stride) if a < k and b < k)
    return ConvLowering(stride, k, padding, phases, (r - kp) // 2, (out_hw[0] + r - 1, out_hw[1] + r - 1))


def lowered_weight(w: np.ndarray, low: ConvLowering, r: int) -> np.ndarray:
    """The r×r stride-1 kernel (K, C', r, r) of a lowered convolution (module docstring)."""
    K, C, k, _ = w.shape
    o = low.offset
    if not low.polyphase:
        out = np.zeros((K, C, r, r))
        out[:, :, o:o + k, o:o + k] = w
        return out
    s = low.stride
    out = np.zeros((K, C * len(low.phases), r, r))
    for j, (a, b) in enumerate(low.phases):
        sub = w[:, :, a::s, b::s]
        out[:, j * C:(j + 1) * C, o:o + sub.shape[2], o:o + sub.shape[3]] = sub
    return out


def structural_mask(pattern: np.ndarray, alg) -> np.ndarray:
    """Positions of U = G M Gᵀ that can be non-zero for the 0/1 tap pattern M (r, r): |G| M |G|ᵀ > 0."""
    g = np.abs(np.asarray(alg.G_f64))
    return (g @ pattern @ g.T) > 0


class ImportedNet(nn.Module):
    """An imported CNN as Winnow runs it: Winograd layers on the array's F(m, r), host operations beside them.

    ``spec`` (JSON-ready) lists the steps; step i reads ``inputs`` (indices of earlier steps, −1: the
    input). The Winograd layers are ``convs[j]`` (trainable U, masks: pruning works as on the built-in
    nets); the linear head is ``linear``. After :func:`calibrate`, ``forward`` fake-quantizes exactly as
    the integer network computes (the host operations' integer rounding included).
    """

    def __init__(self, spec: dict):
        super().__init__()
        if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
            raise ModelImportError(f"not an imported-model description (format {SPEC_FORMAT} expected)")
        self.spec = spec
        m, r = spec["m"], spec["r"]
        self.convs = nn.ModuleList(WinogradConv2d(c["C"], c["K"], r, padding=c["padding"], bias=True, m=m)
                                   for c in spec["convs"])
        lin = spec.get("linear")
        self.linear = nn.Linear(lin["in"], lin["out"], bias=True) if lin else None
        self.quant: dict | None = None

    @property
    def steps(self) -> list:
        return self.spec["steps"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quant
        vals: list = []
        if q is not None:
            x = fake_quant_input(x, q["input_scale"], q["act_bits"], symmetric=True)
        for i, st in enumerate(self.steps):
            ins = [x if j < 0 else vals[j] for j in st["inputs"]]
            vals.append(self._step(i, st, ins, q))
        return vals[-1]

    def _scale(self, q, j: int) -> float:
        return q["input_scale"] if j < 0 else q["scales"][j]

    def _step(self, i: int, st: dict, ins: list, q):
        op, h = st["op"], ins[0]
        if op == "polyphase":
            return polyphase(h, st["stride"], st["padding"], st["offset"], [tuple(p) for p in st["phases"]],
                             tuple(st["size"]))
        if op == "conv":
            y = self.convs[st["conv"]](h)
            return F.relu(y) if st["relu"] else y
        if op == "relu":
            return F.relu(h)
        if op == "maxpool":
            return F.max_pool2d(h, st["size"])
        if op == "flatten":
            return h.reshape(h.shape[0], -1)
        if op == "linear":
            return self.linear(h)
        if q is None:  # float
            if op == "avgpool":
                return F.avg_pool2d(h, st["size"])
            if op == "gap":
                return h.mean(dim=(2, 3), keepdim=True)
            if op == "add":
                return ins[0] + ins[1]
            if op == "concat":
                return torch.cat(ins, dim=1)
        else:  # the integer rounding of winnow.model.integer.host_ops, on fake-quantized values
            bits = q["act_bits"]
            hq = [ste_round(v / self._scale(q, j)) for v, j in zip(ins, st["inputs"])]
            p = q["host"][i]
            if op == "avgpool":
                s = F.avg_pool2d(hq[0], st["size"], divisor_override=1)
                return requant_sum([s * p["mult"]], p["shift"], bits) * q["scales"][i]
            if op == "gap":
                s = hq[0].sum(dim=(2, 3), keepdim=True)
                return requant_sum([s * p["mult"]], p["shift"], bits) * q["scales"][i]
            if op == "add":
                return requant_sum([hq[0] * p["mult"][0], hq[1] * p["mult"][1]], p["shift"], bits) * q["scales"][i]
            if op == "concat":
                parts = [v if (mu, sh) == (1, 0) else requant_sum([v * mu], sh, bits)
                         for v, mu, sh in zip(hq, p["mult"], p["shift"])]
                return torch.cat(parts, dim=1) * q["scales"][i]
        raise ModelImportError(f"step {i}: unknown operation {op!r}")


# ---------------------------------------------------------------------------- lowering
def _alias(graph: Graph):
    """Fused ReLUs: {relu output tensor: conv output tensor} for a ReLU that is its convolution's only reader."""
    producers = {n.output: n for n in graph.nodes}
    fused = {}
    for n in graph.nodes:
        if n.op == "relu":
            src = producers.get(n.inputs[0])
            if src is not None and src.op == "conv" and len(graph.consumers(src.output)) == 1 \
                    and src.output != graph.output:
                fused[n.name] = src.name
    return fused


def choose_r(graph: Graph, r_min: int = 3) -> int:
    ks = [lowered_kernel(n.attrs["stride"], n.params["weight"].shape[2]) if n.attrs["stride"] > 1
          else n.params["weight"].shape[2] for n in graph.nodes if n.op == "conv"]
    return max([r_min, *ks])


def lower(graph: Graph, m: int = 4, r_min: int = 3) -> tuple[ImportedNet, list]:
    """The :class:`ImportedNet` (float64) of a BatchNorm-folded graph and the report's rows (one per node)."""
    shapes = infer_shapes(graph)
    r = choose_r(graph, r_min)
    if m + r - 1 > MAX_TILE:
        raise ConfigError(f"F({m},{r}) has tile {m + r - 1} > {MAX_TILE}: the network's largest lowered kernel is "
                          f"{r}; choose a smaller m")
    alg = winograd(m, r)
    fused = _alias(graph)
    index = {graph.input: -1}
    steps, convs, weights, rows = [], [], [], []
    linear = None
    for node in graph.nodes:
        ins = [index[t] for t in node.inputs]
        src = node.source_op or node.op
        if node.op == "relu" and node.name in fused:
            index[node.output] = index[node.inputs[0]]
            steps[index[node.output]]["relu"] = True
            rows.append({"node": node.name, "op": src, "runs_on": "array",
                         "how": f"fused into {fused[node.name]}: ReLU after the output unit's saturation"})
            continue
        if node.op == "linear":
            if node.output != graph.output:
                raise UnsupportedOperationError(
                    f"{graph.source}: node {node.name!r} ({src}): a linear layer must be the model's last operation "
                    f"(the integer network's logits); nearest supported: a 1×1 convolution before the head")
            w, b = node.params["weight"], node.params.get("bias")
            linear = {"in": int(w.shape[1]), "out": int(w.shape[0]), "weight": w,
                      "bias": np.zeros(w.shape[0]) if b is None else b}
            steps.append({"op": "linear", "name": node.name, "inputs": ins})
            rows.append({"node": node.name, "op": src, "runs_on": "host",
                         "how": f"integer linear head {w.shape[1]}→{w.shape[0]} (int64 accumulators, logits)"})
        elif node.op == "conv":
            w = node.params["weight"]
            K, C, k, _ = w.shape
            s, p = node.attrs["stride"], node.attrs["padding"]
            out_hw = shapes[node.output][1:]
            low = plan_conv(s, k, p, r, out_hw)
            wl = lowered_weight(w, low, r)
            name = node.name
            if low.polyphase:
                steps.append({"op": "polyphase", "name": f"{name}.polyphase", "inputs": ins, "stride": s,
                              "padding": p, "offset": low.offset, "phases": [list(ph) for ph in low.phases],
                              "size": list(low.size)})
                ins = [len(steps) - 1]
            pad = 0 if low.polyphase else p + low.offset
            pattern = np.zeros((wl.shape[1], r, r))
            if low.polyphase:
                for j, (a, b) in enumerate(low.phases):
                    ta, tb = len(range(a, k, s)), len(range(b, k, s))
                    pattern[j * C:(j + 1) * C, low.offset:low.offset + ta, low.offset:low.offset + tb] = 1
            else:
                pattern[:, low.offset:low.offset + k, low.offset:low.offset + k] = 1
            mask = np.stack([structural_mask(pattern[c], alg) for c in range(wl.shape[1])])
            convs.append({"C": int(wl.shape[1]), "K": int(K), "padding": int(pad), "name": name})
            weights.append((wl, node.params.get("bias"), np.broadcast_to(mask, (K, *mask.shape))))
            steps.append({"op": "conv", "name": name, "inputs": ins, "conv": len(convs) - 1, "relu": False})
            how = f"F({m},{r}) Winograd, {C}→{K}, {k}×{k}"
            if s == 1 and not low.polyphase:
                how += (f", stride 1, padding {pad}" if k == r else
                        f" zero-padded into {r}×{r} (centred), stride 1, padding {pad}")
            else:
                how += (f", stride {s}: host polyphase split into {len(low.phases)} component(s) ({wl.shape[1]} "
                        f"channels of {low.size[0]}×{low.size[1]}), kernels of ⌈{k}/{s}⌉ = {lowered_kernel(s, k)} "
                        f"taps zero-padded into {r}×{r}, padding 0")
            if node.attrs.get("folded"):
                how += f"; BatchNorm {node.attrs['folded']} folded in"
            rows.append({"node": name, "op": src, "runs_on": "array", "how": how,
                         "cost": lowering_cost(C, K, k, s, out_hw, wl.shape[1], mask, m)})
        else:
            step = {"op": node.op, "name": node.name, "inputs": ins}
            if node.op in ("maxpool", "avgpool"):
                step["size"] = node.attrs["size"]
            steps.append(step)
            rows.append({"node": node.name, "op": src, "runs_on": "host", "how": HOST_HOW[node.op]})
        index[node.output] = len(steps) - 1
    if index[graph.output] != len(steps) - 1:
        raise UnsupportedOperationError(f"{graph.source}: the output {graph.output!r} is not the last operation")
    if not convs:
        raise UnsupportedOperationError(f"{graph.source}: the model has no convolution to run on the array")
    spec = {"format": SPEC_FORMAT, "m": m, "r": r, "input_shape": list(graph.input_shape), "steps": steps,
            "convs": convs, "linear": None if linear is None else {"in": linear["in"], "out": linear["out"]},
            "source": graph.source}
    net = ImportedNet(spec).double()
    with torch.no_grad():
        for mod, (wl, b, mask) in zip(net.convs, weights):
            mod.set_spatial_weight(torch.tensor(wl))
            mod.mask.copy_(torch.tensor(np.ascontiguousarray(mask), dtype=mod.mask.dtype))
            mod.weight.mul_(mod.mask)
            mod.bias.copy_(torch.tensor(np.zeros(mod.out_channels) if b is None else b))
        if linear is not None:
            net.linear.weight.copy_(torch.tensor(linear["weight"]))
            net.linear.bias.copy_(torch.tensor(linear["bias"]))
    return net, rows


HOST_HOW = {
    "relu": "integer max(x, 0)",
    "maxpool": "integer max over each window (kernel = stride)",
    "avgpool": "integer window sum × mult, round half up, >> shift (≈ 1/k², scale kept)",
    "gap": "integer sum over H×W × mult, round half up, >> shift (≈ 1/(H·W), scale kept)",
    "add": "integer a·mult_a + b·mult_b, round half up, >> shift, saturate (requantized onto the sum's scale)",
    "concat": "each input requantized onto the output scale (identity where equal), joined along channels",
    "flatten": "reshape",
}


def lowering_cost(C: int, K: int, k: int, stride: int, out_hw, c_lowered: int, mask: np.ndarray, m: int) -> dict:
    """Multiplications per image: the direct convolution, the lowered layer dense, and with its structural zeros."""
    tiles = math.ceil(out_hw[0] / m) * math.ceil(out_hw[1] / m)
    n2 = mask.shape[-1] * mask.shape[-2]
    return {"direct": int(K * C * k * k * out_hw[0] * out_hw[1]), "winograd_dense": int(tiles * n2 * K * c_lowered),
            "winograd_structural": int(tiles * K * int(mask.sum()))}


# ---------------------------------------------------------------------------- quantization
def calibrate(net: ImportedNet, calib_x: torch.Tensor, act_bits: int = 8, weight_bits: int = 8,
              mult_bits: int = 15, max_position_shift: int = 8, c_max: int | None = None) -> dict:
    """Scales of every step's output from ``calib_x`` and fake quantization switched on; returns ``net.quant``.

    A convolution writes its own scale (max |output| / qmax); pooling, ReLU, flatten and the
    polyphase split keep their input's; an add writes its own; a concatenation the largest of
    its inputs' (each input requantized onto it). ``c_max`` sizes the datapath (default: the widest
    lowered convolution input; an array built for more channels takes a larger one).
    """
    net.quant = None
    for mod in net.convs:
        mod.qat = None
    if isinstance(net.linear, QuantLinear):
        net.linear = net.linear.linear
    with torch.no_grad():
        was = net.training
        net.eval()
        vals, x = [], calib_x
        for i, st in enumerate(net.steps):
            ins = [x if j < 0 else vals[j] for j in st["inputs"]]
            vals.append(net._step(i, st, ins, None))
        net.train(was)
    top = [float(v.detach().abs().max()) for v in vals]
    input_scale = max(float(calib_x.abs().max()), 1e-12) / qmax(act_bits)
    scales: list = []
    host: list = []
    for i, st in enumerate(net.steps):
        src = [input_scale if j < 0 else scales[j] for j in st["inputs"]]
        op = st["op"]
        p = None
        if op in ("conv", "add"):
            s = max(top[i], 1e-12) / qmax(act_bits)
        elif op == "concat":
            s = max(src)
        elif op == "linear":
            s = None
        else:
            s = src[0]
        if op == "add":
            mult, shift = common_requant([v / s for v in src], f"add {st['name']}")
            p = {"mult": mult, "shift": shift}
        elif op == "concat":
            pairs = [concat_requant(v / s, f"concat {st['name']}") for v in src]
            p = {"mult": [a for a, _ in pairs], "shift": [b for _, b in pairs]}
        elif op in ("avgpool", "gap"):
            window = st["size"] ** 2 if op == "avgpool" else int(np.prod(vals[st["inputs"][0]].shape[2:])) \
                if st["inputs"][0] >= 0 else int(np.prod(calib_x.shape[2:]))
            mult, shift = host_requant(1.0 / window, f"{op} {st['name']}")
            p = {"mult": mult, "shift": shift}
        scales.append(s)
        host.append(p)
    widest = max(c["C"] for c in net.spec["convs"])
    if c_max is not None and c_max < widest:
        raise ConfigError(f"c_max = {c_max}: the widest lowered convolution takes {widest} input channels")
    q = {"input_scale": input_scale, "act_bits": act_bits, "weight_bits": weight_bits, "mult_bits": mult_bits,
         "max_position_shift": max_position_shift, "scales": scales, "host": host, "c_max": c_max or widest}
    attach_quant(net, q)
    return q


def datapath_of(net: ImportedNet, q: dict):
    from winnow.model.integer.datapath import DatapathConfig

    return DatapathConfig(m=net.spec["m"], r=net.spec["r"], act_bits=q["act_bits"], weight_bits=q["weight_bits"],
                          c_max=q.get("c_max") or max(c["C"] for c in net.spec["convs"]), mult_bits=q["mult_bits"],
                          max_position_shift=q["max_position_shift"])


def attach_quant(net: ImportedNet, q: dict) -> None:
    """Switch fake quantization on with the scales ``q`` (:func:`calibrate`'s, or a checkpoint's)."""
    cfg = datapath_of(net, q)
    for i, st in enumerate(net.steps):
        if st["op"] == "conv":
            (j,) = st["inputs"]
            s_in = q["input_scale"] if j < 0 else q["scales"][j]
            net.convs[st["conv"]].qat = LayerQuant(cfg, s_in, q["scales"][i], first=False)
        elif st["op"] == "linear":
            (j,) = st["inputs"]
            s_in = q["input_scale"] if j < 0 else q["scales"][j]
            lin = net.linear.linear if isinstance(net.linear, QuantLinear) else net.linear
            net.linear = QuantLinear(lin, s_in, q["act_bits"], q["weight_bits"])
    net.quant = q


def integer_network(net: ImportedNet):
    """The :class:`~winnow.model.integer.network.IntegerNetwork` of a calibrated net (bit-exact with its
    fake-quantized float64 forward pass up to the rounding of float64 arithmetic)."""
    from winnow.model.integer.host_ops import Add, AvgPool, Concat, GlobalAvgPool, Polyphase
    from winnow.model.integer.network import Flatten, IntegerNetwork, IntReLU, QuantizedLinear
    from winnow.model.integer.reference import MaxPool, quantize_winograd_weights

    q = net.quant
    if q is None:
        raise ConfigError("the imported model is not quantized: calibrate it first")
    bits = q["act_bits"]
    ops = []
    for i, st in enumerate(net.steps):
        op, name = st["op"], st["name"]
        p = q["host"][i]
        if op == "conv":
            mod = net.convs[st["conv"]]
            with torch.no_grad():
                u = mod.masked_weight().detach().to(torch.float64).cpu().numpy()
                b = mod.bias.detach().to(torch.float64).cpu().numpy()
            if not (np.isfinite(u).all() and np.isfinite(b).all()):
                raise ConfigError(f"layer {name}: its weights hold NaN or infinite values; nothing to quantize")
            lq = mod.qat
            ops.append(quantize_winograd_weights(u, b, lq.in_scale, lq.out_scale, lq.config, padding=mod.padding,
                                                 relu=st["relu"], name=name))
        elif op == "linear":
            lin = net.linear
            with torch.no_grad():
                sw = float(lin.weight_scale())
                w = lin.linear.weight.detach().to(torch.float64).cpu().numpy()
                wq = np.clip(np.rint(w / sw), -qmax(lin.weight_bits), qmax(lin.weight_bits)).astype(np.int64)
                bq = np.rint(lin.linear.bias.detach().to(torch.float64).cpu().numpy() / (lin.in_scale * sw))
            ops.append(QuantizedLinear(wq, bq.astype(np.int64), lin.in_scale, sw, bits, name=name))
        elif op == "polyphase":
            ops.append(Polyphase(st["stride"], st["padding"], st["offset"], tuple(tuple(v) for v in st["phases"]),
                                 tuple(st["size"]), name))
        elif op == "relu":
            ops.append(IntReLU(name))
        elif op == "maxpool":
            ops.append(MaxPool(st["size"], name))
        elif op == "avgpool":
            ops.append(AvgPool(st["size"], p["mult"], p["shift"], bits, name))
        elif op == "gap":
            ops.append(GlobalAvgPool(p["mult"], p["shift"], bits, name))
        elif op == "add":
            ops.append(Add(tuple(p["mult"]), p["shift"], bits, q["scales"][i], name))
        elif op == "concat":
            ops.append(Concat(tuple(p["mult"]), tuple(p["shift"]), bits, q["scales"][i], name))
        elif op == "flatten":
            ops.append(Flatten(name))
        else:
            raise ConfigError(f"step {i}: unknown operation {op!r}")
    return IntegerNetwork(ops, q["input_scale"], bits, tuple(net.spec["input_shape"]),
                          tuple(tuple(st["inputs"]) for st in net.steps))
