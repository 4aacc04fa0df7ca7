"""``AccelConfig``: the one configuration object of the sparse Winograd PE array.

It embeds :class:`model.datapath.DatapathConfig` (tile, points, bit widths, c_max and
every derived width) and adds what only the array needs: P PEs, L tile lanes, the
layer limits that size the memories, and the mode (sparse or dense images). Every
generated Verilog file gets a ``params.json`` beside it (:meth:`AccelConfig.write_params`)
so the packer, the cycle model and the testbench read the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from model.atomic import atomic_write_json
from model.datapath import DatapathConfig
from model.errors import ConfigError

#: The schema tag of params.json.
PARAMS_SCHEMA = "winnow-accel-params/1"

MODES = ("sparse", "dense")


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
        P, the number of zero-skipping PEs; Winograd positions are spread over them.
    lanes : int
        L, tiles processed side by side: every PE cycle performs L multiply-accumulates.
    k_max : int
        Largest number of output channels K (sizes the accumulator and output memories).
    h_max, w_max : int
        Largest input height and width (size the input and output memories).
    pad_max : int
        Largest zero padding per side.
    stream_depth : int or None
        Non-zero entries one PE can hold; ``None`` sizes it for a dense layer at the
        limits (every position's K·C weights on one PE: ⌈positions/P⌉ positions).
    mode : {"sparse", "dense"}
        What the packer writes into the streams: only the non-zeros, or every weight
        (the dense-Winograd baseline on the same array).

    Attributes
    ----------
    n, positions : int
        Tile size n = m + r − 1 and n² Winograd positions.
    widths : model.datapath.DatapathWidths
        Worst-case width of every stage (the RTL uses exactly these).
    """

    datapath: DatapathConfig = field(default_factory=DatapathConfig)
    pes: int = 4
    lanes: int = 4
    k_max: int = 32
    h_max: int = 32
    w_max: int = 32
    pad_max: int = 1
    stream_depth: int | None = None
    mode: str = "sparse"

    def __post_init__(self):
        dp = self.datapath
        if not isinstance(dp, DatapathConfig):
            raise ConfigError(f"datapath must be a model.datapath.DatapathConfig; got {type(dp).__name__}")
        if dp.dims != 2:
            raise ConfigError(f"the PE array generator supports dims = 2 only; got dims = {dp.dims}")
        for name, lo, hi in (("pes", 1, 256), ("lanes", 1, 64), ("k_max", 1, 4096), ("h_max", 1, 4096),
                             ("w_max", 1, 4096), ("pad_max", 0, 64)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}]; got {v!r}")
        if self.pes > dp.positions:
            raise ConfigError(f"pes = {self.pes} exceeds the {dp.positions} Winograd positions of {dp.alg.name}: "
                              f"a PE would never have work")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.h_max + 2 * self.pad_max < dp.r or self.w_max + 2 * self.pad_max < dp.r:
            raise ConfigError(f"h_max, w_max + 2·pad_max must reach the kernel r = {dp.r}")
        if self.stream_depth is None:
            object.__setattr__(self, "stream_depth", self.dense_stream_length)
        if isinstance(self.stream_depth, bool) or not isinstance(self.stream_depth, int) or self.stream_depth < 1:
            raise ConfigError(f"stream_depth must be a positive integer; got {self.stream_depth!r}")
        if self.mode == "dense" and self.stream_depth < self.dense_stream_length:
            raise ConfigError(f"dense mode needs stream_depth >= ⌈positions/P⌉·k_max·c_max = "
                              f"{self.dense_stream_length}; got {self.stream_depth}")

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
    def dense_stream_length(self) -> int:
        return math.ceil(self.positions / self.pes) * self.k_max * self.c_max

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
        return self.c_max * self.x_rows * self.x_cols

    @property
    def out_depth(self) -> int:
        """Words in each of the m² output banks (banked by (ho mod m, wo mod m))."""
        return self.k_max * self.tiles_h_max * self.tiles_w_max

    @property
    def multipliers(self) -> int:
        """P·L: multiply-accumulates per cycle."""
        return self.pes * self.lanes

    @property
    def entry_fields(self) -> dict[str, int]:
        """Bit fields of one PE stream entry (position, k, c, value, last-of-row)."""
        return {"p": ubits(self.positions - 1), "k": ubits(self.k_max - 1), "c": ubits(self.c_max - 1),
                "value": self.datapath.weight_bits, "last": 1}  # fmt: skip

    @property
    def entry_bits(self) -> int:
        return sum(self.entry_fields.values())

    @property
    def shift_bits(self) -> int:
        """Width of the requantization right shift (0 … requant_bits − 1)."""
        return ubits(self.widths.requant_bits - 1)

    @property
    def quant_fields(self) -> dict[str, int]:
        """Bit fields of one per-output-channel word: bias (signed), mult, shift."""
        return {"bias": self.datapath.bias_bits, "mult": self.datapath.mult_bits, "shift": self.shift_bits}

    @property
    def quant_bits(self) -> int:
        return sum(self.quant_fields.values())

    def to_dict(self) -> dict:
        """Everything the packer, cycle model and testbench need, JSON-ready."""
        return {
            "schema": PARAMS_SCHEMA,
            "datapath": self.datapath.to_dict(),
            "pes": self.pes, "lanes": self.lanes, "multipliers": self.multipliers,
            "k_max": self.k_max, "c_max": self.c_max, "h_max": self.h_max, "w_max": self.w_max,
            "pad_max": self.pad_max, "stream_depth": self.stream_depth, "mode": self.mode,
            "derived": {
                "n": self.n, "positions": self.positions, "tiles_max": self.tiles_max,
                "x_banks": self.n * self.n, "x_depth": self.x_depth, "x_rows": self.x_rows, "x_cols": self.x_cols,
                "out_banks": self.m * self.m, "out_depth": self.out_depth,
                "tiles_h_max": self.tiles_h_max, "tiles_w_max": self.tiles_w_max,
                "entry_fields": self.entry_fields, "entry_bits": self.entry_bits,
                "quant_fields": self.quant_fields,
            },
        }  # fmt: skip

    def write_params(self, directory) -> Path:
        """Write ``params.json`` into ``directory`` (atomically) and return its path."""
        return atomic_write_json(Path(directory) / "params.json", self.to_dict())


def load_fields(cfg: AccelConfig) -> dict[str, int]:
    """Bit fields of one load-port word, LSB first: memory select, bank, address, data."""
    regs = register_map(cfg)
    depth = max(cfg.x_depth, cfg.stream_depth, cfg.k_max, len(regs))
    width = max(cfg.datapath.act_bits, cfg.entry_bits, cfg.quant_bits, max(b for _, b, _ in regs))
    return {"sel": 2, "bank": ubits(max(cfg.positions, cfg.pes) - 1), "addr": ubits(depth - 1), "data": width}


def register_map(cfg: AccelConfig) -> list[tuple[str, int, bool]]:
    """The per-layer run-time registers, in load order: (name, width, signed).

    Written through the load port (select ``REG``, address = index in this list) by
    the packer's image; the sequencer and the units read them during a run.
    """
    th, tw = cfg.tiles_h_max, cfg.tiles_w_max
    coord = ubits(max(cfg.h_max, cfg.w_max) + 2 * cfg.n + cfg.pad_max) + 1  # signed tile origins
    regs = [
        ("c", ubits(cfg.c_max), False),
        ("k", ubits(cfg.k_max), False),
        ("h", ubits(cfg.h_max), False),
        ("w", ubits(cfg.w_max), False),
        ("tiles_w", ubits(tw), False),
        ("tiles", ubits(th * tw), False),
        ("groups", ubits(cfg.groups_max), False),
        ("h0", coord, True),       # first tile row origin: −pad_h
        ("h0_q", coord, True),     # ⌊h0 / n⌋
        ("h0_r", ubits(cfg.n - 1), False),  # h0 mod n
        ("w0", coord, True),
        ("w0_q", coord, True),
        ("w0_r", ubits(cfg.n - 1), False),
        ("relu", 1, False),
        ("winograd_relu", 1, False),
    ]
    regs += [(f"len{j}", ubits(cfg.stream_depth), False) for j in range(cfg.pes)]
    regs += [(f"owner{p}", ubits(cfg.pes - 1), False) for p in range(cfg.positions)]
    return regs
