"""Packer: sparse layer file + AccelConfig → the memory images of one PE array.

* Rows are split over the S PE clusters by k mod S; within cluster s, Winograd
  positions are assigned to its P/S PEs by LPT (longest processing time first) on the
  non-zeros of the cluster's rows: positions sorted by load, each given to the
  least-loaded PE so far (ties: lowest index). The imbalance max/mean of the per-PE
  stream lengths is reported; every PE phase lasts as long as its longest segment.
* Each PE's stream is cut into one *segment* per output-channel block b (k_block
  rows); within a segment the PE's positions come in assignment order, the rows k of
  its cluster ascend, and within a row the input channels c ascend (CSR order). Every
  entry is one word ``p | k | c | value | last | eob`` (:func:`winnow.hw.abi.entry_layout`); ``k`` is the row's address in the accumulator
  bank, ⌊(k mod k_block)/S⌋; ``last`` marks the final entry of a (p, k) row, where the
  PE writes its accumulator; ``eob`` the final entry of the segment. A segment without
  non-zeros holds one zero-weight ``eob`` entry. Rows without non-zeros are absent:
  the accumulator memory reads as zero there.
* Dense mode: every weight (zeros included) of every (p, k) row: the dense-Winograd
  baseline on the same array.
* The input is banked by (h mod n, w mod n): any n×n window touches each bank once,
  so the input unit reads a whole tile per cycle. Output tile t (raster order) of
  channel k lives in bank (t mod otu_lanes, ho mod m, wo mod m) at address
  k·out_tiles + ⌊t/otu_lanes⌋.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from winnow.model.errors import ConfigError, DataError
from winnow.model.files.layer_file import SparseLayer
from winnow.model.algebra.tiling import ConvGeometry

from winnow.hw import abi
from winnow.hw.abi import Sel
from winnow.hw.balance import assign_owners, block_rows, lpt_order, segment_lengths
from winnow.hw.config import AccelConfig
from winnow.hw.cycle_model import CycleReport, cycles, packed_cycles


@dataclass(frozen=True)
class PackedLayer:
    """Everything one run of one layer on one array needs.

    Attributes
    ----------
    config : AccelConfig
    layer : SparseLayer
    geometry : winnow.model.algebra.tiling.ConvGeometry
    owner : int64 (clusters, positions)
        PE (index within the cluster) that walks each position's rows of each cluster.
    streams : list of int64 arrays (len_j, 6)
        Per PE, the entries (p, k, c, value, last, eob) in stream order; k is the
        global output channel (−1 for an empty segment's marker).
    segments : int64 (pes, blocks)
        Entries of each PE's segment per output-channel block.
    registers : dict
        Run-time register values (:func:`winnow.hw.abi.register_map`).
    quant : int64 (K, 3)
        bias, mult, shift per output channel.
    """

    config: AccelConfig
    layer: SparseLayer
    geometry: ConvGeometry
    owner: np.ndarray
    streams: list
    segments: np.ndarray
    registers: dict
    quant: np.ndarray

    @property
    def stream_lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.streams], dtype=np.int64)

    @property
    def imbalance(self) -> float:
        """max/mean of the per-PE stream lengths (1.0 is perfect; empty layers give 1.0)."""
        lens = self.stream_lengths
        return float(lens.max() / lens.mean()) if lens.sum() else 1.0

    @property
    def tiles(self) -> int:
        return self.geometry.num_tiles

    @property
    def groups(self) -> int:
        return -(-self.tiles // self.config.lanes)

    def stream_words(self, j: int) -> np.ndarray:
        """PE ``j``'s stream as packed words (Python ints, object array)."""
        cfg = self.config
        s = self.streams[j]
        k_addr = np.where(s[:, 1] >= 0, (s[:, 1] % cfg.k_block) // cfg.clusters, 0)
        return abi.pack(abi.entry_layout(cfg), {"p": s[:, 0], "k": k_addr, "c": s[:, 2], "value": s[:, 3],
                                                "last": s[:, 4], "eob": s[:, 5]})  # fmt: skip

    def quant_words(self) -> np.ndarray:
        q = self.quant
        return abi.pack(abi.quant_layout(self.config.datapath), {"bias": q[:, 0], "mult": q[:, 1], "shift": q[:, 2]})

    def register_words(self) -> list[int]:
        out = []
        for name, bits, _signed in abi.register_map(self.config):
            out.append(int(self.registers[name]) & ((1 << bits) - 1))
        return out

    def input_banks(self, xq: np.ndarray) -> np.ndarray:
        """Input activations (C, H, W) → (n², x_depth) bank images (two's complement words)."""
        cfg = self.config
        n = cfg.n
        C, H, W = self.layer.in_channels, *self.layer.size
        xq = np.asarray(xq, dtype=np.int64)
        if xq.shape != (C, H, W):
            raise DataError(f"input must have shape {(C, H, W)} for layer {self.layer.name}; got {xq.shape}")
        banks = np.zeros((n * n, cfg.x_depth), dtype=np.int64)
        c, h, w = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
        bank, addr = abi.x_bank(cfg, h, w), abi.x_addr(cfg, c, h, w)
        banks[bank.ravel(), addr.ravel()] = xq.ravel() & ((1 << cfg.datapath.act_bits) - 1)
        return banks

    def load_words(self, xq: np.ndarray | None) -> list[tuple[Sel, int, int, int]]:
        """The whole load sequence (select, bank, address, data) for the load port.

        ``xq`` None: the registers, quantization words and streams only (the streaming
        array reads the input window from the feature map itself).
        """
        out = [(Sel.REG, 0, i, v) for i, v in enumerate(self.register_words())]
        out += [(Sel.QUANT, 0, k, int(v)) for k, v in enumerate(self.quant_words())]
        for j in range(self.config.pes):
            out += [(Sel.STREAM, j, a, int(v)) for a, v in enumerate(self.stream_words(j))]
        if xq is None:
            return out
        banks = self.input_banks(xq)
        C, H, W = self.layer.in_channels, *self.layer.size
        # only the words that hold pixels, in (h, w, c) order
        h, w, c = (v.ravel() for v in np.meshgrid(np.arange(H), np.arange(W), np.arange(C), indexing="ij"))
        b, a = abi.x_bank(self.config, h, w), abi.x_addr(self.config, c, h, w)
        out += [(Sel.X, bb, aa, v) for bb, aa, v in zip(b.tolist(), a.tolist(), banks[b, a].tolist())]
        return out

    def load_port_words(self, xq: np.ndarray | None) -> list[int]:
        """:meth:`load_words` packed into load-port payload integers (:func:`winnow.hw.abi.load_layout`)."""
        words = self.load_words(xq)
        if not words:
            return []
        sel, bank, addr, data = zip(*words)
        return abi.pack(abi.load_layout(self.config), {
            "sel": np.array([s.value for s in sel], dtype=np.int64), "bank": np.array(bank, dtype=np.int64),
            "addr": np.array(addr, dtype=np.int64), "data": np.array(data, dtype=object)}).tolist()

    def output_reads(self) -> list[tuple[int, int]]:
        """(bank, address) of every output, in (k, ho, wo) order: what to read back after a run."""
        cfg = self.config
        m = cfg.m
        K = self.layer.out_channels
        Ho, Wo = self.geometry.out
        tw = self.geometry.tiles[1]
        k, h, w = np.meshgrid(np.arange(K), np.arange(Ho), np.arange(Wo), indexing="ij")
        t = (h // m) * tw + w // m
        bank, addr = abi.out_bank(cfg, t, h, w), abi.out_addr(cfg, k, t)
        return list(zip(bank.ravel().tolist(), addr.ravel().tolist()))

    def unpack_reads(self, values) -> np.ndarray:
        """Words read at :meth:`output_reads` (two's complement) → int64 (K, Ho, Wo)."""
        bits = self.config.datapath.act_bits
        K = self.layer.out_channels
        Ho, Wo = self.geometry.out
        raw = np.asarray(values, dtype=np.int64).reshape(K, Ho, Wo)
        if raw.size and (raw.min() < 0 or raw.max() >= 1 << bits):
            raise DataError(f"output words must be unsigned {bits}-bit values")
        return np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw)


def check_layer(layer: SparseLayer, cfg: AccelConfig) -> ConvGeometry:
    """Reject a layer this array cannot run, naming the limit; return its geometry."""
    dp = cfg.datapath
    lc = layer.config
    if (lc.dims, lc.m, lc.r, lc.alg.points) != (dp.dims, dp.m, dp.r, dp.alg.points):
        raise ConfigError(f"layer {layer.name} is for {lc.dims}-D {lc.alg.name} (points {list(map(str, lc.alg.points))}); "
                          f"the array is built for {dp.dims}-D {dp.alg.name} (points {list(map(str, dp.alg.points))})")
    if lc.to_dict() != dp.to_dict():
        raise ConfigError(f"layer {layer.name} was quantized for datapath {lc.to_dict()['widths']} "
                          f"(act_bits={lc.act_bits}, weight_bits={lc.weight_bits}, c_max={lc.c_max}); the array uses "
                          f"act_bits={dp.act_bits}, weight_bits={dp.weight_bits}, c_max={dp.c_max}")
    check_shape(cfg, layer.name, layer.in_channels, layer.out_channels, layer.size, max(layer.padding))
    return ConvGeometry.of(layer.size, layer.padding, dp.m, dp.r)


def check_shape(cfg: AccelConfig, name: str, C: int, K: int, size, padding: int) -> None:
    """Reject a layer shape beyond the array's limits, naming the limit (before any array of it is built)."""
    H, W = size
    for what, v, lim in (("C", C, cfg.c_block), ("K", K, cfg.k_max), ("H", H, cfg.h_max), ("W", W, cfg.w_max),
                         ("padding", padding, cfg.pad_max)):  # fmt: skip
        if v > lim:
            field = {"C": "c_block" if cfg.c_block < cfg.c_max else "c_max", "K": "k_max", "H": "h_max",
                     "W": "w_max"}.get(what, "pad_max")
            raise ConfigError(f"layer {name} has {what} = {v}, beyond the array's limit {field} = {lim}")


def pack_layer(layer: SparseLayer, cfg: AccelConfig) -> PackedLayer:
    """Pack ``layer`` for ``cfg`` (sparse or dense per ``cfg.mode``)."""
    geom = check_layer(layer, cfg)
    NP, K, C = cfg.positions, layer.out_channels, layer.in_channels
    S, n = cfg.clusters, cfg.n
    if cfg.mode == "dense":
        w = layer.to_dense().reshape(K, C, NP).transpose(2, 0, 1)  # (P, K, C)
        pp, kk, cc = np.meshgrid(np.arange(NP), np.arange(K), np.arange(C), indexing="ij")
        ent = np.stack([pp.ravel(), kk.ravel(), cc.ravel(), w.ravel(), (cc.ravel() == C - 1)], axis=1)
        counts = np.full((NP, K), C, dtype=np.int64)
    else:
        counts = np.diff(layer.row_ptr, axis=1)  # (P, K)
        pk = np.repeat(np.arange(NP * K), counts.ravel())
        last = np.zeros(pk.size, dtype=np.int64)
        ends = (layer.row_ptr[:, 1:] - layer.row_ptr[0, 0]).ravel()[counts.ravel() > 0] - 1
        last[ends] = 1
        ent = np.stack([pk // K, pk % K, layer.col_idx.astype(np.int64), layer.values.astype(np.int64), last], axis=1)
    ent = ent.astype(np.int64).reshape(-1, 5)  # rows (p, k) contiguous, p then k then c ascending
    owner = assign_owners(cfg, counts)
    rows = block_rows(cfg, K)
    row_start = np.concatenate([[0], np.cumsum(counts.ravel())])  # entries of row (p, k) = [start, end)
    streams, segments = [], np.zeros((cfg.pes, len(rows)), dtype=np.int64)
    for s in range(S):
        order = lpt_order(counts[:, s:K:S].sum(axis=1))  # positions by load, as assign_owners placed them
        for i in range(cfg.pes_per_cluster):
            j = s * cfg.pes_per_cluster + i
            mine = [p for p in order if owner[s, p] == i]
            parts = []
            for b, kb in enumerate(rows):
                idx = [np.arange(row_start[p * K + k], row_start[p * K + k + 1])
                       for p in mine for k in range(b * cfg.k_block + s, b * cfg.k_block + kb, S)]
                sel = np.concatenate(idx) if idx else np.zeros(0, np.int64)
                seg = np.concatenate([ent[sel], np.zeros((len(sel), 1), np.int64)], axis=1)
                if len(seg) == 0:  # an end-of-block marker: zero weight, no row write
                    seg = np.array([[0, -1, 0, 0, 0, 0]], dtype=np.int64)
                seg[-1, 5] = 1
                segments[j, b] = len(seg)
                parts.append(seg)
            st = np.concatenate(parts)
            if len(st) > cfg.stream_depth:
                raise ConfigError(f"layer {layer.name}: PE {j} needs {len(st)} stream entries, beyond the array's "
                                  f"limit stream_depth = {cfg.stream_depth}")
            streams.append(st)
    th, tw = geom.tiles
    ph, pw = geom.padding
    regs = {"c": C, "k": K, "h": layer.size[0], "w": layer.size[1], "tiles_w": tw, "tiles": th * tw,
            "groups": -(-(th * tw) // cfg.lanes), "k_blocks": len(rows), "k_last": rows[-1],
            "h0": -ph, "h0_q": (-ph) // n, "h0_r": (-ph) % n, "h0_qc": ((-ph) // n) * cfg.x_cols, "w0": -pw, "w0_q": (-pw) // n, "w0_r": (-pw) % n,
            "relu": int(layer.relu), "winograd_relu": int(layer.winograd_relu)}  # fmt: skip
    regs.update({f"owner{s}_{p}": int(owner[s, p]) for s in range(S) for p in range(NP)})
    if cfg.tiled:
        regs["finish"] = 1  # a whole layer in one pass; winnow.hw.tiled_packer sets it per pass
    quant = np.stack([layer.bias, layer.mult, layer.shift], axis=1).astype(np.int64)
    return PackedLayer(config=cfg, layer=layer, geometry=geom, owner=owner, streams=streams, segments=segments,
                       registers=regs, quant=quant)  # fmt: skip


def sparse_and_dense(layer: SparseLayer, cfg: AccelConfig) -> tuple[PackedLayer, CycleReport, CycleReport]:
    """(the layer packed for ``cfg``, its cycles, its dense-Winograd cycles on the same array).

    Dense mode streams every weight, zeros included: every row holds C entries, so its
    segments follow from :func:`winnow.hw.balance.segment_lengths` without packing the dense
    layer (``tests/test_hw_cycle_model.py`` checks this equals packing it).
    """
    packed = pack_layer(layer, cfg)
    C, K = layer.in_channels, layer.out_channels
    dense = cycles(cfg, in_channels=C, out_channels=K, tiles=packed.tiles,
                   segments=segment_lengths(cfg, np.full((cfg.positions, K), C, dtype=np.int64)), nnz=layer.nnz)
    return packed, packed_cycles(packed), dense
