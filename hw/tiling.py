"""Tiling of a real-size layer for the streaming array: patches × output-channel blocks × input-channel blocks.

The streaming array (docs/hardware.md, "Real-size layers") keeps feature maps and
weights in external memory; its on-chip buffers are sized by :class:`TiledBuffers`,
never by the layer. A layer is cut into

* **patches**: rectangles of at most ``patch_h × patch_w`` output tiles (the last row
  and column of patches may be smaller); a patch's input *window* is its
  (patch_h·m + r − 1) × (patch_w·m + r − 1) pixels, halo included, of the padded input;
* **blocks** b of ``k_block`` output channels (:func:`winnow.hw.balance.block_rows`);
* **C blocks** of ``c_block`` input channels.

A *job* is one (patch, block) pair, in the order patch outer, block inner. A job runs
one *pass* per C block: the pass's input window (``c_block`` channels) and the PEs'
weight segments for (b, C block) are loaded into the idle half of their double
buffers while the previous pass computes; the pass transforms each tile group of the
patch and the PEs add its products to the patch's accumulators, which hold the partial
sums of every tile of the patch across the C blocks. Integer sums are associative, so
the result is the layer's exact integer result (``winnow.sim.tiled_reference`` checks
it against the reference). After the last pass, the output unit requantizes and the
patch's K_b output rows are written back.

What moves over the memory port (:class:`Traffic`):

* input windows: every job reads its windows once per C block, so the input is read
  once per output-channel block (B times), halo included; with one C block
  (``c_block ≥ C``) the window stays on chip across the patch's blocks and is read once;
* weight segments: every job reads its block's segments, so the weights are read once
  per patch; with one block and one C block they stay on chip and are read once;
* quantization words once per job, outputs once.

The roofline floor of a layer is max(⌈T·nnz/(P·L)⌉, ⌈bytes/bandwidth⌉)
(:func:`roofline`): a layer is memory-bound when the second term is the larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from winnow.model.errors import ConfigError
from winnow.model.algebra.tiling import ConvGeometry

from winnow.hw import abi
from winnow.hw.balance import block_rows
from winnow.hw.config import AccelConfig


def _positive(name: str, v, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
        raise ConfigError(f"{name} must be an integer in [1, {hi}]; got {v!r}")
    return v


@dataclass(frozen=True)
class TiledBuffers:
    """On-chip buffers of the streaming array (one half of each double buffer).

    Parameters
    ----------
    c_block : int
        Input channels per C block: the V buffer and the input window hold this many.
        Larger: fewer passes (less fill and drain), more V-buffer and input memory.
    patch_h, patch_w : int
        Largest patch, in output tiles. The accumulators hold patch_h·patch_w tiles of
        k_block rows; larger patches read the weights fewer times (once per patch) at the
        cost of accumulator, input-window and output memory.
    stream_depth : int
        Entries one PE's weight-segment buffer half holds (one (block, C block) segment).
    """

    c_block: int = 32
    patch_h: int = 8
    patch_w: int = 8
    stream_depth: int = 4096

    def __post_init__(self):
        _positive("c_block", self.c_block, 4096)
        _positive("patch_h", self.patch_h, 1024)
        _positive("patch_w", self.patch_w, 1024)
        _positive("stream_depth", self.stream_depth, 1 << 24)

    @property
    def patch_tiles(self) -> int:
        return self.patch_h * self.patch_w

    def window(self, cfg: AccelConfig) -> tuple[int, int]:
        """Rows and columns of the largest input window (halo included)."""
        return self.patch_h * cfg.m + cfg.r - 1, self.patch_w * cfg.m + cfg.r - 1

    def memories(self, cfg: AccelConfig) -> dict[str, dict[str, int]]:
        """Bits of each on-chip buffer (both halves of the double buffers)."""
        w = cfg.widths
        dp = cfg.datapath
        rows, cols = self.window(cfg)
        acc_tiles = -(-self.patch_tiles // cfg.lanes) * cfg.lanes
        mems = {
            "input_window": (2, self.c_block * rows * cols, dp.act_bits),
            "v_buffer": (2 * cfg.clusters * cfg.positions, self.c_block, cfg.lanes * w.v_bits),
            "streams": (2 * cfg.pes, self.stream_depth, abi.entry_layout(cfg).size),
            "accumulators": (cfg.clusters * cfg.positions, cfg.acc_depth * acc_tiles, w.acc_bits),
            "quant": (2, cfg.k_block, abi.quant_layout(dp).size),
            "output": (2, cfg.k_block * self.patch_h * cfg.m * self.patch_w * cfg.m, dp.act_bits),
        }
        return {k: {"count": c, "depth": d, "width": wd, "bits": c * d * wd} for k, (c, d, wd) in mems.items()}

    def memory_bits(self, cfg: AccelConfig) -> int:
        return sum(v["bits"] for v in self.memories(cfg).values())


@dataclass(frozen=True)
class MemoryPort:
    """The external memory as the cycle model sees it.

    Parameters
    ----------
    bus_bytes : int
        Width of the AXI data bus in bytes (a power of two); transfers move whole beats.
    bytes_per_cycle : float
        Sustained bandwidth at the array's clock (≤ ``bus_bytes``).
    latency : int
        Cycles from a request to its first beat.
    """

    bus_bytes: int = 8
    bytes_per_cycle: float = 8.0
    latency: int = 0

    def __post_init__(self):
        if isinstance(self.bus_bytes, bool) or not isinstance(self.bus_bytes, int) or self.bus_bytes < 1 \
                or self.bus_bytes & (self.bus_bytes - 1) or self.bus_bytes > 128:
            raise ConfigError(f"bus_bytes must be a power of two in [1, 128]; got {self.bus_bytes!r}")
        bw = self.bytes_per_cycle
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not math.isfinite(bw) \
                or not 0 < bw <= self.bus_bytes:
            raise ConfigError(f"bytes_per_cycle must be in (0, bus_bytes = {self.bus_bytes}]; got {bw!r}")
        if isinstance(self.latency, bool) or not isinstance(self.latency, int) or not 0 <= self.latency <= 10**6:
            raise ConfigError(f"latency must be an integer in [0, 10^6] cycles; got {self.latency!r}")


def run_beats(start: int, length: int, bus_bytes: int) -> int:
    """Bus beats of a run of ``length`` bytes starting at byte address ``start``."""
    if length <= 0:
        return 0
    return (start % bus_bytes + length + bus_bytes - 1) // bus_bytes


def row_pitch(width: int, bus_bytes: int) -> int:
    """Bytes from one row of a feature map to the next: rows start on a bus word."""
    return -(-width // bus_bytes) * bus_bytes


@dataclass(frozen=True)
class Patch:
    """Output tiles [ty0, ty1) × [tx0, tx1) of a layer, and its input window in padded coordinates."""

    index: int
    ty0: int
    ty1: int
    tx0: int
    tx1: int

    @property
    def tiles(self) -> int:
        return (self.ty1 - self.ty0) * (self.tx1 - self.tx0)

    def window(self, geom: ConvGeometry) -> tuple[int, int, int, int]:
        """Rows [h0, h1) and columns [w0, w1) of the padded input the patch reads (clipped to it)."""
        m, r = geom.m, geom.r
        (hp, wp) = (s + 2 * p for s, p in zip(geom.size, geom.padding))
        return (self.ty0 * m, min(self.ty1 * m + r - 1, hp), self.tx0 * m, min(self.tx1 * m + r - 1, wp))

    def out_rows(self, geom: ConvGeometry) -> tuple[int, int, int, int]:
        """Output rows [h0, h1) and columns [w0, w1) the patch produces."""
        m = geom.m
        ho, wo = geom.out
        return (self.ty0 * m, min(self.ty1 * m, ho), self.tx0 * m, min(self.tx1 * m, wo))


@dataclass(frozen=True)
class Traffic:
    """Bytes over the memory port (whole bus beats) for one layer, by kind."""

    input: int
    weights: int
    quant: int
    output: int

    @property
    def read(self) -> int:
        return self.input + self.weights + self.quant

    @property
    def total(self) -> int:
        return self.read + self.output

    def to_dict(self) -> dict:
        return {"input": self.input, "weights": self.weights, "quant": self.quant, "output": self.output,
                "read": self.read, "total": self.total}


@dataclass(frozen=True)
class LayerPlan:
    """How one layer runs on the streaming array (module docstring)."""

    config: AccelConfig
    buffers: TiledBuffers
    geometry: ConvGeometry
    in_channels: int
    out_channels: int
    patches: tuple
    block_rows: tuple
    c_blocks: tuple

    @property
    def jobs(self) -> list[tuple[Patch, int]]:
        """(patch, block) in run order: patch outer, block inner."""
        return [(p, b) for p in self.patches for b in range(len(self.block_rows))]

    @property
    def passes(self) -> int:
        return len(self.patches) * len(self.block_rows) * len(self.c_blocks)

    @property
    def input_resident(self) -> bool:
        """One C block: a patch's window is loaded once and serves all of its blocks."""
        return len(self.c_blocks) == 1

    @property
    def weights_resident(self) -> bool:
        """One block and one C block: the segments are loaded once and serve every patch."""
        return len(self.block_rows) == 1 and len(self.c_blocks) == 1

    def traffic(self, port: MemoryPort, entries: int) -> Traffic:
        """Bytes moved (whole beats) for a layer whose streams hold ``entries`` entries in all (sparse or dense).

        Feature-map rows start on a bus word (:func:`row_pitch`), so a window row's beats
        depend only on its first column.
        """
        bb = port.bus_bytes
        geom = self.geometry
        per_block = 1 if self.input_resident else len(self.block_rows)
        inp = 0
        for p in self.patches:
            h0, h1, w0, w1 = p.window(geom)
            inp += self.in_channels * (h1 - h0) * run_beats(w0, w1 - w0, bb) * bb
        inp *= per_block
        entry_bytes = -(-abi.entry_layout(self.config).size // 8)
        weight_copies = 1 if self.weights_resident else len(self.patches)
        weights = weight_copies * run_beats(0, entries * entry_bytes, bb) * bb
        qbytes = -(-abi.quant_layout(self.config.datapath).size // 8)
        quant = len(self.patches) * sum(run_beats(0, kb * qbytes, bb) * bb for kb in self.block_rows)
        out = 0
        for p in self.patches:
            h0, h1, w0, w1 = p.out_rows(geom)
            out += self.out_channels * (h1 - h0) * run_beats(w0, w1 - w0, bb) * bb
        return Traffic(input=inp, weights=weights, quant=quant, output=out)

    def to_dict(self) -> dict:
        return {"patches": len(self.patches), "blocks": len(self.block_rows), "c_blocks": len(self.c_blocks),
                "jobs": len(self.jobs), "passes": self.passes, "input_resident": self.input_resident,
                "weights_resident": self.weights_resident,
                "patch": [self.patches[0].ty1 - self.patches[0].ty0, self.patches[0].tx1 - self.patches[0].tx0]}


#: Most passes one layer's plan may have (a bound on the planner's lists, far above any network's layer).
MAX_PASSES = 1 << 22


def plan_layer(cfg: AccelConfig, buffers: TiledBuffers, *, in_channels: int, out_channels: int, size,
               padding) -> LayerPlan:
    """Cut a layer of C = ``in_channels``, K = ``out_channels`` on input ``size`` (H, W) into patches and blocks."""
    dp = cfg.datapath
    C, K = in_channels, out_channels
    if C > dp.c_max:
        raise ConfigError(f"C = {C} exceeds the datapath's c_max = {dp.c_max} (it sizes the accumulators' width, "
                          f"which must hold the sum over every input channel)")
    if K < 1 or C < 1:
        raise ConfigError(f"a layer needs C, K >= 1; got C = {C}, K = {K}")
    geom = ConvGeometry.of(size, padding, dp.m, dp.r)
    th, tw = geom.tiles
    ph, pw = min(buffers.patch_h, th), min(buffers.patch_w, tw)
    n_patches = -(-th // ph) * -(-tw // pw)
    n_passes = n_patches * -(-K // cfg.k_block) * -(-C // buffers.c_block)
    if n_passes > MAX_PASSES:  # counted before any list is built
        raise ConfigError(f"a {C}→{K} layer on {'×'.join(map(str, geom.size))} would take {n_passes:,} passes "
                          f"({n_patches:,} patches) on these buffers, more than {MAX_PASSES:,}: "
                          f"give the array larger patches, k_block or c_block")
    patches = []
    for ty in range(0, th, ph):
        for tx in range(0, tw, pw):
            patches.append(Patch(len(patches), ty, min(ty + ph, th), tx, min(tx + pw, tw)))
    cb = buffers.c_block
    c_blocks = tuple(min(cb, C - i) for i in range(0, C, cb))
    return LayerPlan(config=cfg, buffers=buffers, geometry=geom, in_channels=C, out_channels=K,
                     patches=tuple(patches), block_rows=tuple(block_rows(cfg, K)), c_blocks=c_blocks)


@dataclass(frozen=True)
class Roofline:
    """The floor of one layer on the streaming array at one bandwidth."""

    compute: int
    memory: int
    traffic: Traffic

    @property
    def floor(self) -> int:
        return max(self.compute, self.memory)

    @property
    def bound(self) -> str:
        """"memory" when moving the bytes takes longer than the multiplies, else "compute"."""
        return "memory" if self.memory > self.compute else "compute"

    def to_dict(self) -> dict:
        return {"compute": self.compute, "memory": self.memory, "floor": self.floor, "bound": self.bound,
                "traffic": self.traffic.to_dict()}


def roofline(plan: LayerPlan, port: MemoryPort, *, nnz: int, entries: int) -> Roofline:
    """max(⌈T·nnz/(P·L)⌉, ⌈bytes/bandwidth⌉) for a layer with ``nnz`` multiplies per tile and ``entries`` stream entries."""
    traffic = plan.traffic(port, entries)
    compute = math.ceil(plan.geometry.num_tiles * nnz / plan.config.multipliers)
    memory = math.ceil(traffic.total / port.bytes_per_cycle)
    return Roofline(compute=compute, memory=memory, traffic=traffic)
