"""Delay lines: values that travel beside a pipeline, one register per stage."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import Value


def delay(m: Module, value: Value, stages: int, name: str) -> list[Signal]:
    """Registers ``value`` through ``stages`` cycles; returns every stage's register, oldest last."""
    out = []
    prev = value
    for d in range(stages):
        r = Signal(Value.cast(value).shape(), name=f"{name}_d{d}")
        m.d.sync += r.eq(prev)
        out.append(r)
        prev = r
    return out
