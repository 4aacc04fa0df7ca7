"""The search space of ``winnow explore``: the array parameters swept and the configuration of a point.

A *point* is a plain dict (JSON-ready, hashed for the cache)::

    {"m": 4, "pes": 16, "lanes": 4, "clusters": 4, "otu_lanes": 4, "requant": 16, "k_block": 32,
     "org": "tiled", "patch": 4, "c_block": 32, "bandwidth": 2.0}

* ``m``: the output tile of F(m, 3). One tile per array: the generated datapath has one
  input and one output transform, so a network's layers share it (a per-layer tile would
  need one transform unit per tile, which the array does not have).
* ``pes``, ``lanes``, ``clusters``, ``otu_lanes``: P, L, S and the output unit's lanes.
* ``requant``: R, requantizers per OTU lane, as a divisor of m² (given as 1, ``m`` or ``m2``).
* ``org``: ``banked`` (whole layers on chip: C, K, H, W limits = the network's largest),
  ``serial`` (the same with position-serial memories, one PE per cluster: for iCE40), or
  ``tiled`` (any layer as passes over windows of ``patch`` × ``patch`` output tiles,
  ``c_block`` input channels and blocks of ``k_block`` output channels: the on-chip
  buffer sizes).
* ``k_block``: output channels per block (``None``: all of the largest layer's K; banked only).
* ``stream``: the PE stream memories as a fraction of what a dense layer at the limits needs
  (1.0: any density; a pruned network needs less, and the streams are the largest memories of a
  tiled array); a point whose network needs longer streams is invalid.
* ``bandwidth``: bytes per array cycle of the memory port (the memory term).

:meth:`SearchSpace.points` enumerates the product, skipping what
:class:`winnow.hw.config.AccelConfig` refuses (counted as ``invalid``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, fields
from functools import lru_cache

from winnow.model.errors import ConfigError, WinnowError
from winnow.model.integer.datapath import DatapathConfig

from winnow.hw.config import AccelConfig

ORGS = ("banked", "serial", "tiled")
REQUANT = ("1", "m", "m2")


class EmptySpaceError(WinnowError):
    """No point of the search space is a valid array."""


@dataclass(frozen=True)
class SearchSpace:
    """The values swept per axis (each a tuple); the product is the space."""

    m: tuple = (2, 4, 6)
    pes: tuple = (1, 2, 4, 8, 16, 32)
    lanes: tuple = (1, 2, 4, 8, 16)
    clusters: tuple = (1, 2, 4, 8)
    otu_lanes: tuple = (1, 2, 4)
    requant: tuple = ("1", "m", "m2")
    k_block: tuple = (None, 16, 32, 64)
    org: tuple = ("banked", "tiled")
    patch: tuple = (2, 4, 8)
    c_block: tuple = (16, 32, 64)
    stream: tuple = (1.0, 0.5)
    bandwidth: tuple = (2.0,)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, tuple):
                raise ConfigError(f"search axis {f.name} must be a tuple; got {type(v).__name__}")
            if not v:
                raise EmptySpaceError(f"the search space is empty: axis {f.name} has no value")
        for name in ("m", "pes", "lanes", "clusters", "otu_lanes", "patch", "c_block"):
            for v in getattr(self, name):
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                    raise ConfigError(f"search axis {name}: {v!r} is not an integer in [1, 4096]")
        for v in self.k_block:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096):
                raise ConfigError(f"search axis k_block: {v!r} is not an integer in [1, 4096] (or 'all')")
        for v in self.requant:
            if v not in REQUANT:
                raise ConfigError(f"search axis requant: {v!r} is not one of {', '.join(REQUANT)}")
        for v in self.org:
            if v not in ORGS:
                raise ConfigError(f"search axis org: {v!r} is not one of {', '.join(ORGS)}")
        for v in self.stream:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise ConfigError(f"search axis stream: {v!r} is not a fraction in (0, 1]")
        for v in self.bandwidth:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 128:
                raise ConfigError(f"search axis bandwidth: {v!r} is not a number of bytes per cycle in (0, 128]")

    def to_dict(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @property
    def size(self) -> int:
        """Points in the product before validity is checked."""
        return math.prod(len(getattr(self, f.name)) for f in fields(self))

    def arrays(self):
        """Every candidate array (a point without its bandwidth), organisation-specific axes only where they apply."""
        seen = set()
        for m, p, l, s, o, rq, org, st in itertools.product(self.m, self.pes, self.lanes, self.clusters,
                                                            self.otu_lanes, self.requant, self.org, self.stream):
            if org == "tiled":
                extra = [{"k_block": kb, "patch": pt, "c_block": cb} for kb in self.k_block if kb is not None
                         for pt in self.patch for cb in self.c_block]
            else:
                extra = [{"k_block": kb} for kb in self.k_block]
            for e in extra:
                point = {"m": m, "pes": p, "lanes": l, "clusters": s, "otu_lanes": o, "requant": rq, "org": org,
                         "stream": st, **e}
                key = tuple(sorted(point.items(), key=lambda kv: kv[0]))
                if key not in seen:
                    seen.add(key)
                    yield point


def requant_value(point: dict) -> int:
    m = point["m"]
    return {"1": 1, "m": m, "m2": m * m}[point["requant"]]


@lru_cache(maxsize=64)
def datapath(m: int, r: int, c_max: int) -> DatapathConfig:
    """F(m, r) with 8-bit activations and weights for C ≤ ``c_max`` (built once: its exact transforms are slow)."""
    return DatapathConfig(m=m, r=r, c_max=c_max)


def array_config(point: dict, limits: dict, r: int = 3) -> AccelConfig:
    """The :class:`AccelConfig` of ``point`` for a network whose largest layer has ``limits``
    (:meth:`winnow.explore.networks.Network.limits`). Raises ConfigError for an invalid point."""
    dp = datapath(point["m"], r, limits["c_max"])
    common = dict(pes=point["pes"], lanes=point["lanes"], clusters=point["clusters"], otu_lanes=point["otu_lanes"],
                  requant=requant_value(point))
    if point["org"] == "tiled":
        window = point["patch"] * point["m"] + r - 1
        if point["c_block"] > limits["c_max"]:
            raise ConfigError(f"c_block = {point['c_block']} exceeds the network's largest C = {limits['c_max']}")
        cfg = AccelConfig(datapath=dp, tiled=True, k_max=point["k_block"], h_max=window, w_max=window, pad_max=0,
                          c_block=point["c_block"], **common)
        return _streams(cfg, point)
    kb = point["k_block"]
    if kb is not None and kb >= limits["k_max"]:
        raise ConfigError(f"k_block = {kb} is not below the network's largest K = {limits['k_max']} (same as none)")
    cfg = AccelConfig(datapath=dp, k_max=limits["k_max"], h_max=limits["h_max"], w_max=limits["w_max"],
                      pad_max=limits["pad_max"], k_block=kb, serial=point["org"] == "serial", **common)
    return _streams(cfg, point)


def _streams(cfg: AccelConfig, point: dict) -> AccelConfig:
    frac = point.get("stream", 1.0)
    if frac >= 1.0:
        return cfg
    return dataclasses.replace(cfg, stream_depth=max(1, math.ceil(cfg.dense_stream_length * frac)))


def params_fields(point: dict) -> dict:
    """The point as the keys of a params.json preset (for the report)."""
    return {k: point[k] for k in ("m", "pes", "lanes", "clusters", "otu_lanes", "org")}


def parse_axis(name: str, text: str) -> tuple:
    """A ``--NAME a,b,c`` option of the CLI → the axis tuple (``all`` for k_block None)."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise EmptySpaceError(f"--{name.replace('_', '-')}: the search space is empty (no value given)")
    out = []
    for t in items:
        if name in ("requant", "org"):
            out.append(t)
        elif name in ("bandwidth", "stream"):
            try:
                out.append(float(t))
            except ValueError:
                raise ConfigError(f"--{name}: {t!r:.30} is not a number") from None
        elif name == "k_block" and t in ("all", "none"):
            out.append(None)
        else:
            try:
                out.append(int(t))
            except ValueError:
                raise ConfigError(f"--{name.replace('_', '-')}: {t!r:.30} is not an integer") from None
    return tuple(out)
