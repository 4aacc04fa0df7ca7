"""The hardware ABI: everything two sides of the array must agree on, in one module.

The RTL (:mod:`winnow.hw.array` and its units), the packer (:mod:`winnow.hw.packer`), the
cycle model (:mod:`winnow.hw.cycle_model`), the host driver (:mod:`winnow.boards.host`) and
docs/hardware.md all read these definitions:

* the load-port word (:func:`load_layout`) and its memory selects (:class:`Sel`);
* the run-time register map (:func:`register_map`, :func:`register_layout`);
* the PE stream entry (:func:`entry_layout`) and the per-output-channel quantization
  word (:func:`quant_layout`), with :func:`pack` to build words with NumPy;
* the address functions of the input memory (:func:`x_bank`, :func:`x_addr`) and of the
  output read-back (:func:`out_bank`, :func:`out_addr`);
* the unit latencies the cycle model adds (:data:`ITU_LATENCY`, :data:`PE_LATENCY`,
  :func:`otu_latency`, …).

:func:`markdown_tables` renders the tables of docs/hardware.md from these definitions
(``tests/test_hw_abi.py`` checks that the document holds exactly the rendered text).
"""

from __future__ import annotations

import numpy as np
from amaranth import Shape, signed, unsigned
from amaranth.lib import data, enum

from winnow.model.integer.datapath import DatapathConfig

from winnow.hw.config import AccelConfig, ubits


# ---------------------------------------------------------------------------- load port
class Sel(enum.Enum, shape=2):
    """Memory select of a load-port word: which memory the word writes."""

    REG = 0     #: a run-time register, address = its index in :func:`register_map`
    X = 1       #: the input memory: bank :func:`x_bank`, address :func:`x_addr`
    STREAM = 2  #: PE ``bank``'s stream memory, address = entry index
    QUANT = 3   #: the quantization memory, address = output channel k


#: What each select writes: (bank, address, data), for the documentation table.
SEL_DOC = {
    Sel.REG: ("0", "register index", "the register value (two's complement, its width)"),
    Sel.X: ("(h mod n)·n + w mod n", "(c·x_rows + ⌊h/n⌋)·x_cols + ⌊w/n⌋", "pixel (c, h, w), `act_bits`"),
    Sel.STREAM: ("PE j", "entry index", "a stream entry"),
    Sel.QUANT: ("0", "output channel k", "a quantization word"),
}


def register_map(cfg: AccelConfig) -> list[tuple[str, int, bool]]:
    """The per-layer run-time registers, in load order: (name, width, signed).

    Written through the load port (select :attr:`Sel.REG`, address = index in this
    list) by the packer's image; the sequencer and the units read them during a run.
    ``owner{s}_{p}`` is the PE (index within cluster s) that walks position p's rows
    of cluster s.
    """
    th, tw = cfg.tiles_h_max, cfg.tiles_w_max
    coord = ubits(max(cfg.h_max, cfg.w_max) + 2 * cfg.n + cfg.pad_max) + 1  # signed tile origins
    regs = [
        ("c", ubits(cfg.c_block), False),
        ("k", ubits(cfg.k_max), False),
        ("h", ubits(cfg.h_max), False),
        ("w", ubits(cfg.w_max), False),
        ("tiles_w", ubits(tw), False),
        ("tiles", ubits(th * tw), False),
        ("groups", ubits(cfg.groups_max), False),
        ("k_blocks", ubits(cfg.k_blocks_max), False),
        ("k_last", ubits(cfg.k_block), False),
        ("h0", coord, True),
        ("h0_q", coord, True),
        ("h0_r", ubits(cfg.n - 1), False),
        ("h0_qc", ubits(cfg.x_cols * (cfg.x_rows + 1)) + 1, True),
        ("w0", coord, True),
        ("w0_q", coord, True),
        ("w0_r", ubits(cfg.n - 1), False),
        ("relu", 1, False),
        ("winograd_relu", 1, False),
    ]
    regs += [(f"owner{s}_{p}", ubits(cfg.pes_per_cluster - 1), False)
             for s in range(cfg.clusters) for p in range(cfg.positions)]
    if cfg.tiled:
        regs.append(("finish", 1, False))
    return regs


#: Meaning of each register (``owner`` stands for every ``owner{s}_{p}``).
REGISTER_DOC = {
    "c": "input channels C", "k": "output channels K", "h": "input height H", "w": "input width W",
    "tiles_w": "output tiles per row", "tiles": "output tiles T", "groups": "tile groups G = ⌈T/L⌉",
    "k_blocks": "output-channel blocks B = ⌈K/k_block⌉", "k_last": "rows of the last block",
    "h0": "first tile row origin −pad_h", "h0_q": "⌊h0/n⌋", "h0_r": "h0 mod n",
    "h0_qc": "⌊h0/n⌋·x_cols: the first tile row's bank address", "w0": "first tile column origin −pad_w",
    "w0_q": "⌊w0/n⌋", "w0_r": "w0 mod n", "relu": "ReLU after requantization",
    "winograd_relu": "ReLU on V' (Winograd domain)",
    "owner": "owner{s}_{p}: the PE (within cluster s) that walks position p's rows of cluster s",
    "finish": "tiled mode only: the pass's last C block (the output unit runs, reading and clearing the sums)",
}  # fmt: skip


def register_layout(cfg: AccelConfig) -> data.StructLayout:
    """Every per-layer register as a field (signed where the map says so); units take the whole struct."""
    return data.StructLayout({name: signed(bits) if sgn else unsigned(bits) for name, bits, sgn in register_map(cfg)})


def load_layout(cfg: AccelConfig) -> data.StructLayout:
    """Payload of the load port, LSB first: memory select, bank, address, data word.

    ``bank`` covers the n² input banks and the P stream memories, ``addr`` the deepest
    memory (or the register count), ``data`` the widest word any select writes.
    """
    regs = register_map(cfg)
    depth = max(cfg.x_depth, cfg.stream_depth, cfg.k_max, len(regs))
    width = max(cfg.datapath.act_bits, entry_layout(cfg).size, quant_layout(cfg.datapath).size,
                max(b for _, b, _ in regs))
    return data.StructLayout({"sel": Sel, "bank": ubits(max(cfg.n * cfg.n, cfg.pes) - 1), "addr": ubits(depth - 1),
                              "data": width})  # fmt: skip


LOAD_DOC = {"sel": "memory select (below)", "bank": "input bank or PE", "addr": "address in the memory",
            "data": "the word"}


# ---------------------------------------------------------------------------- memory words
def entry_layout(cfg: AccelConfig) -> data.StructLayout:
    """One PE stream entry, LSB first.

    Position p, row k within the block and cluster (⌊(k mod k_block)/S⌋), input
    channel c, weight value, ``last`` (final entry of a (p, k) row: write the row) and
    ``eob`` (final entry of the PE's share of a k block).
    """
    return data.StructLayout({"p": ubits(cfg.positions - 1), "k": ubits(cfg.acc_depth - 1),
                              "c": ubits(cfg.c_block - 1), "value": signed(cfg.datapath.weight_bits),
                              "last": 1, "eob": 1})  # fmt: skip


ENTRY_DOC = {"p": "Winograd position", "k": "accumulator row ⌊(k mod k_block)/S⌋", "c": "input channel",
             "value": "Winograd-domain weight (two's complement)", "last": "final entry of a (p, k) row: write it",
             "eob": "final entry of the PE's segment of a block"}  # fmt: skip


def shift_bits(datapath: DatapathConfig) -> int:
    """Width of the requantization right shift (0 … requant_bits − 1)."""
    return ubits(datapath.widths.requant_bits - 1)


def quant_layout(datapath: DatapathConfig) -> data.StructLayout:
    """One per-output-channel quantization word, LSB first: bias (signed), mult, shift."""
    return data.StructLayout({"bias": signed(datapath.bias_bits), "mult": unsigned(datapath.mult_bits),
                              "shift": unsigned(shift_bits(datapath))})


QUANT_DOC = {"bias": "bias (two's complement, `bias_bits`)", "mult": "requantization multiplier",
             "shift": "requantization right shift"}


def field_widths(layout: data.StructLayout) -> dict[str, int]:
    """Field name → width, in offset order (the JSON form of a layout in params.json)."""
    return {name: layout[name].width for name, _ in sorted(layout, key=lambda kv: kv[1].offset)}


def pack(layout: data.StructLayout, values: dict) -> np.ndarray:
    """Integer fields → packed words (Python ints in an object array), two's complement within each field.

    ``values`` maps every field of ``layout`` to an integer array (broadcast together);
    the offsets and widths are the layout's, so the words equal what the RTL's views read.
    """
    if set(values) != {name for name, _ in layout}:
        raise ValueError(f"pack needs the fields {[n for n, _ in layout]}; got {sorted(values)}")
    shape = np.broadcast(*(np.asarray(v) for v in values.values())).shape
    if layout.size <= 63:  # one int64 holds the word: stay vectorised
        word = np.zeros(shape, dtype=np.int64)
        for name, f in layout:
            word |= (np.asarray(values[name], dtype=np.int64) & ((1 << f.width) - 1)) << f.offset
        return word.astype(object)
    word = np.zeros(shape, dtype=object)
    for name, f in layout:  # Python integers: fields up to 64 bits, words of any width
        v = np.asarray(values[name]).astype(object) & ((1 << f.width) - 1)
        word = word + (v << f.offset)
    return word


# ---------------------------------------------------------------------------- addresses
def x_bank(cfg: AccelConfig, h, w):
    """Input bank of pixel (h, w): (h mod n)·n + w mod n (any n×n window touches each bank once)."""
    n = cfg.n
    return (h % n) * n + (w % n)


def x_addr(cfg: AccelConfig, c, h, w):
    """Address of pixel (c, h, w) in its input bank: (c·x_rows + ⌊h/n⌋)·x_cols + ⌊w/n⌋."""
    n = cfg.n
    return (c * cfg.x_rows + h // n) * cfg.x_cols + w // n


def out_bank(cfg: AccelConfig, t, ho, wo):
    """Output bank of output (ho, wo) of tile t: (t mod otu_lanes)·m² + (ho mod m)·m + wo mod m."""
    m = cfg.m
    return (t % cfg.otu_lanes) * m * m + (ho % m) * m + (wo % m)


def out_addr(cfg: AccelConfig, k, t):
    """Address of channel k's outputs of tile t in their bank: k·out_tiles + ⌊t/otu_lanes⌋."""
    return k * cfg.out_tiles + t // cfg.otu_lanes


# ---------------------------------------------------------------------------- latencies
#: Input unit cycles beyond its tiles: X read, rotation register, two transform stages.
ITU_LATENCY = 4
#: PE cycles beyond its segment's entries: stream read, V' address, V' word, product, sum.
PE_LATENCY = 5


def pe_latency(cfg: AccelConfig) -> int:
    """A PE's cycles beyond its segment's entries: :data:`PE_LATENCY`, plus one in tiled mode
    (the accumulators add the row sum to the stored partial sum: read, then write)."""
    return PE_LATENCY + (1 if cfg.tiled else 0)


def otu_core_latency(m: int, requant: int | None = None) -> int:
    """Stages of the parallel output-transform core: 4, or 5 with R < m² (the selected sums are registered)."""
    return 4 if requant is None or requant == m * m else 5


def serial_otu_tail(m: int, requant: int | None = None) -> int:
    """Cycles of the serial output-transform core after a tile's last position, up to its last output: 4 + Q."""
    return 4 + (1 if requant is None else m * m // requant)


def itu_tile_cycles(cfg: AccelConfig) -> int:
    """Cycles the input unit spends on one tile: 1, or n² with serial memories (a pixel per cycle)."""
    return cfg.positions if cfg.serial else 1


def otu_item_cycles(cfg: AccelConfig) -> int:
    """Cycles the output unit spends on one lane slice of a row: Q, or n² with serial accumulators."""
    return cfg.positions if cfg.serial else cfg.requant_cycles


def itu_latency(cfg: AccelConfig) -> int:
    """The input unit's cycles beyond its tiles: :data:`ITU_LATENCY`, plus n² serial (V' written a position a cycle)."""
    return ITU_LATENCY + (cfg.positions if cfg.serial else 0)


def otu_latency(cfg: AccelConfig) -> int:
    """The output unit's cycles beyond its items: accumulator read, input register and the core
    (6, or 7 with R < m²; serial: 6 + Q, the last tile's Q requantizer cycles)."""
    if cfg.serial:
        return 2 + serial_otu_tail(cfg.m, cfg.requant)
    return 2 + otu_core_latency(cfg.m, cfg.requant)


# ---------------------------------------------------------------------------- documentation
def _table(head, rows) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(str, r)) + " |"
                                                                          for r in rows]


def _layout_rows(layout: data.StructLayout, doc: dict) -> list:
    return [(f"`{name}`", f.offset, f.width, "signed" if Shape.cast(f.shape).signed else "", doc[name])
            for name, f in sorted(layout, key=lambda kv: kv[1].offset)]


def markdown_tables(cfg: AccelConfig | None = None) -> str:
    """The ABI tables of docs/hardware.md, widths for ``cfg`` (default: ``AccelConfig()``)."""
    cfg = AccelConfig() if cfg is None else cfg
    dp = cfg.datapath
    head = ("field", "offset", "bits", "type", "meaning")
    out = [f"Widths for the default `AccelConfig()` (F({dp.m},{dp.r}), P = {cfg.pes}, L = {cfg.lanes}, "
           f"c_max = {cfg.c_max}, k_max = {cfg.k_max}, h_max = {cfg.h_max}, w_max = {cfg.w_max}); they follow "
           f"the configuration (`params.json` lists them for every generated array).", "",
           f"Load-port word (`load_layout`, {load_layout(cfg).size} bits, LSB first):", ""]
    ll = load_layout(cfg)
    out += _table(head, [(f"`{n}`", f.offset, f.width, "enum `Sel`" if n == "sel" else "", LOAD_DOC[n])
                         for n, f in sorted(ll, key=lambda kv: kv[1].offset)])
    out += ["", "Memory selects (`Sel`):", ""]
    out += _table(("code", "select", "bank", "address", "data"),
                  [(s.value, f"`{s.name}`", *SEL_DOC[s]) for s in Sel])
    el = entry_layout(cfg)
    out += ["", f"PE stream entry (`entry_layout`, {el.size} bits):", ""]
    out += _table(head, _layout_rows(el, ENTRY_DOC))
    ql = quant_layout(dp)
    out += ["", f"Quantization word (`quant_layout`, {ql.size} bits):", ""]
    out += _table(head, _layout_rows(ql, QUANT_DOC))
    regs = register_map(cfg)
    rows = [(i, f"`{name}`", bits, "signed" if sgn else "", REGISTER_DOC[name])
            for i, (name, bits, sgn) in enumerate(regs) if not name.startswith("owner")]
    owners = [i for i, (name, _, _) in enumerate(regs) if name.startswith("owner")]
    rows.append((f"{owners[0]}…{owners[-1]}", "`owner{s}_{p}`", regs[owners[0]][1], "", REGISTER_DOC["owner"]))
    out += ["", "Run-time registers (`register_map`, select `REG`, address = index):", ""]
    out += _table(("index", "register", "bits", "type", "meaning"), rows)
    return "\n".join(out) + "\n"
