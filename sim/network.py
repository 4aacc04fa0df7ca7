"""Real layers for the RTL: the convolutions of an exported network with the activations an image gives them."""

from __future__ import annotations

import numpy as np

from winnow.model.files.layer_file import SparseLayer


def traced_convolutions(network_dir, image: np.ndarray) -> list[tuple[SparseLayer, np.ndarray, np.ndarray]]:
    """For each conv of the exported network in ``network_dir``: (its layer file, input (C, H, W), output (K, Ho, Wo)).

    ``image`` (C, H, W) floats is quantized with the network's input scale and run
    through the integer network (:func:`winnow.model.files.export.read_network`), so inputs and
    outputs are the real integer activations of that image at every convolution.
    """
    from winnow.model.files.export import read_network
    from winnow.model.integer.quant import quantize
    from winnow.model.integer.reference import QuantizedConv

    loaded = read_network(network_dir)
    net = loaded.net
    h = quantize(np.asarray(image, dtype=np.float64)[None], net.input_scale, net.act_bits)
    layers = iter(loaded.convs)
    vals = net.values(h)
    out = []
    for i, op in enumerate(net.ops):
        if isinstance(op, QuantizedConv):
            (j,) = net.op_inputs(i)
            out.append((next(layers)[1], (h if j < 0 else vals[j])[0], vals[i][0]))
    return out
