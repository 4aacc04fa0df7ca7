"""The part an exploration sizes for: a known board, a known board with tighter limits, or a part's limits.

``--board`` takes

* ``ulx3s``, ``orangecrab``, ``icebreaker``: the board's part (:data:`winnow.boards.registry.KNOWN_BOARDS`);
* ``BOARD:RES=N,…``: that board with lower limits (``ulx3s:LUT=40000,BRAM=120``); points can still be built;
* ``FAMILY:RES=N,…`` with FAMILY ``ecp5`` or ``ice40``: any part of that family given by its LUT, FF,
  DSP and BRAM counts (every one needed; ``clock=MHZ`` optional); estimates only, nothing to build on.

The usable fraction ``max_util`` of each resource (default 0.5) stands for what routes: the
ULX3S preset routed at 45 % of the LUTs, the F(4,3) variant did not route at 57 % of the
LUTs and 78 % of the RAM-capable LUTs (bench/results/boards.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from winnow.boards.errors import UnknownBoardError
from winnow.model.errors import ConfigError

RESOURCES = ("LUT", "FF", "DSP", "BRAM")
#: ECP5 distributed RAM: one RAM-capable LUT in eight (LFE5U-85F: 10,455 of 83,640; -25F: 3,036 of 24,288);
#: the F(4,3) preset did not route with 78 % of them used, so they are a limit of their own.
LUTRAM_PER_LUT = {"ecp5": 1 / 8}
FAMILIES = ("ecp5", "ice40")
#: Memory port of each board's external RAM as bytes per array cycle at the board clock
#: (ULX3S: 16-bit SDR SDRAM; OrangeCrab: 16-bit DDR3; iCEBreaker: none, the quad-SPI flash only).
BOARD_BANDWIDTHS = {"ulx3s": (1.0, 2.0), "orangecrab": (2.0, 4.0), "icebreaker": (0.5,)}
FAMILY_BANDWIDTHS = {"ecp5": (1.0, 2.0, 4.0), "ice40": (0.5, 1.0)}


@dataclass(frozen=True)
class Target:
    """A part: family, capacity per resource, design clock, and the board (if one can be built)."""

    name: str
    family: str
    capacity: dict
    clock_mhz: float
    board: str | None
    bandwidths: tuple
    max_util: float = 0.5

    def limit(self, res: str) -> float:
        return self.capacity[res] * self.max_util

    @property
    def resources(self) -> tuple:
        """The resources a point must fit: LUT, FF, DSP, BRAM and, on ECP5, the RAM-capable LUTs."""
        return RESOURCES + (("LUTRAM",) if "LUTRAM" in self.capacity else ())

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "capacity": dict(self.capacity),
                "clock_mhz": self.clock_mhz, "board": self.board, "bandwidths": list(self.bandwidths),
                "max_util": self.max_util}


def _add_lutram(cap: dict, family: str) -> None:
    if family in LUTRAM_PER_LUT:
        cap["LUTRAM"] = int(cap["LUT"] * LUTRAM_PER_LUT[family])


def _limits(text: str, spec: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        key, eq, val = part.partition("=")
        key = key.strip().upper() if key.strip().lower() != "clock" else "clock"
        if not eq or key not in (*RESOURCES, "clock"):
            raise ConfigError(f"--board {spec!r}: expected RES=N with RES one of {', '.join(RESOURCES)} or "
                              f"clock=MHZ; got {part!r:.40}")
        try:
            v = float(val)
        except ValueError:
            v = float("nan")
        if not math.isfinite(v) or v <= 0 or v > 1e7:
            raise ConfigError(f"--board {spec!r}: {key} must be a positive number; got {val!r:.40}")
        out[key] = v
    return out


def parse_target(spec: str, max_util: float = 0.5) -> Target:
    """The :class:`Target` of a ``--board`` argument (module docstring); a named error otherwise."""
    from winnow.boards.registry import KNOWN_BOARDS

    if not isinstance(max_util, (int, float)) or not 0 < max_util <= 1:
        raise ConfigError(f"--max-util must be in (0, 1]; got {max_util!r}")
    spec = str(spec)
    head, colon, rest = spec.partition(":")
    head = head.strip().lower()
    lim = _limits(rest, spec) if colon else {}
    if head in KNOWN_BOARDS:
        b = KNOWN_BOARDS[head]
        cap = dict(b.capacity)
        for res, v in lim.items():
            if res != "clock":
                if v > cap[res]:
                    raise ConfigError(f"--board {spec!r}: {res} = {v:g} is more than the {b.device} has "
                                      f"({cap[res]:,})")
                cap[res] = int(v)
        clock = lim.get("clock", (b.sys_clock_hz or b.clock_hz) / 1e6)
        _add_lutram(cap, b.family)
        return Target(spec, b.family, cap, clock, b.name, BOARD_BANDWIDTHS[b.name], max_util)
    if head in FAMILIES:
        missing = [r for r in RESOURCES if r not in lim]
        if missing:
            raise ConfigError(f"--board {spec!r}: a part given by its limits needs every one of "
                              f"{', '.join(RESOURCES)}; missing {', '.join(missing)}")
        cap = {r: int(lim[r]) for r in RESOURCES}
        _add_lutram(cap, head)
        return Target(spec, head, cap, lim.get("clock", 25.0), None, FAMILY_BANDWIDTHS[head], max_util)
    raise UnknownBoardError(f"unknown board {head!r}: give one of {', '.join(KNOWN_BOARDS)}, BOARD:RES=N,… or "
                      f"{'|'.join(FAMILIES)}:LUT=N,FF=N,DSP=N,BRAM=N")
