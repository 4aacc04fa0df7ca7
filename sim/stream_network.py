"""A whole exported network through the streaming array's external memory, layer after layer.

:func:`run_network` quantizes a test image with the network's input scale and walks the
integer network's operations (:func:`winnow.model.files.export.read_network`). Every
convolution runs on the streaming array's RTL (:func:`winnow.sim.stream_run.run_stream`):
its memory image is written into the simulated RAM with the *current* activation as the
input map, the passes run, and the output region is read back and assembled. The
host operations in between (max pooling, ReLU, flatten, the final linear layer) run on
what the RTL wrote, so a wrong word in one layer propagates to the next one, as on a
board. Each convolution's RTL output is checked against the reference on the same input
and against the exported network's own activation (the image traced through the integer
network without the RTL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.hw.stream_abi import StreamConfig
from winnow.model.errors import WinnowError


@dataclass
class NetworkStep:
    """One convolution of the network through memory."""

    name: str
    bit_exact: bool
    matches_network: bool
    outputs: int
    cycles: int
    model_cycles: int
    compute_cycles: int
    passes: int
    run_wall_s: float
    model: dict


def run_network(network_dir, image: np.ndarray, cfg: AccelConfig, simulator: str = "verilator",
                stream: StreamConfig = StreamConfig(), build_dir=None, progress=None, layers=None,
                cxx_opt: str = "-O2") -> tuple:
    """Run every convolution (or the conv indices in ``layers``) of the network through memory.

    Returns ([NetworkStep per convolution run], the network's final output (RTL-fed)).
    Convolutions not chosen run in the reference; the host operations always do.
    """
    from winnow.model.files.export import read_network
    from winnow.model.integer.quant import quantize
    from winnow.model.integer.reference import QuantizedConv
    from winnow.sim.layers import reference_output
    from winnow.sim.network import traced_convolutions
    from winnow.sim.stream_run import StreamCase, run_stream

    say = progress or (lambda line: None)
    loaded = read_network(network_dir)
    net = loaded.net
    traced = traced_convolutions(network_dir, image)
    h = quantize(np.asarray(image, dtype=np.float64)[None], net.input_scale, net.act_bits)
    convs = iter(loaded.convs)
    steps, index = [], 0
    for op in net.ops:
        if not isinstance(op, QuantizedConv):
            h = op(h)
            continue
        _, layer = next(convs)
        if layers is not None and index not in layers:
            h = op(h)
            index += 1
            continue
        xq = h[0]
        (res,) = run_stream(cfg, [StreamCase(layer, xq, f"conv{index}")], simulator, stream=stream,
                            build_dir=build_dir, cxx_opt=cxx_opt)
        if res.error or res.timed_out or res.out is None:
            raise WinnowError(f"conv {index} ({layer.name}): the streaming run stopped "
                              f"({', '.join(res.faults) or 'no done'} at 0x{res.error_addr:x})")
        want = reference_output(layer, xq)
        exact = bool(np.array_equal(res.out, want))
        matches = bool(np.array_equal(res.out, traced[index][2]))
        steps.append(NetworkStep(name=layer.name, bit_exact=exact, matches_network=matches, outputs=int(want.size),
                                 cycles=res.cycles, model_cycles=res.model.cycles, compute_cycles=res.compute_cycles,
                                 passes=res.image.passes, run_wall_s=res.run_wall_s, model=res.model.to_dict()))
        say(f"      conv {index} ({layer.name}): {res.image.passes} passes through memory, {want.size:,} outputs "
            f"{'bit-exact' if exact else 'DIFFER'}, {res.cycles:,} cycles "
            f"({'=' if res.cycles == res.model.cycles else '≠'} model {res.model.cycles:,}; array "
            f"{res.compute_cycles:,})")
        h = res.out[None]  # the next operation reads what the RTL wrote
        index += 1
    return steps, h
