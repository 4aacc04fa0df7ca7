"""The streaming array's ABI: its memory-port parameters, the pass descriptor and the status bits.

The streaming array (:class:`winnow.hw.stream_array.StreamArray`) runs a tiled layer
(:mod:`winnow.hw.tiled_packer`) pass after pass out of external memory, through one
AXI4 master. Everything the host, the memory-image builder
(:mod:`winnow.hw.memory_image`), the RTL and the cycle model
(:mod:`winnow.hw.stream_timing`) must agree on is here:

* :class:`StreamConfig`: the AXI4 port (data and address widths, bursts, outstanding
  bursts, watchdog) and the controller's two FIFOs (input rows, output words);
* :func:`pass_layout`: the pass descriptor, one per pass, :func:`desc_words` bus words
  each, contiguous from the layer's descriptor address. Per pass: where its load words
  are (registers, quantization words, stream segments: load-port words as in
  :func:`winnow.hw.abi.load_layout`, one per bus word), where its input window starts
  in the planar, pre-padded input feature map and the map's strides, and where its
  outputs go (tile-major: channel, tile, then the m×m outputs of the tile row by row,
  one byte each, zero-padded to whole words) when the pass finishes its job;
* :data:`FAULTS`: the status bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from amaranth import unsigned
from amaranth.lib import data

from winnow.hw import abi
from winnow.hw.axi_master import check_params
from winnow.hw.config import AccelConfig, ubits
from winnow.model.errors import ConfigError

#: The most load words one pass may have (the descriptor's ``loads`` field, one read command).
MAX_LOADS = 65535
#: The status bits of ``fault`` (LSB first).
FAULTS = ("read_error", "write_error", "timeout", "bad_cmd", "bad_desc")


@dataclass(frozen=True)
class StreamConfig:
    """The streaming array's memory port and FIFOs.

    Parameters
    ----------
    data_bits : int
        AXI4 data width; a load-port word (:func:`winnow.hw.abi.load_layout`, 60–80 bits for
        usual arrays) must fit one word. On the ULX3S LiteDRAM's native port is 16 bits (the
        SDRAM's width); its AXI port converts a 128-bit word into 8 beats (docs/dram.md).
    addr_bits : int
        AXI4 address width.
    max_burst, max_outstanding : int
        Longest burst (beats) and bursts in flight (:class:`winnow.hw.axi_master.AxiReadEngine`).
    timeout : int
        Watchdog: cycles without progress while waiting on the memory before the run stops.
    row_fifo : int
        Input-row FIFO, in words: the controller requests a window row only when the FIFO has
        room for all of it, so the read data path is always ready (at least two rows).
    out_chunk : int
        Output words per write command; the output FIFO holds two chunks.
    """

    data_bits: int = 128
    addr_bits: int = 32
    max_burst: int = 64
    max_outstanding: int = 4
    timeout: int = 4096
    row_fifo: int = 16
    out_chunk: int = 32

    def __post_init__(self):
        check_params(self.addr_bits, self.data_bits, self.max_burst, MAX_LOADS, self.max_outstanding, self.timeout)
        if self.data_bits < 16:
            raise ConfigError(f"the streaming array needs data_bits ≥ 16, got {self.data_bits}")
        if self.out_chunk < 1 or self.out_chunk > MAX_LOADS:
            raise ConfigError(f"out_chunk must be 1 … {MAX_LOADS} words, got {self.out_chunk}")

    @property
    def word_bytes(self) -> int:
        return self.data_bits // 8

    def row_beats_max(self, cfg: AccelConfig) -> int:
        """Bus words of the longest window row (w_max pixels starting at any byte of a word)."""
        nb = self.word_bytes
        return -(-(nb - 1 + cfg.w_max) // nb)

    def to_dict(self) -> dict:
        return asdict(self)


def check_stream(cfg: AccelConfig, scfg: StreamConfig) -> None:
    """Refuse an array the streaming top cannot drive (:class:`ConfigError` naming the rule)."""
    if not cfg.tiled:
        raise ConfigError("the streaming array needs a tiled-mode array (tiled = true)")
    if cfg.datapath.act_bits > 8:
        raise ConfigError(f"the streaming array stores one byte per activation; act_bits = {cfg.datapath.act_bits}")
    lw = abi.load_layout(cfg).size
    if lw > scfg.data_bits:
        raise ConfigError(f"a load-port word has {lw} bits, more than the {scfg.data_bits}-bit memory word: "
                          f"use data_bits = {1 << (lw - 1).bit_length()}")
    if scfg.row_fifo < 2 * scfg.row_beats_max(cfg):
        raise ConfigError(f"row_fifo = {scfg.row_fifo} words holds fewer than two window rows "
                          f"({scfg.row_beats_max(cfg)} words each for w_max = {cfg.w_max})")


def pass_layout(cfg: AccelConfig, scfg: StreamConfig) -> data.StructLayout:
    """One pass descriptor, LSB first (byte addresses and strides are multiples of the word's bytes)."""
    a = scfg.addr_bits
    m2 = cfg.m * cfg.m
    out_words = -(-cfg.k_max * cfg.tiles_max * m2 // scfg.word_bytes)
    return data.StructLayout({
        "loads_addr": unsigned(a), "loads": unsigned(ubits(MAX_LOADS)),
        "x_addr": unsigned(a), "x_skip": unsigned(ubits(scfg.word_bytes - 1)),
        "x_beats": unsigned(ubits(scfg.row_beats_max(cfg))),
        "x_c": unsigned(ubits(cfg.c_block)), "x_rows": unsigned(ubits(cfg.h_max)), "x_cols": unsigned(ubits(cfg.w_max)),
        "x_row_stride": unsigned(a), "x_chan_stride": unsigned(a),
        "out_addr": unsigned(a), "out_words": unsigned(ubits(out_words)),
        "out_k": unsigned(ubits(cfg.k_max)), "out_tiles": unsigned(ubits(cfg.tiles_max)),
        "finish": unsigned(1),
    })  # fmt: skip


PASS_DOC = {
    "loads_addr": "byte address of the pass's load words (one load-port word per bus word)",
    "loads": "number of load words (registers, quantization words, stream segments)",
    "x_addr": "byte address of the bus word holding the window's first pixel (channel c0, row h0)",
    "x_skip": "bytes of that word before the first pixel (w0 mod word bytes)",
    "x_beats": "bus words per window row: ⌈(x_skip + x_cols)/word bytes⌉",
    "x_c": "channels of the window (the pass's C block)", "x_rows": "window rows", "x_cols": "window columns",
    "x_row_stride": "bytes between rows of the input map", "x_chan_stride": "bytes between channels of the input map",
    "out_addr": "byte address of the pass's outputs (finishing passes)",
    "out_words": "output words: ⌈out_k·out_tiles·m²/word bytes⌉",
    "out_k": "output channels of the pass", "out_tiles": "output tiles of the pass (its window's tiles)",
    "finish": "the job's last pass: write the outputs back",
}  # fmt: skip


def desc_words(cfg: AccelConfig, scfg: StreamConfig) -> int:
    """Bus words of one pass descriptor."""
    return -(-pass_layout(cfg, scfg).size // scfg.data_bits)


def encode_desc(cfg: AccelConfig, scfg: StreamConfig, fields: dict) -> bytes:
    """A pass descriptor's bytes (:func:`desc_words` little-endian words) from its fields."""
    layout = pass_layout(cfg, scfg)
    if set(fields) != {name for name, _ in layout}:
        raise ConfigError(f"a pass descriptor has the fields {[n for n, _ in layout]}; got {sorted(fields)}")
    word = 0
    for name, f in layout:
        v = int(fields[name])
        if not 0 <= v < 1 << f.width:
            raise ConfigError(f"descriptor field {name} = {v} does not fit {f.width} bits")
        word |= v << f.offset
    return word.to_bytes(desc_words(cfg, scfg) * scfg.word_bytes, "little")


def decode_desc(cfg: AccelConfig, scfg: StreamConfig, raw: bytes) -> dict:
    """The fields of a pass descriptor's bytes (the inverse of :func:`encode_desc`)."""
    word = int.from_bytes(raw[:desc_words(cfg, scfg) * scfg.word_bytes], "little")
    return {name: (word >> f.offset) & ((1 << f.width) - 1) for name, f in pass_layout(cfg, scfg)}


def markdown_table(cfg: AccelConfig | None = None, scfg: StreamConfig | None = None) -> str:
    """The pass descriptor's table of docs/hardware.md (between stream:begin and stream:end), widths for
    the default tiled array (``AccelConfig(tiled=True, pad_max=0)``) and ``StreamConfig()``."""
    cfg = AccelConfig(tiled=True, pad_max=0) if cfg is None else cfg
    scfg = StreamConfig() if scfg is None else scfg
    layout = pass_layout(cfg, scfg)
    out = [f"Pass descriptor (`pass_layout`, {layout.size} bits in {desc_words(cfg, scfg)} words of "
           f"{scfg.data_bits} bits, LSB first; widths for `AccelConfig(tiled=True, pad_max=0)` and "
           "`StreamConfig()`):", "", "| field | offset | bits | meaning |", "|---|---|---|---|"]
    out += [f"| `{name}` | {f.offset} | {f.width} | {PASS_DOC[name]} |"
            for name, f in sorted(layout, key=lambda kv: kv[1].offset)]
    out += ["", "Status bits (`fault`, LSB first): " + ", ".join(f"{i} `{n}`" for i, n in enumerate(FAULTS)) + "."]
    return "\n".join(out) + "\n"
