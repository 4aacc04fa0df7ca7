"""Typed ports between the array's units: memory write ports, read ports, lane vectors, launches.

Every unit-to-unit link of :class:`winnow.hw.array.WinogradArray` is one of these signatures,
so the array joins the units with ``wiring.connect`` and Amaranth checks at elaboration
that both sides agree on every member and its width.
"""

from __future__ import annotations

from amaranth import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def lanes(bits: int, count: int) -> data.ArrayLayout:
    """``count`` signed ``bits``-wide lanes (L tiles side by side, or n² positions)."""
    return data.ArrayLayout(signed(bits), count)


class MemWriteSignature(wiring.Signature):
    """A memory write port, seen from the writer: ``en``, ``addr``, ``data`` (written at the clock edge).

    Parameters
    ----------
    addr_shape, data_shape : shape-castable
        The address (a struct when it has parts, e.g. bank and address) and the word.
    """

    def __init__(self, addr_shape, data_shape):
        self.addr_shape, self.data_shape = addr_shape, data_shape
        super().__init__({"en": Out(1), "addr": Out(addr_shape), "data": Out(data_shape)})

    def __eq__(self, other):
        return type(other) is type(self) and (self.addr_shape, self.data_shape) == (other.addr_shape, other.data_shape)

    def __repr__(self):
        return f"MemWriteSignature({self.addr_shape!r}, {self.data_shape!r})"


class MemReadSignature(wiring.Signature):
    """A synchronous memory read port, seen from the reader: ``addr`` out, ``data`` back one cycle later.

    Parameters
    ----------
    addr_shape, data_shape : shape-castable
    clear : bool
        Add a ``clear`` member: zero the addressed word in the same cycle (the read still
        returns the old value).
    """

    def __init__(self, addr_shape, data_shape, *, clear: bool = False):
        self.addr_shape, self.data_shape, self.clear = addr_shape, data_shape, clear
        members = {"addr": Out(addr_shape), "data": In(data_shape)}
        if clear:
            members["clear"] = Out(1)
        super().__init__(members)

    def __eq__(self, other):
        return type(other) is type(self) and ((self.addr_shape, self.data_shape, self.clear)
                                              == (other.addr_shape, other.data_shape, other.clear))

    def __repr__(self):
        return f"MemReadSignature({self.addr_shape!r}, {self.data_shape!r}, clear={self.clear})"


class LaunchSignature(wiring.Signature):
    """The sequencer's control of one pipeline stage, seen from the sequencer.

    ``go`` pulses to launch the stage's unit; ``restart`` (with ``go``) says its step
    starts a tile group (block 0); ``step`` is the stage's step record, valid from the
    cycle after the launch (:func:`winnow.hw.sequencer.step_layout`).
    """

    def __init__(self, step_layout: data.StructLayout):
        self.step_layout = step_layout
        super().__init__({"go": Out(1), "restart": Out(1), "step": Out(step_layout)})

    def __eq__(self, other):
        return type(other) is type(self) and self.step_layout == other.step_layout

    def __repr__(self):
        return f"LaunchSignature({self.step_layout!r})"

