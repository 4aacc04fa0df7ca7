"""The run-time registers as one Amaranth struct (layout from :func:`winnow.hw.config.register_map`)."""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data

from winnow.hw.config import AccelConfig, register_map


def register_layout(cfg: AccelConfig) -> data.StructLayout:
    """Every per-layer register as a field (signed where the map says so); units take the whole struct."""
    return data.StructLayout({name: signed(bits) if sgn else unsigned(bits) for name, bits, sgn in register_map(cfg)})
