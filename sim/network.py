"""Real layers for the RTL: the convolutions of an exported network with the activations an image gives them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.layer_file import SparseLayer, read_layer


def traced_convolutions(network_dir, image: np.ndarray) -> list[tuple[SparseLayer, np.ndarray, np.ndarray]]:
    """For each conv of the exported network in ``network_dir``: (its layer file, input (C, H, W), output (K, Ho, Wo)).

    ``image`` (C, H, W) floats is quantized with the network's input scale and run
    through the integer network (:func:`model.export.load_network`), so inputs and
    outputs are the real integer activations of that image at every convolution.
    """
    from model.export import load_network
    from model.quant import quantize
    from model.reference import QuantizedConv

    network_dir = Path(network_dir)
    net = load_network(network_dir)
    files = [op["file"] for op in json.loads((network_dir / "network.json").read_text())["ops"] if op["op"] == "conv"]
    h = quantize(np.asarray(image, dtype=np.float64)[None], net.input_scale, net.act_bits)
    out, i = [], 0
    for op in net.ops:
        nxt = op(h)
        if isinstance(op, QuantizedConv):
            out.append((read_layer(network_dir / files[i]), h[0], nxt[0]))
            i += 1
        h = nxt
    return out
