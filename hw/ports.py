"""Typed ports between the array's units: memory write ports, read ports, lane vectors, launches; AXI4.

Every unit-to-unit link of :class:`winnow.hw.array.WinogradArray` is one of these signatures,
so the array joins the units with ``wiring.connect`` and Amaranth checks at elaboration
that both sides agree on every member and its width. :class:`AxiReadSignature` and
:class:`AxiWriteSignature` are the external memory port of :mod:`winnow.hw.axi_master`.
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




def _address_channel(id_bits: int, addr_bits: int) -> dict[str, tuple[str, int]]:
    """The AR or AW channel's signals: (flow seen from the master, width)."""
    return {"valid": ("out", 1), "ready": ("in", 1), "id": ("out", id_bits), "addr": ("out", addr_bits),
            "len": ("out", 8), "size": ("out", 3), "burst": ("out", 2), "lock": ("out", 1), "cache": ("out", 4),
            "prot": ("out", 3)}  # fmt: skip


class _AxiSignature(wiring.Signature):
    """AXI4 channels seen from the master, members named ``<channel><signal>`` (AXI's names, e.g. ``arvalid``)."""

    def __init__(self, addr_bits: int, data_bits: int, id_bits: int, channels: dict[str, dict[str, tuple[str, int]]]):
        self.addr_bits, self.data_bits, self.id_bits = addr_bits, data_bits, id_bits
        super().__init__({ch + sig: (Out if flow == "out" else In)(width)
                          for ch, sigs in channels.items() for sig, (flow, width) in sigs.items()})

    def __eq__(self, other):
        return type(other) is type(self) and ((self.addr_bits, self.data_bits, self.id_bits)
                                              == (other.addr_bits, other.data_bits, other.id_bits))

    def __repr__(self):
        return f"{type(self).__name__}({self.addr_bits}, {self.data_bits}, id_bits={self.id_bits})"


class AxiReadSignature(_AxiSignature):
    """The AXI4 read channels AR and R, seen from the master; members carry AXI's names.

    AR: ``arvalid``, ``arready`` (in), ``arid``, ``araddr``, ``arlen`` (8), ``arsize`` (3),
    ``arburst`` (2), ``arlock`` (1), ``arcache`` (4), ``arprot`` (3); R (in): ``rvalid``,
    ``rready`` (out), ``rid``, ``rdata``, ``rresp`` (2), ``rlast``. A top that prefixes
    every member with ``m_axi_`` is what ``cocotbext.axi.AxiBus.from_prefix(dut, "m_axi")``
    finds (cocotbext-axi requires the ID signals).
    """

    def __init__(self, addr_bits: int, data_bits: int, id_bits: int = 1):
        super().__init__(addr_bits, data_bits, id_bits, {
            "ar": _address_channel(id_bits, addr_bits),
            "r": {"valid": ("in", 1), "ready": ("out", 1), "id": ("in", id_bits), "data": ("in", data_bits),
                  "resp": ("in", 2), "last": ("in", 1)},
        })  # fmt: skip


class AxiWriteSignature(_AxiSignature):
    """The AXI4 write channels AW, W and B, seen from the master; members carry AXI's names.

    AW: as AR of :class:`AxiReadSignature`, named ``aw…``; W (out): ``wvalid``, ``wready``
    (in), ``wdata``, ``wstrb`` (data_bits / 8), ``wlast``; B (in): ``bvalid``, ``bready``
    (out), ``bid``, ``bresp`` (2).
    """

    def __init__(self, addr_bits: int, data_bits: int, id_bits: int = 1):
        super().__init__(addr_bits, data_bits, id_bits, {
            "aw": _address_channel(id_bits, addr_bits),
            "w": {"valid": ("out", 1), "ready": ("in", 1), "data": ("out", data_bits),
                  "strb": ("out", data_bits // 8), "last": ("out", 1)},
            "b": {"valid": ("in", 1), "ready": ("out", 1), "id": ("in", id_bits), "resp": ("in", 2)},
        })  # fmt: skip
