"""Configuration presets: one :class:`winnow.hw.config.AccelConfig` per board, sized to fit its part.

Sizes were chosen by building (``make bench-boards``; figures in docs/boards.md): block
RAM and LUTs are the limits, because the banked array keeps many small memory banks
(input banks by (h mod n, w mod n), a V' and two accumulator banks per Winograd
position, output banks, one stream memory per PE) and wide read multiplexers; the
iCE40 preset uses the position-serial organisation instead.

* ``ulx3s`` (ECP5-85F), the default for ``winnow gen``, ``sim`` and ``cycles``: the
  **streaming array** (:mod:`winnow.hw.stream_array`): a tiled F(2,3) array, P = 8 PEs ×
  L = 2 lanes, one requantizer, 18×18-pixel windows (8×8-tile patches), blocks of 32
  output channels, C blocks of 32, C ≤ 512, behind a 128-bit AXI4 master; any layer up to
  C = 512 (any K, H, W) runs out of external memory. 1.47 Mbit of on-chip memory, 188 of
  the part's 208 DP16KD by the memories' shapes and read ports (180 in yosys' synthesis): more of the part than ``winnow explore``'s default 50 % guard
  allows, for 8×8-tile patches (few passes) and full-depth streams (docs/hardware.md). On
  the board it builds on the SDRAM through LiteDRAM (``winnow.boards.stream_top``,
  docs/dram.md); ``winnow build ulx3s`` without a preset builds ``ulx3s-onchip``.
* ``ulx3s-onchip``: the array that holds a whole layer on chip (the default board build):
  F(2,3), P = 4 PEs × L = 4 lanes, one shared requantizer, C, K ≤ 32, H, W ≤ 28: every
  conv layer of SmallVGG (width 16) on 28×28 MNIST runs on it unchanged. Measured: 45 %
  of the LUTs, 29 % of the BRAM, 18 DSPs, 43.5 MHz (the board clock is 25 MHz).
* ``ulx3s-f43``: the large-tile variant on the same part, F(4,3), 2 × 2, one requantizer,
  same limits. It places (57 % of the LUTs, 78 % of the RAM-capable LUTs, 70 % of the
  BRAM) but does **not** route: nextpnr's router2 stalled at ~26,000 overused wires.
  Kept so that the next attempt is one command; docs/boards.md has the figures.
* ``orangecrab`` (ECP5-25F): F(2,3), 2 × 2, one requantizer, C, K ≤ 16, H, W ≤ 16.
  Measured: 52 % of the LUTs, 50 % of the BRAM, 6 DSPs, 71.9 MHz (board clock 48 MHz).
* ``icebreaker`` (iCE40UP5K, 5,280 logic cells, 30 BRAMs, 8 DSPs): F(2,3), 1 × 1, one
  requantizer, C, K ≤ 8, H, W ≤ 16, with **position-serial memories**
  (``AccelConfig.serial``): one input, V' and accumulator memory instead of n² = 16
  banks each, and the output transform accumulated a position per cycle. Measured: 80 %
  of the logic cells, 24 of 30 BRAMs, 3 DSPs, 17.0 MHz (board clock 12 MHz). The banked
  array did not fit even at C, K ≤ 4, 8×8 (39 BRAMs, ≥ 7,201 logic cells).
"""

from __future__ import annotations

from winnow.hw.config import AccelConfig
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError

#: The fields of each preset; the rest are :meth:`AccelConfig.resolved`'s defaults. The measured
#: builds use one output-unit lane (``otu_lanes = 1``), not the gcd(L, 4) default.
PRESET_FIELDS: dict[str, tuple[DatapathConfig, dict]] = {
    "ulx3s": (DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=512),
              dict(pes=8, lanes=2, clusters=1, otu_lanes=1, requant=1, k_max=32, h_max=18, w_max=18, pad_max=0,
                   tiled=True, c_block=32)),
    "ulx3s-onchip": (DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=32),
              dict(pes=4, lanes=4, otu_lanes=1, requant=1, k_max=32, h_max=28, w_max=28, pad_max=1)),
    "ulx3s-f43": (DatapathConfig(m=4, r=3, act_bits=8, weight_bits=8, c_max=32),
                  dict(pes=2, lanes=2, otu_lanes=1, requant=1, k_max=32, h_max=28, w_max=28, pad_max=1)),
    "orangecrab": (DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=16),
                   dict(pes=2, lanes=2, otu_lanes=1, requant=1, k_max=16, h_max=16, w_max=16, pad_max=1)),
    "icebreaker": (DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=8),
                   dict(pes=1, lanes=1, otu_lanes=1, requant=1, k_max=8, h_max=16, w_max=16, pad_max=1,
                        serial=True)),
}

PRESETS: dict[str, AccelConfig] = {name: AccelConfig.resolved(dp, **fields)
                                   for name, (dp, fields) in PRESET_FIELDS.items()}

#: The board each preset is for.
PRESET_BOARD = {"ulx3s": "ulx3s", "ulx3s-onchip": "ulx3s", "ulx3s-f43": "ulx3s", "orangecrab": "orangecrab",
                "icebreaker": "icebreaker"}

#: Presets that are streaming arrays: their layers live in external memory behind the AXI4 master
#: (``winnow gen/sim/cycles --preset`` imply ``--memory``).
STREAM_PRESETS = frozenset({"ulx3s"})

#: Boards whose top joins a streaming preset to its DRAM through LiteDRAM (``winnow.boards.stream_top``).
STREAM_TOP_BOARDS = frozenset({"ulx3s"})

#: The preset a board build uses when none is given: the on-chip array, the one with a measured,
#: timing-met build (docs/boards.md); ``--preset ulx3s`` builds the streaming array on the SDRAM.
BUILD_PRESET = {"ulx3s": "ulx3s-onchip", "orangecrab": "orangecrab", "icebreaker": "icebreaker"}


def preset(name: str) -> AccelConfig:
    """The preset called ``name`` (a :class:`ConfigError` listing the known ones otherwise)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
