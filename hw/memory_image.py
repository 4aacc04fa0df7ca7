"""A tiled layer's external-memory image for the streaming array, and reading its outputs back.

:func:`layer_image` lays one layer out in the streaming array's memory
(:mod:`winnow.hw.stream_abi`), from a base address, each region starting on a 4 KiB page:

* ``desc``: one pass descriptor per pass, in run order (the ``desc_addr`` and
  ``passes`` the controller is started with);
* ``loads``: each pass's load words (registers, quantization words, stream segments;
  one load-port word per bus word, zero-extended), built once per layer: they do not
  depend on the input;
* ``input``: the input feature map, planar and pre-padded: channel c, row h, column w of
  the padded map at ``input + c·chan_stride + h·row_stride + w``, one byte each,
  ``row_stride`` the padded width rounded up to whole words. :meth:`LayerImage.input_bytes`
  builds it from an input (C, H, W) — the host's step between layers;
* ``output``: each finishing pass's outputs, tile-major (channel, tile, the m×m outputs of
  the tile row by row), one byte each, zero-padded to whole words.
  :meth:`LayerImage.read_output` turns them into the layer's output (K, Ho, Wo).

A tiled job keeps its partial sums in the accumulators from one pass to the next and
its last pass reads and clears them; a run stopped in the middle of a job (a fault, a
reset, a host that gives up) leaves them there, and the memories survive a reset. The
next job would add to them. :func:`flush_layer` is the remedy the host runs after an
interrupted run: one finishing pass over the largest window with no weights, whose
output unit reads and clears every accumulator row a pass can use (its outputs are
discarded).

Nothing here runs a simulator: :mod:`winnow.sim.stream_run` writes the image into
cocotbext-axi's ``AxiRam``; a board's host driver writes it into DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.hw.stream_abi import MAX_LOADS, StreamConfig, check_stream, desc_words, encode_desc
from winnow.hw.tiled_packer import assemble, passes, plan_for
from winnow.hw.tiling import LayerPlan
from winnow.model.errors import ConfigError, DataError
from winnow.model.files.layer_file import SparseLayer
from winnow.model.integer.reference import QuantizedConv

PAGE = 4096


def _page(x: int) -> int:
    return -(-x // PAGE) * PAGE


def words_to_bytes(words, data_bits: int) -> bytes:
    """Integers (each < 2^data_bits) → little-endian bus words."""
    nb = data_bits // 8
    return b"".join(int(w).to_bytes(nb, "little") for w in words)


@dataclass
class LayerImage:
    """Where one layer lives in memory, its descriptors and load words (module docstring)."""

    config: AccelConfig
    stream: StreamConfig
    layer: SparseLayer
    plan: LayerPlan
    runs: list  # the passes (Pass, without windows), in run order
    base: int
    desc_addr: int
    loads_addr: int
    input_addr: int
    output_addr: int
    end: int
    row_stride: int
    chan_stride: int
    out_slots: list  # per pass: (output address, words) or None
    descriptors: list = field(default_factory=list)  # per pass: its descriptor's fields
    blobs: list = field(default_factory=list)  # [(address, bytes)]: descriptors and load words

    @property
    def passes(self) -> int:
        return len(self.runs)

    @property
    def padded(self) -> tuple[int, int]:
        ph, pw = self.plan.geometry.padding
        H, W = self.layer.size
        return H + 2 * ph, W + 2 * pw

    def input_bytes(self, xq: np.ndarray) -> bytes:
        """The input region's bytes for the input ``xq`` (C, H, W), padded and strided."""
        C = self.layer.in_channels
        xq = np.asarray(xq, dtype=np.int64)
        if xq.shape != (C, *self.layer.size):
            raise DataError(f"input must have shape {(C, *self.layer.size)} for layer {self.layer.name}; got {xq.shape}")
        lo, hi = -(1 << (self.config.datapath.act_bits - 1)), (1 << (self.config.datapath.act_bits - 1)) - 1
        if xq.size and (xq.min() < lo or xq.max() > hi):
            raise DataError(f"input values must be {self.config.datapath.act_bits}-bit signed ({lo} … {hi})")
        ph, pw = self.plan.geometry.padding
        hp, _ = self.padded
        img = np.zeros((C, hp, self.row_stride), dtype=np.int64)
        img[:, ph:ph + xq.shape[1], pw:pw + xq.shape[2]] = xq
        return (img & 0xFF).astype(np.uint8).tobytes()

    def read_output(self, read) -> np.ndarray:
        """The layer's output (K, Ho, Wo) from memory, ``read(addr, nbytes) → bytes``."""
        m = self.config.m
        outs = []
        for r, slot in zip(self.runs, self.out_slots):
            if slot is None:
                outs.append(None)
                continue
            addr, words = slot
            g = r.packed.geometry
            th, tw = g.tiles
            kb = r.packed.layer.out_channels
            raw = np.frombuffer(read(addr, words * self.stream.word_bytes), dtype=np.int8).astype(np.int64)
            tiles = raw[:kb * th * tw * m * m].reshape(kb, th, tw, m, m)
            full = tiles.transpose(0, 1, 3, 2, 4).reshape(kb, th * m, tw * m)
            ho, wo = g.out
            outs.append(full[:, :ho, :wo])
        return assemble(self.plan, self.runs, outs)


def layer_image(layer: SparseLayer, cfg: AccelConfig, stream: StreamConfig = StreamConfig(), base: int = 0,
                progress=None) -> LayerImage:
    """Lay ``layer`` out for the streaming array ``cfg`` from ``base`` (a page multiple); see the module docstring."""
    check_stream(cfg, stream)
    if base % PAGE or base < 0:
        raise ConfigError(f"the image's base address must be a non-negative multiple of {PAGE}, got {base}")
    nb, W = stream.word_bytes, stream.data_bits
    plan = plan_for(cfg, layer)
    runs = passes(layer, None, cfg, plan)
    D = desc_words(cfg, stream)
    loads = []
    for i, r in enumerate(runs):
        words = r.packed.load_port_words(None)
        if len(words) > MAX_LOADS:
            raise ConfigError(f"pass {r.name} has {len(words)} load words, more than {MAX_LOADS} "
                              f"(lower stream_depth or c_block)")
        loads.append(words)
        if progress:
            progress(i + 1, len(runs))
    C = layer.in_channels
    ph, pw = plan.geometry.padding
    hp, wp = layer.size[0] + 2 * ph, layer.size[1] + 2 * pw
    row_stride = -(-wp // nb) * nb
    chan_stride = hp * row_stride
    desc_addr = base
    loads_addr = _page(desc_addr + len(runs) * D * nb)
    input_addr = _page(loads_addr + sum(len(w) for w in loads) * nb)
    output_addr = _page(input_addr + C * chan_stride)
    m2 = cfg.m * cfg.m
    slots, at = [], output_addr
    for r in runs:
        if r.finish:
            words = -(-r.packed.layer.out_channels * r.packed.tiles * m2 // nb)
            slots.append((at, words))
            at += words * nb
        else:
            slots.append(None)
    end = _page(at)
    if end >= 1 << stream.addr_bits:
        raise ConfigError(f"the layer's image needs {end - base} bytes, beyond the {stream.addr_bits}-bit address space")
    descs, fields_of, la = [], [], loads_addr
    c_starts = np.concatenate([[0], np.cumsum(plan.c_blocks)]).tolist()
    for r, words, slot in zip(runs, loads, slots):
        h0, h1, w0, w1 = r.patch.window(plan.geometry)
        c0 = c_starts[r.c_index]
        first = input_addr + c0 * chan_stride + h0 * row_stride + w0
        skip = first % nb
        cols = w1 - w0
        fields = {"loads_addr": la, "loads": len(words), "x_addr": first - skip, "x_skip": skip,
                  "x_beats": -(-(skip + cols) // nb), "x_c": plan.c_blocks[r.c_index], "x_rows": h1 - h0,
                  "x_cols": cols, "x_row_stride": row_stride, "x_chan_stride": chan_stride,
                  "out_addr": slot[0] if slot else 0, "out_words": slot[1] if slot else 0,
                  "out_k": r.packed.layer.out_channels, "out_tiles": r.packed.tiles, "finish": int(r.finish)}
        descs.append(encode_desc(cfg, stream, fields))
        fields_of.append(fields)
        la += len(words) * nb
    desc_bytes = b"".join(descs)
    load_bytes = b"".join(words_to_bytes(w, W) for w in loads)
    return LayerImage(config=cfg, stream=stream, layer=layer, plan=plan, runs=runs, base=base, desc_addr=desc_addr,
                      loads_addr=loads_addr, input_addr=input_addr, output_addr=output_addr, end=end,
                      row_stride=row_stride, chan_stride=chan_stride, out_slots=slots, descriptors=fields_of,
                      blobs=[(desc_addr, desc_bytes), (loads_addr, load_bytes)])


def flush_layer(cfg: AccelConfig) -> SparseLayer:
    """A layer whose one pass clears every accumulator row of ``cfg`` (module docstring): no weights,
    k_max output channels, one input channel, the largest window the array takes."""
    from winnow.hw.tiled_packer import buffers_of

    dp = cfg.datapath
    b = buffers_of(cfg)
    size = (b.patch_h * cfg.m + cfg.r - 1, b.patch_w * cfg.m + cfg.r - 1)
    K, n = cfg.k_max, cfg.n
    q = QuantizedConv(config=dp, weights=np.zeros((K, 1, n, n), dtype=np.int64), bias=np.zeros(K, dtype=np.int64),
                      mult=np.ones(K, dtype=np.int64), shift=np.ones(K, dtype=np.int64), padding=(0, 0),
                      in_scale=1.0, out_scale=1.0, weight_scale=np.ones(K), name="flush")
    return SparseLayer.from_quantized_conv(q, size, name="flush")
