"""Foundation benchmarks: speed of the torch tile convolution, throughput of the
integer reference, and float round-off against tile size.

Each public function performs one measurement and returns a JSON-ready ``dict``
(plain ``int``/``float``/``str``/``list``/``dict`` only); :mod:`bench.run` is the
command line that calls them, writes the JSON and renders the Markdown table.
Every random input is drawn from a seeded generator, so two runs differ only in
their timings.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from winnow.model.integer.datapath import DatapathConfig
from winnow.model.integer.reference import integer_conv, quantize_conv, quantize_input
from winnow.model.algebra.tiling import ConvGeometry
from winnow.model.algebra.winograd_conv import winograd_conv

#: Kernel size of every layer measured here (3 × 3, the case Winograd is used for).
R = 3


def machine_info() -> dict:
    """Describe the machine and library versions the figures were taken on.

    Returns
    -------
    dict
        ``platform``, ``processor``, ``cpu_count``, ``torch_threads``, ``python``,
        ``torch``, ``numpy`` and ``date`` (UTC, ISO 8601).
    """
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def time_calls(fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 1) -> list[list[float]]:
    """Wall-clock seconds of each function, ``repeats`` times after ``warmup`` calls.

    The functions are called in turn within each round (interleaved), so a change in
    machine load affects all of them alike instead of biasing one.

    Parameters
    ----------
    fns : sequence of callables
        Functions without arguments.
    repeats : int
        Timed rounds (>= 1).
    warmup : int
        Untimed rounds before the first timed one.

    Returns
    -------
    list of list of float
        ``samples[i]`` holds the ``repeats`` timings of ``fns[i]``.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return samples


def _timing(samples: list[float]) -> dict:
    """Median, minimum and every sample (rounded to 0.1 µs) of a list of timings in seconds."""
    return {"median_s": statistics.median(samples), "min_s": min(samples), "repeats": len(samples),
            "samples_s": [round(t, 7) for t in samples]}  # fmt: skip


def _forward_backward(conv: Callable, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    """A closure running ``conv(x, w)`` forward and backward with a fixed output gradient."""

    def step() -> None:
        x.grad = None
        w.grad = None
        conv(x, w).backward(grad)

    return step


def _grads(conv: Callable, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dx, dL/dw) of ``conv(x, w)`` for the output gradient ``grad``."""
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    conv(xg, wg).backward(grad)
    return xg.grad, wg.grad


def torch_speed(batch: int = 32, channels: int = 64, size: int = 32, m: int = 4,
                repeats: int = 10, warmup: int = 2, seed: int = 0) -> dict:
    """Time the torch tile convolution against ``torch.nn.functional.conv2d``.

    Float32, stride 1, padding 1, C = K = ``channels``, 3 × 3 kernels, default torch
    thread count. Forward alone is timed under ``torch.no_grad``; forward + backward
    computes the gradients of input and weight for a fixed random output gradient.

    Parameters
    ----------
    batch, channels, size : int
        N, C = K and H = W of the layer.
    m : int
        Output tile of F(m, 3).
    repeats, warmup : int
        Timed and untimed rounds (see :func:`time_calls`).
    seed : int
        Seed of the random input, kernel and output gradient.

    Returns
    -------
    dict
        Layer description, ``forward`` and ``forward_backward`` timings per method,
        their ``ratio`` winograd/conv2d (> 1: the tile convolution is slower),
        ``max_abs_diff`` of the outputs and gradients between the two methods and
        ``max_rel_diff`` (the same divided by the largest magnitude of the conv2d value).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen)
    w = torch.randn(channels, channels, R, R, generator=gen) / math.sqrt(channels * R * R)
    grad = torch.randn(batch, channels, size, size, generator=gen)

    def wino(a, b):
        return winograd_conv(a, b, padding=1, m=m)

    def direct(a, b):
        return F.conv2d(a, b, padding=1)

    with torch.no_grad():
        fwd = time_calls([lambda: wino(x, w), lambda: direct(x, w)], repeats, warmup)
        y_w, y_d = wino(x, w), direct(x, w)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    fb = time_calls([_forward_backward(wino, xg, wg, grad), _forward_backward(direct, xg, wg, grad)], repeats, warmup)
    grads_w = _grads(wino, x, w, grad)
    grads_d = _grads(direct, x, w, grad)
    pairs = [("output", y_w, y_d), ("grad_input", grads_w[0], grads_d[0]), ("grad_weight", grads_w[1], grads_d[1])]
    result = {
        "layer": {"N": batch, "C": channels, "K": channels, "H": size, "W": size, "r": R, "padding": 1,
                  "dtype": "float32", "tile": f"F({m},{R})"},
        "forward": {"winograd": _timing(fwd[0]), "conv2d": _timing(fwd[1])},
        "forward_backward": {"winograd": _timing(fb[0]), "conv2d": _timing(fb[1])},
        "max_abs_diff": {name: float((a - b).abs().max()) for name, a, b in pairs},
        "max_rel_diff": {name: float((a - b).abs().max() / b.abs().max()) for name, a, b in pairs},
    }  # fmt: skip
    for phase in ("forward", "forward_backward"):
        t = result[phase]
        t["ratio"] = t["winograd"]["median_s"] / t["conv2d"]["median_s"]
    return result


def _timed_until(fn: Callable[[], object], min_time: float, min_repeats: int) -> list[float]:
    """Time ``fn`` after one warm-up call until ``min_time`` seconds and ``min_repeats`` calls."""
    fn()
    samples: list[float] = []
    while len(samples) < min_repeats or sum(samples) < min_time:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def integer_throughput(tiles: Sequence[int] = (2, 4, 6), batch: int = 4, channels: int = 64, size: int = 32,
                       min_time: float = 2.0, min_repeats: int = 3, seed: int = 0) -> dict:
    """Throughput of the bit-accurate integer reference ``integer_conv``.

    For each F(m, 3) a random layer (C = K = ``channels``, padding 1, 8-bit activations
    and weights) is quantized once; then ``integer_conv`` is timed on 8-bit input, both
    with its default float64-BLAS accumulation (exact below 2^53) and with forced int64
    accumulation. The two must agree bit for bit.

    Two operation counts are reported per second of median time:

    * ``direct_macs``: N·K·C·Ho·Wo·r², the multiply-accumulates a direct convolution of
      the same layer would need (the usual "effective" figure);
    * ``winograd_mults``: N·K·C·T·n², the element-wise multiplies actually done in the
      Winograd domain (T tiles of n × n).

    Parameters
    ----------
    tiles : sequence of int
        Output tile sizes m.
    batch, channels, size : int
        N, C = K and H = W of the layer.
    min_time : float
        Seconds of timed calls per tile and accumulation path (at least ``min_repeats``).
    min_repeats : int
        Fewest timed calls.
    seed : int
        Seed of the input and kernel.

    Returns
    -------
    dict
        ``layer`` and one row per tile in ``rows``.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, size, size))
    w = rng.standard_normal((channels, channels, R, R)) / math.sqrt(channels * R * R)
    xq, in_scale = quantize_input(x, 8)
    rows = []
    for m in tiles:
        cfg = DatapathConfig(m=m, r=R, act_bits=8, weight_bits=8, c_max=channels)
        layer = quantize_conv(w, None, in_scale, 4.0 / 127, cfg, padding=1)
        geom = ConvGeometry.of((size, size), 1, m, R)
        direct = batch * channels * channels * math.prod(geom.out) * R * R
        wmults = batch * channels * channels * geom.num_tiles * cfg.n**2
        row = {"tile": f"F({m},{R})", "n": cfg.n, "tiles": geom.num_tiles, "acc_bits": cfg.widths.acc_bits,
               "direct_macs": direct, "winograd_mults": wmults,
               "bit_equal_paths": bool(np.array_equal(integer_conv(xq, layer), integer_conv(xq, layer, exact_float=False)))}  # fmt: skip
        for path, exact_float in (("float64_blas", True), ("int64", False)):
            t = _timing(_timed_until(lambda: integer_conv(xq, layer, exact_float=exact_float), min_time, min_repeats))
            t["direct_macs_per_s"] = direct / t["median_s"]
            t["winograd_mults_per_s"] = wmults / t["median_s"]
            row[path] = t
        rows.append(row)
    return {
        "layer": {"N": batch, "C": channels, "K": channels, "H": size, "W": size, "r": R, "padding": 1,
                  "act_bits": 8, "weight_bits": 8},
        "rows": rows,
    }  # fmt: skip


def _errors(y: torch.Tensor, ref: torch.Tensor) -> dict:
    """Max abs error and mean |error| relative to the rms of the float64 reference."""
    err = (y.double() - ref).abs()
    rms = float(ref.pow(2).mean().sqrt())
    return {"max_abs": float(err.max()), "mean_rel": float(err.mean()) / rms, "max_rel": float(err.max()) / rms}


def float_error(tiles: Sequence[int] = (2, 4, 6, 8), batch: int = 8, channels: int = 64, size: int = 32,
                seed: int = 0) -> dict:
    """Round-off of the float Winograd convolution against tile size.

    Input ~ N(0, 1), kernels ~ N(0, 1/(9C)) (so outputs are ~ N(0, 1)), padding 1.
    The reference is ``torch.nn.functional.conv2d`` in float64. Each F(m, 3) runs in
    float32 and in float64; the float32 ``conv2d`` row shows the round-off of a direct
    convolution at the same precision for comparison.

    Parameters
    ----------
    tiles : sequence of int
        Output tile sizes m.
    batch, channels, size : int
        N, C = K and H = W.
    seed : int
        Seed of input and kernels.

    Returns
    -------
    dict
        ``layer``, ``output_rms``, the float32 ``conv2d`` baseline and one row per tile
        with ``float32`` and ``float64`` errors (``max_abs``, ``mean_rel``, ``max_rel``;
        relative means divided by the rms of the reference output).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen, dtype=torch.float64)
    w = torch.randn(channels, channels, R, R, generator=gen, dtype=torch.float64) / math.sqrt(channels * R * R)
    x32, w32 = x.float(), w.float()
    with torch.no_grad():
        ref = F.conv2d(x, w, padding=1)
        rows = [
            {"tile": f"F({m},{R})", "n": m + R - 1,
             "float32": _errors(winograd_conv(x32, w32, padding=1, m=m), ref),
             "float64": _errors(winograd_conv(x, w, padding=1, m=m), ref)}
            for m in tiles
        ]  # fmt: skip
        baseline = _errors(F.conv2d(x32, w32, padding=1), ref)
    return {
        "layer": {"N": batch, "C": channels, "K": channels, "H": size, "W": size, "r": R, "padding": 1, "seed": seed},
        "output_rms": float(ref.pow(2).mean().sqrt()),
        "conv2d_float32": baseline,
        "rows": rows,
    }  # fmt: skip
