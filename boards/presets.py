"""Configuration presets: one :class:`hw.config.AccelConfig` per board, sized to fit its part.

Sizes were chosen by building (``make bench-boards``; figures in docs/boards.md): block
RAM and LUTs are the limits, because the array keeps many small memory banks (input
banks by (h mod n, w mod n), a V' and two accumulator banks per Winograd position,
output banks, one stream memory per PE) and wide read multiplexers.

* ``ulx3s`` (ECP5-85F): F(2,3), P = 4 PEs × L = 4 lanes, C, K ≤ 32, H, W ≤ 28: every
  conv layer of SmallVGG (width 16) on 28×28 MNIST runs on it unchanged. Measured: 47 %
  of the LUTs, 27 % of the BRAM, 31 DSPs, 30.4 MHz (the board clock is 25 MHz).
  The F(4,3) array of the same limits synthesizes to ~97 % of the part's LUTs.
* ``orangecrab`` (ECP5-25F): F(2,3), 2 × 2, C, K ≤ 16, H, W ≤ 16. Measured: 62 % of the
  LUTs, 46 % of the BRAM, 12 DSPs, 52.2 MHz (board clock 48 MHz).
* ``icebreaker`` (iCE40UP5K, 5,280 logic cells, 30 BRAMs, 8 DSPs): the smallest array,
  F(2,3), 1 × 1, C, K ≤ 4, H, W ≤ 8, and it does **not** fit: its netlist needs 38 BRAMs,
  9 DSPs and ≥ 9,527 logic cells (the output unit alone takes all 8 DSPs); the build
  stops with a ResourceError naming them. Fitting needs changes in ``hw/``.
"""

from __future__ import annotations

from hw.config import AccelConfig
from model.datapath import DatapathConfig
from model.errors import ConfigError

PRESETS: dict[str, AccelConfig] = {
    "ulx3s": AccelConfig(datapath=DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=32),
                         pes=4, lanes=4, k_max=32, h_max=28, w_max=28, pad_max=1),
    "orangecrab": AccelConfig(datapath=DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=16),
                              pes=2, lanes=2, k_max=16, h_max=16, w_max=16, pad_max=1),
    "icebreaker": AccelConfig(datapath=DatapathConfig(m=2, r=3, act_bits=8, weight_bits=8, c_max=4),
                              pes=1, lanes=1, k_max=4, h_max=8, w_max=8, pad_max=1),
}


def preset(name: str) -> AccelConfig:
    """The preset called ``name`` (a :class:`ConfigError` listing the known ones otherwise)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
