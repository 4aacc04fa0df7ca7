"""The supported boards: their amaranth-boards platforms, parts, capacities and presets.

:data:`KNOWN_BOARDS` maps a board name to its :class:`Board`; :func:`resolve_config`
turns ``None`` (the board's preset), a preset name or an :class:`AccelConfig` into the
configuration a build uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from winnow.hw.config import AccelConfig
from winnow.model.errors import ConfigError

from winnow.boards.errors import UnknownBoardError
from winnow.boards.presets import BUILD_PRESET, PRESETS, STREAM_PRESETS, STREAM_TOP_BOARDS


@dataclass(frozen=True)
class Board:
    """One supported board: its amaranth-boards platform, part and capacities."""

    name: str
    platform: str               # "module:Class" in amaranth_boards
    family: str                 # "ecp5" or "ice40"
    device: str
    clock_hz: float
    capacity: dict              # resource → sites on the part (LUT, FF, DSP, BRAM)
    tools: tuple
    bitstream: str
    synth_opts: str = ""
    notes: str = ""
    #: clock of the design when it differs from the oscillator (made by a PLL)
    sys_clock_hz: float | None = None
    #: nextpnr utilization key per resource
    report_keys: dict = field(default_factory=dict)

    def make_platform(self):
        mod, cls = self.platform.split(":")
        plat = getattr(importlib.import_module(mod), cls)()
        if self.name == "orangecrab":
            # no UART on the board: the Feather header's pins 0 (RX) and 1 (TX), for a USB-serial adapter
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource

            plat.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33"))])
        return plat


_ECP5_KEYS = {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD",
              "LUTRAM": "TRELLIS_RAMW", "IO": "TRELLIS_IO"}
_ICE40_KEYS = {"LUT": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "BRAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM",
               "IO": "SB_IO"}

KNOWN_BOARDS: dict[str, Board] = {
    "ulx3s": Board("ulx3s", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "LFE5U-85F", 25e6,
                   {"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
                   ("yosys", "nextpnr-ecp5", "ecppack"), "top.bit", report_keys=_ECP5_KEYS,
                   notes="UART on the FTDI port (the board's USB): program with openFPGALoader --board ulx3s top.bit"),
    "orangecrab": Board("orangecrab", "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", "ecp5",
                        "LFE5U-25F", 48e6, {"LUT": 24288, "FF": 24288, "DSP": 28, "BRAM": 56},
                        ("yosys", "nextpnr-ecp5", "ecppack"), "top.bit", report_keys=_ECP5_KEYS,
                        notes="UART on Feather pins 0 (RX) and 1 (TX) through a 3.3 V USB-serial adapter; "
                              "load with dfu-util after `dfu-suffix -v 1209 -p 5af0 -a top.bit`"),
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "iCE40UP5K", 12e6,
                        {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30},
                        ("yosys", "nextpnr-ice40", "icepack"), "top.bin", synth_opts="-dsp", report_keys=_ICE40_KEYS,
                        notes="UART on the FTDI port's second channel: program with iceprog top.bin"),
}


def get_board(name: str) -> Board:
    try:
        return KNOWN_BOARDS[str(name).lower()]
    except KeyError:
        raise UnknownBoardError(f"unknown board {name!r}; known boards: {', '.join(KNOWN_BOARDS)}") from None


def resolve_config(board: Board, config) -> tuple[AccelConfig, str | None]:
    """``None`` → the board's build preset (:data:`BUILD_PRESET`); a preset name; or an AccelConfig.

    A streaming preset is refused on a board without a DRAM top (:data:`STREAM_TOP_BOARDS`)."""
    if config is None:
        name = BUILD_PRESET[board.name]
        return PRESETS[name], name
    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(f"unknown preset {config!r}; known presets: {', '.join(sorted(PRESETS))}")
        if config in STREAM_PRESETS and board.name not in STREAM_TOP_BOARDS:
            raise ConfigError(f"preset {config!r} is a streaming array (its layers in external memory): the "
                              f"{board.name} has no board top with a DRAM controller yet (only "
                              f"{', '.join(sorted(STREAM_TOP_BOARDS))}); build {BUILD_PRESET[board.name]!r} (the "
                              f"on-chip array), or generate its Verilog with `winnow gen --preset {config}`")
        return PRESETS[config], config
    if isinstance(config, AccelConfig):
        return config, None
    raise ConfigError(f"config must be None, a preset name or an AccelConfig; got {type(config).__name__}")
