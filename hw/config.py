"""``AccelConfig``: the one configuration object of the sparse Winograd PE array.

It embeds :class:`winnow.model.integer.datapath.DatapathConfig` (tile, points, bit widths, c_max and
every derived width) and adds what only the array needs: P PEs, L tile lanes, the
layer limits that size the memories, and the mode (sparse or dense images). Every
generated Verilog file gets a ``params.json`` beside it (:meth:`AccelConfig.write_params`)
so the packer, the cycle model and the testbench read the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from winnow.model.files.atomic import atomic_write_json
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError
from winnow.model.files.bounded import read_json_bounded

#: The schema tag of params.json.
PARAMS_SCHEMA = "winnow-accel-params/1"

MODES = ("sparse", "dense")
#: Most entries of one PE stream a configuration may ask for (a bound on the arithmetic, not on what builds:
#: check_buildable refuses memories above MAX_MEMORY_BITS long before it).
MAX_STREAM_DEPTH = 1 << 40


def ubits(n: int) -> int:
    """Unsigned width that holds every integer in [0, n] (at least 1)."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class AccelConfig:
    """The PE array: datapath, array shape, layer limits and mode.

    Parameters
    ----------
    datapath : DatapathConfig
        Tile F(m, r), point set, act/weight/bias/mult widths and ``c_max`` (the largest
        C, which also sizes the accumulator width). Only 2-D datapaths are generated.
    pes : int
        P, the number of zero-skipping PEs.
    lanes : int
        L, tiles processed side by side: every PE cycle performs L multiply-accumulates.
    clusters : int
        S, PE clusters (divides P). Cluster s owns the output rows k ≡ s (mod S) of
        every Winograd position and has its own copy of the V buffer; within a
        cluster, positions are balanced over its P/S PEs. S > 1 lets P exceed the
        position count's balanced split (F(4,3)'s 36 positions on 8, 16 or 32 PEs).
    k_block : int or None
        Output channels per block (``None``: ``k_max``, no blocking). The accumulator
        holds one block; the sequencer runs ⌈K/k_block⌉ blocks per tile group,
        reusing the group's V'. A multiple of S.
    requant : int or None
        R, requantizers per OTU lane (divides m²; ``None``: m², a tile per cycle). Each
        is a ``biased_bits`` × ``mult_bits`` multiply (about 44 × 15 bits: two DSP
        blocks on ECP5); with R < m² an OTU lane takes Q = m²/R cycles per tile.
    otu_lanes : int
        Tiles the output unit starts per cycle (divides L); it needs K·L/otu_lanes·Q
        cycles per group (Q above), sized so that layers with few input
        channels (VGG's conv1_1) stay PE-bound.
    k_max : int
        Largest number of output channels K (sizes the output and quantization memories).
    h_max, w_max : int
        Largest input height and width (size the input and output memories).
    pad_max : int
        Largest zero padding per side.
    stream_depth : int or None
        Entries one PE stream can hold; ``None`` sizes it for a dense layer at the
        limits (:attr:`dense_stream_length`).
    mode : {"sparse", "dense"}
        What the packer writes into the streams: only the non-zeros, or every weight
        (the dense-Winograd baseline on the same array).
    serial : bool
        Position-serial memories, for parts with few block RAMs (iCE40): the input,
        each cluster's V' copy and each accumulator half are *one* memory each, read one
        Winograd position per cycle, instead of n² banks read at once; the input and
        output units then take n² cycles per tile (:mod:`winnow.hw.cycle_model`). Needs one PE
        per cluster (``clusters`` = ``pes``): each of those memories has a single port
        for its PE. The load and read-back protocol is the same in both organisations.
    tiled : bool
        The array runs one *pass* of a tiled layer (:mod:`winnow.hw.tiling`) per run: an
        input window of at most ``c_block`` channels (``h_max`` × ``w_max`` is then the
        largest window, halo included, and sizes the patch), one block of at most
        ``k_block`` output channels. The PEs *add* their row sums into accumulators that
        hold every tile group of the patch (:attr:`acc_slots`) and keep the partial sums
        across passes; the output unit runs only in a pass with the ``finish`` register
        set (the last C block), and its reads clear the accumulators for the next patch.
        Banked memories only.
    c_block : int or None
        Input channels one run takes: the V buffer holds 2·c_block words per bank and the
        input memory c_block channels (``None``: ``c_max``). Below ``c_max`` only in tiled
        mode, where a layer's C is split into C blocks whose partial sums accumulate;
        ``c_max`` still sizes the accumulators' width (the sum over every channel).

    Attributes
    ----------
    n, positions : int
        Tile size n = m + r − 1 and n² Winograd positions.
    widths : winnow.model.integer.datapath.DatapathWidths
        Worst-case width of every stage (the RTL uses exactly these).
    """

    datapath: DatapathConfig = field(default_factory=DatapathConfig)
    pes: int = 4
    lanes: int = 4
    clusters: int = 1
    k_block: int | None = None
    otu_lanes: int = 1
    requant: int | None = None
    k_max: int = 32
    h_max: int = 32
    w_max: int = 32
    pad_max: int = 1
    stream_depth: int | None = None
    mode: str = "sparse"
    serial: bool = False
    tiled: bool = False
    c_block: int | None = None

    def __post_init__(self):
        dp = self.datapath
        if not isinstance(dp, DatapathConfig):
            raise ConfigError(f"datapath must be a winnow.model.integer.datapath.DatapathConfig; got {type(dp).__name__}")
        if dp.dims != 2:
            raise ConfigError(f"the PE array generator supports dims = 2 only; got dims = {dp.dims}")
        for name, lo, hi in (("pes", 1, 256), ("lanes", 1, 64), ("clusters", 1, 64), ("otu_lanes", 1, 64),
                             ("k_max", 1, 4096), ("h_max", 1, 4096), ("w_max", 1, 4096),
                             ("pad_max", 0, 64)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}]; got {v!r}")
        if self.pes % self.clusters:
            raise ConfigError(f"clusters = {self.clusters} must divide pes = {self.pes}")
        if self.pes_per_cluster > dp.positions:
            raise ConfigError(f"pes/clusters = {self.pes_per_cluster} exceeds the {dp.positions} Winograd positions "
                              f"of {dp.alg.name}: a PE would never have work (raise clusters)")
        if self.lanes % self.otu_lanes:
            raise ConfigError(f"otu_lanes = {self.otu_lanes} must divide lanes = {self.lanes}")
        if self.requant is None:
            object.__setattr__(self, "requant", dp.m * dp.m)
        if isinstance(self.requant, bool) or not isinstance(self.requant, int) or self.requant < 1 \
                or (dp.m * dp.m) % self.requant:
            raise ConfigError(f"requant = {self.requant!r} must be a positive divisor of m² = {dp.m * dp.m} "
                              f"(the outputs of a tile)")
        k_rounded = -(-self.k_max // self.clusters) * self.clusters  # k_max rounded up to a multiple of S
        if self.k_block is None:
            object.__setattr__(self, "k_block", k_rounded)
        if isinstance(self.k_block, bool) or not isinstance(self.k_block, int) or self.k_block < 1:
            raise ConfigError(f"k_block must be a positive integer; got {self.k_block!r}")
        if self.k_block % self.clusters:
            raise ConfigError(f"k_block = {self.k_block} must be a multiple of clusters = {self.clusters} "
                              f"(each cluster holds k_block/clusters rows of the block)")
        if self.k_block > k_rounded:
            raise ConfigError(f"k_block = {self.k_block} exceeds k_max = {self.k_max} (rounded up to clusters)")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}; got {self.mode!r}")
        if not isinstance(self.serial, bool):
            raise ConfigError(f"serial must be true or false; got {self.serial!r}")
        if self.serial and self.pes_per_cluster != 1:
            raise ConfigError(f"serial memories need one PE per cluster (clusters = pes = {self.pes}); got "
                              f"clusters = {self.clusters}: each cluster's V' and accumulator memory has one "
                              f"port for its PE")
        if not isinstance(self.tiled, bool):
            raise ConfigError(f"tiled must be true or false; got {self.tiled!r}")
        if self.tiled and self.serial:
            raise ConfigError("tiled mode needs banked memories (serial = false): its accumulators add in place")
        if self.tiled and self.k_max % self.clusters:
            raise ConfigError(f"tiled mode: k_max = {self.k_max} (the output-channel block) must be a multiple of "
                              f"clusters = {self.clusters}")
        if self.tiled and self.pad_max:
            raise ConfigError(f"tiled mode: pad_max must be 0 (got {self.pad_max}): the windows are cut from the "
                              f"padded input and carry the padding; a nonzero pad_max only enlarges the memories")
        if self.tiled and self.k_block != k_rounded:
            raise ConfigError(f"tiled mode runs one output-channel block per pass: k_block = {self.k_block} must "
                              f"cover k_max = {self.k_max} (leave k_block unset; k_max is the block)")
        if self.c_block is None:
            object.__setattr__(self, "c_block", dp.c_max)
        if isinstance(self.c_block, bool) or not isinstance(self.c_block, int) or not 1 <= self.c_block <= dp.c_max:
            raise ConfigError(f"c_block must be an integer in [1, c_max = {dp.c_max}]; got {self.c_block!r}")
        if self.c_block < dp.c_max and not self.tiled:
            raise ConfigError(f"c_block = {self.c_block} < c_max = {dp.c_max} needs tiled mode (tiled = true): only "
                              f"tiled passes add partial sums across C blocks")
        if self.h_max + 2 * self.pad_max < dp.r or self.w_max + 2 * self.pad_max < dp.r:
            raise ConfigError(f"h_max, w_max + 2·pad_max must reach the kernel r = {dp.r}")
        if self.stream_depth is None:  # derived: as large as a dense layer at the limits needs
            object.__setattr__(self, "stream_depth", self.dense_stream_length)
        elif isinstance(self.stream_depth, int) and not isinstance(self.stream_depth, bool) \
                and self.stream_depth > MAX_STREAM_DEPTH:
            raise ConfigError(f"stream_depth must be a positive integer (at most {MAX_STREAM_DEPTH:,}); "
                              f"got {self.stream_depth!r:.40}")
        if isinstance(self.stream_depth, bool) or not isinstance(self.stream_depth, int) or self.stream_depth < 1:
            raise ConfigError(f"stream_depth must be a positive integer; got {self.stream_depth!r:.40}")
        if self.mode == "dense" and self.stream_depth < self.dense_stream_length:
            raise ConfigError(f"dense mode needs stream_depth >= {self.dense_stream_length} (a dense layer at the "
                              f"limits: ⌈positions·clusters/P⌉·⌈k_max/clusters⌉·c_max + k_blocks); "
                              f"got {self.stream_depth}")

    # ------------------------------------------------------------ derived configuration
    @staticmethod
    def default_otu_lanes(lanes: int) -> int:
        """Output-unit lanes when a user gives none: gcd(L, 4), enough that layers with few input
        channels stay PE-bound at the densities of interest (docs/hardware.md)."""
        return math.gcd(lanes, 4)

    @classmethod
    def resolved(cls, datapath: DatapathConfig, *, mode: str = "sparse", **fields) -> "AccelConfig":
        """The array of ``fields`` (others at their defaults) with every derived default filled in.

        The one place the CLI (``winnow gen/cycles/sim``), the flow's ``[array]``, the generator
        and the board presets get their defaults from: ``otu_lanes`` (absent or ``None``)
        = :meth:`default_otu_lanes`; ``k_block``, ``requant`` and ``stream_depth`` (absent or
        ``None``) as the constructor derives them; ``pad_max`` = 0 in tiled mode (absent or ``None``).
        """
        fields = dict(fields)
        if fields.get("tiled") and fields.get("pad_max") is None:  # the windows carry the padding
            fields["pad_max"] = 0
        lanes = fields.get("lanes", cls.__dataclass_fields__["lanes"].default)
        if fields.get("otu_lanes") is None and isinstance(lanes, int) and not isinstance(lanes, bool):
            fields["otu_lanes"] = cls.default_otu_lanes(lanes)
        return cls(datapath=datapath, mode=mode, **fields)

    def changed(self, *, mode: str | None = None, **fields) -> "AccelConfig":
        """This array with ``fields`` changed, re-deriving what depends on them unless given.

        ``k_block`` follows a new ``k_max``; ``otu_lanes`` becomes :meth:`default_otu_lanes`
        when the new ``lanes`` is not a multiple of it; ``stream_depth`` is re-derived when any
        field changes (a preset's stream fits a dense layer at its own limits); turning tiled mode on
        sets ``pad_max`` = 0 unless given.
        """
        fields = dict(fields)
        if "k_max" in fields:
            fields.setdefault("k_block", None)
        if fields.get("tiled") and not self.tiled and "pad_max" not in fields:  # the windows carry the padding
            fields["pad_max"] = 0
        lanes = fields.get("lanes")
        if isinstance(lanes, int) and not isinstance(lanes, bool) and lanes > 0 and "otu_lanes" not in fields \
                and lanes % self.otu_lanes:
            fields["otu_lanes"] = self.default_otu_lanes(lanes)
        if fields:
            fields.setdefault("stream_depth", None)
        return dataclasses.replace(self, mode=self.mode if mode is None else mode, **fields)

    # ------------------------------------------------------------ derived numbers
    @property
    def n(self) -> int:
        return self.datapath.n

    @property
    def m(self) -> int:
        return self.datapath.m

    @property
    def r(self) -> int:
        return self.datapath.r

    @property
    def positions(self) -> int:
        return self.datapath.positions

    @property
    def c_max(self) -> int:
        return self.datapath.c_max

    @property
    def widths(self):
        return self.datapath.widths

    @property
    def pes_per_cluster(self) -> int:
        return self.pes // self.clusters

    @property
    def k_blocks_max(self) -> int:
        """Output-channel blocks of the largest layer."""
        return math.ceil(self.k_max / self.k_block)

    @property
    def acc_depth(self) -> int:
        """Rows of one accumulator bank (one position, one cluster, one half)."""
        return self.k_block // self.clusters

    @property
    def dense_stream_length(self) -> int:
        """Entries of the longest PE stream of a dense layer at the limits (one end-of-block dummy per block)."""
        pos = math.ceil(self.positions / self.pes_per_cluster)
        return pos * math.ceil(self.k_max / self.clusters) * self.c_block + self.k_blocks_max

    @property
    def ho_max(self) -> int:
        return self.h_max + 2 * self.pad_max - self.r + 1

    @property
    def wo_max(self) -> int:
        return self.w_max + 2 * self.pad_max - self.r + 1

    @property
    def tiles_h_max(self) -> int:
        return math.ceil(self.ho_max / self.m)

    @property
    def tiles_w_max(self) -> int:
        return math.ceil(self.wo_max / self.m)

    @property
    def tiles_max(self) -> int:
        return self.tiles_h_max * self.tiles_w_max

    @property
    def groups_max(self) -> int:
        return math.ceil(self.tiles_max / self.lanes)

    @property
    def x_rows(self) -> int:
        """Rows of one input bank per channel: the input is banked by (h mod n, w mod n)."""
        return math.ceil(self.h_max / self.n)

    @property
    def x_cols(self) -> int:
        return math.ceil(self.w_max / self.n)

    @property
    def x_depth(self) -> int:
        """Words in each of the n² input banks."""
        return self.c_block * self.x_rows * self.x_cols

    @property
    def acc_bank_depth(self) -> int:
        """Words of one accumulator bank half: acc_depth, or in tiled mode acc_slots groups of
        2^⌈log2 acc_depth⌉ rows (address = slot, row)."""
        return self.acc_slots << ubits(self.acc_depth - 1) if self.tiled else self.acc_depth

    @property
    def acc_slots(self) -> int:
        """Tile groups one accumulator half holds: 1, or ⌈groups_max/2⌉ in tiled mode (groups alternate halves)."""
        return -(-self.groups_max // 2) if self.tiled else 1

    @property
    def requant_cycles(self) -> int:
        """Q = m²/R: cycles an OTU lane spends on one tile."""
        return self.m * self.m // self.requant

    @property
    def out_banks(self) -> int:
        """Output banks: one per (tile mod otu_lanes, ho mod m, wo mod m)."""
        return self.otu_lanes * self.m * self.m

    @property
    def out_tiles(self) -> int:
        """Tile slots per output channel in one output bank: ⌈tiles_max/otu_lanes⌉."""
        return math.ceil(self.tiles_max / self.otu_lanes)

    @property
    def out_depth(self) -> int:
        """Words in each output bank: address = k·out_tiles + tile // otu_lanes."""
        return self.k_max * self.out_tiles

    @property
    def multipliers(self) -> int:
        """P·L: multiply-accumulates per cycle."""
        return self.pes * self.lanes

    def memories(self) -> dict[str, dict[str, int]]:
        """Every on-chip memory of the array: count, depth and width of each kind, and total bits."""
        from winnow.hw import abi  # the word formats (abi builds on this module)

        w = self.widths
        dp = self.datapath
        n2 = self.positions
        if self.serial:  # one memory where the banked array has n² (address spaces rounded to powers of 2)
            pos_span = 1 << ubits(n2 - 1)
            banks = {"input": (1, n2 * (1 << ubits(self.x_depth - 1))),
                     "v_buffer": (self.clusters, pos_span * 2 * self.c_block),
                     "accumulators": (2 * self.clusters, pos_span * self.acc_depth)}
        else:
            banks = {"input": (n2, self.x_depth), "v_buffer": (self.clusters * n2, 2 * self.c_block),
                     "accumulators": (2 * self.clusters * n2, self.acc_bank_depth)}
        mems = {
            "input": (*banks["input"], dp.act_bits),
            "v_buffer": (*banks["v_buffer"], self.lanes * w.v_bits),
            "streams": (self.pes, self.stream_depth, abi.entry_layout(self).size),
            "accumulators": (*banks["accumulators"], self.lanes * w.acc_bits),
            "quant": (1, self.k_max, abi.quant_layout(dp).size),
            "output": (self.out_banks, self.out_depth, dp.act_bits),
        }
        return {k: {"count": c, "depth": d, "width": wd, "bits": c * d * wd} for k, (c, d, wd) in mems.items()}

    @property
    def memory_bits(self) -> int:
        """Total on-chip memory of the array in bits."""
        return sum(v["bits"] for v in self.memories().values())

    def to_dict(self) -> dict:
        """Everything the packer, cycle model and testbench need, JSON-ready."""
        from winnow.hw import abi  # the word formats (abi builds on this module)

        entry = abi.entry_layout(self)
        return {
            "schema": PARAMS_SCHEMA,
            "datapath": self.datapath.to_dict(),
            "pes": self.pes, "lanes": self.lanes, "clusters": self.clusters, "k_block": self.k_block,
            "otu_lanes": self.otu_lanes, "requant": self.requant, "multipliers": self.multipliers,
            "k_max": self.k_max, "c_max": self.c_max, "h_max": self.h_max, "w_max": self.w_max,
            "pad_max": self.pad_max, "stream_depth": self.stream_depth, "mode": self.mode,
            **({"serial": True} if self.serial else {}),  # absent = banked: params.json files before it still read
            **({"tiled": True, "c_block": self.c_block} if self.tiled else {}),  # absent = whole layers on chip
            "derived": {
                "n": self.n, "positions": self.positions, "tiles_max": self.tiles_max,
                "pes_per_cluster": self.pes_per_cluster, "k_blocks_max": self.k_blocks_max,
                "acc_depth": self.acc_depth, **({"acc_slots": self.acc_slots} if self.tiled else {}),
                "x_banks": self.n * self.n, "x_depth": self.x_depth, "x_rows": self.x_rows, "x_cols": self.x_cols,
                "out_banks": self.out_banks, "out_depth": self.out_depth, "out_tiles": self.out_tiles,
                "tiles_h_max": self.tiles_h_max, "tiles_w_max": self.tiles_w_max,
                "entry_fields": abi.field_widths(entry), "entry_bits": entry.size,
                "quant_fields": abi.field_widths(abi.quant_layout(self.datapath)),
                "load_fields": abi.field_widths(abi.load_layout(self)),
                "memories": self.memories(), "memory_bits": self.memory_bits,
            },
        }  # fmt: skip

    def write_params(self, directory) -> Path:
        """Write ``params.json`` into ``directory`` (atomically) and return its path."""
        return atomic_write_json(Path(directory) / "params.json", self.to_dict())

    @classmethod
    def read_params(cls, path) -> "AccelConfig":
        """Read a ``params.json`` (:meth:`write_params`); every error names the file."""
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{path}: a directory, not a params.json")
        doc = read_json_bounded(path, ConfigError, what="params.json", missing="no such params.json")
        try:
            return cls.from_dict(doc)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "AccelConfig":
        """Rebuild from :meth:`to_dict` (``params.json``); derived numbers are recomputed and checked."""
        if not isinstance(d, dict) or d.get("schema") != PARAMS_SCHEMA:
            schema = d.get("schema") if isinstance(d, dict) else None
            raise ConfigError(f"not a {PARAMS_SCHEMA} document (schema {schema!r:.60})")
        if not isinstance(d.get("datapath"), dict):
            raise ConfigError("params.json lacks its datapath")
        try:
            dp = DatapathConfig.from_dict(d["datapath"])
        except ConfigError as exc:
            raise ConfigError(f"field 'datapath': {exc}") from None
        except (TypeError, ValueError, ArithmeticError) as exc:  # a field of the wrong kind deep in the datapath
            raise ConfigError(f"field 'datapath': not a valid datapath ({type(exc).__name__}: {str(exc)[:120]})") from None
        keys = ARRAY_FIELDS + ("mode",)
        missing = [k for k in keys if k not in d]
        if missing:
            raise ConfigError(f"params.json lacks {', '.join(missing)}")
        for k in ARRAY_FIELDS:  # the constructor checks ranges; here the kinds, so that a wrong one is named
            v = d[k]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ConfigError(f"field '{k}': expected an integer, got {type(v).__name__} {v!r:.60}")
        try:
            cfg = cls(datapath=dp, serial=d.get("serial", False), tiled=d.get("tiled", False),
                      c_block=d.get("c_block"), **{k: d[k] for k in keys})
        except (TypeError, ValueError, ArithmeticError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"params.json: {type(exc).__name__}: {str(exc)[:120]}") from None
        if cfg.to_dict() != {k: v for k, v in d.items() if not (k in ("serial", "tiled") and v is False)}:
            raise ConfigError("params.json does not match the configuration it names (derived numbers differ)")
        return cfg


#: Upper bound on the on-chip memory (bits) of an array that is elaborated (:func:`check_buildable`).
MAX_MEMORY_BITS = 256 * 2**20

def check_buildable(cfg: "AccelConfig") -> None:
    """Refuse to elaborate an array whose memories exceed :data:`MAX_MEMORY_BITS`.

    The cycle model takes any configuration (VGG-16 at 224×224 needs 410 Mibit of
    buffers, which no FPGA holds); elaborating one would only exhaust the host's memory.
    """
    if cfg.memory_bits > MAX_MEMORY_BITS:
        mems = cfg.memories()
        big = max(mems, key=lambda k: mems[k]["bits"])
        raise ConfigError(f"the array's memories would hold {cfg.memory_bits / 2**20:,.1f} Mibit, above the "
                          f"generator's limit of {MAX_MEMORY_BITS // 2**20} Mibit; the largest is {big}: {mems[big]['count']} × {mems[big]['depth']:,} words × "
                          f"{mems[big]['width']} bits; lower the limits (stream_depth, c_max, k_max, h_max, w_max)")


#: Elaboration cost model of ``winnow gen`` (:func:`gen_cost`), fitted to measured runs on the 2-core CI
#: machine (default array 1.8 Mbit: 10 s, 0.15 GB; k_max 128: 6.4 Mbit, 23 s; k_max 512: 25 Mbit, 134 s, 0.7 GB;
#: h_max = w_max = 112: 7.9 Mbit, 43 s; c_max 256: 12 Mbit, 54 s; 64 multipliers: 18-25 s; issue 17's k_max 4096:
#: 215 Mbit, 400 s, 5.4 GB): seconds = 6 + 3 per Mibit of memories + 0.15 per multiplier; memory = 0.1 GB +
#: 22 MB per Mibit + 1.5 MB per multiplier. Good to a factor of about two (the machine's load).
GEN_SECONDS = (6.0, 3.0, 0.15)
GEN_MEGABYTES = (100.0, 22.0, 1.5)
#: Above either estimate, ``winnow gen`` (and a flow's generate step) refuses unless told to go ahead.
GEN_MAX_SECONDS = 300.0
GEN_MAX_MEGABYTES = 4096.0


def gen_cost(cfg: "AccelConfig") -> dict:
    """Estimated wall time (s) and peak memory (MB) of elaborating ``cfg`` to Verilog (:data:`GEN_SECONDS`)."""
    mib = cfg.memory_bits / 2**20
    t0, t_mib, t_mult = GEN_SECONDS
    m0, m_mib, m_mult = GEN_MEGABYTES
    return {"seconds": t0 + t_mib * mib + t_mult * cfg.multipliers,
            "megabytes": m0 + m_mib * mib + m_mult * cfg.multipliers, "memory_mibit": mib}


def check_gen_cost(cfg: "AccelConfig", allow: bool = False, hint: str = "or pass --allow-slow") -> dict:
    """:func:`gen_cost`, refused (``ConfigError`` with the estimate and ``hint``) above :data:`GEN_MAX_SECONDS`
    or :data:`GEN_MAX_MEGABYTES` unless ``allow``."""
    cost = gen_cost(cfg)
    if not allow and (cost["seconds"] > GEN_MAX_SECONDS or cost["megabytes"] > GEN_MAX_MEGABYTES):
        raise ConfigError(f"generating this array would take about {cost['seconds'] / 60:.0f} min and "
                          f"{cost['megabytes'] / 1024:.1f} GB of memory ({cost['memory_mibit']:,.1f} Mibit of "
                          f"memories, {cfg.multipliers} multipliers; the estimate is good to a factor of two), above "
                          f"the {GEN_MAX_SECONDS / 60:.0f} min / {GEN_MAX_MEGABYTES / 1024:.0f} GB that runs without "
                          f"asking: lower the limits (k_max, h_max, w_max, c_max, stream_depth) {hint}")
    return cost


#: The array's own integer fields (everything but the datapath, the mode and ``serial``), in declaration order.
ARRAY_FIELDS = tuple(f.name for f in dataclasses.fields(AccelConfig)
                     if f.name not in ("datapath", "mode", "serial", "tiled", "c_block"))
