"""Generate the Verilog of a :class:`winnow.hw.array.WinogradArray` with its params.json beside it.

``winnow gen`` is the command line of this module (presets, params.json, clear errors).
:func:`generate` writes ``winnow_array.v``, whose port names are Amaranth's
(``clk``, ``rst``, ``load__valid``, ``load__payload``, ``rd_addr`` …), and with
``axis=True`` also ``winnow_array_axis.v``: :class:`winnow.hw.axis_wrapper.AxisArray`,
the AXI-Stream load and read-back ports (``aclk``, ``aresetn``, ``s_axis_load_*``,
``m_axis_out_*``; docs/hardware.md) around an instance of ``winnow_array``: compile it
together with ``winnow_array.v``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from winnow.model.files.atomic import atomic_write_text

from winnow.hw.array import WinogradArray
from winnow.hw.axis_wrapper import AxisArray
from winnow.hw.config import AccelConfig

TOP = "winnow_array"
#: Module name of the AXI-Stream wrapper (:class:`winnow.hw.axis_wrapper.AxisArray`).
AXIS_TOP = f"{TOP}_axis"
#: Module name of the AXI4 master engines' top (:class:`winnow.hw.axi_master.AxiMasterTop`).
AXI_TOP = "winnow_axi_master"


_ZERO_INIT = re.compile(r"  initial begin\n((?:    (\S+)\[\d+\] = \d+'h0+;\n)+)  end\n")


def _compact_zero_init(text: str) -> str:
    """Fold yosys's word-by-word zero initialisation of memories into a loop (same semantics).

    The accumulator memory must start at zero (rows without non-zeros are never
    written); unrolled, the zero words are most of the file and of the compile time.
    """

    def repl(mo):
        lines = mo.group(1).splitlines()
        names = {ln.split("[")[0].strip() for ln in lines}
        if len(names) != 1:
            return mo.group(0)
        name = names.pop()
        label = "init_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        return (f"  initial begin : {label}\n    integer i;\n    for (i = 0; i < {len(lines)}; i = i + 1)\n"
                f"      {name}[i] = 0;\n  end\n")

    return _ZERO_INIT.sub(repl, text)


_TRIGGER = re.compile(r"  reg (\\\$auto\$verilog_backend\S*dump_module\$\d+) +=\s*0;\n")


def _comb_at_time_zero(text: str) -> str:
    """Make yosys's start-up trigger of ``always @*`` blocks an event Icarus sees.

    yosys declares ``reg trigger = 0`` and reads it in every ``always @*`` block so
    they run at time 0; Icarus applies a declaration initialiser without an event, so a
    block whose inputs never change afterwards (a multiplexer selecting a signal that
    stays at its initial value) holds X. Seen as one wrong output of the first layer
    under Icarus only. Here the trigger toggles at 1 time unit instead, re-running every
    such block once (Verilator ignores the delay; both give the same values).
    """

    def repl(mo):
        name = mo.group(1)
        return f"  reg {name} = 0;\n  initial #1 {name} = 1;\n"

    return _TRIGGER.sub(repl, text)


def _convert(top, name: str) -> str:
    """Verilog of the component ``top`` (bundled yosys) with the post-processing every file gets."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    return _comb_at_time_zero(_compact_zero_init(verilog.convert(top, name=name, emit_src=False)))


def verilog_text(cfg: AccelConfig, name: str = TOP) -> str:
    """Verilog source of the array."""
    return _convert(WinogradArray(cfg), name)


def axis_verilog_text(cfg: AccelConfig, name: str = AXIS_TOP, core: str = TOP) -> str:
    """Verilog source of the AXI-Stream wrapper; it instantiates the array's module ``core`` (:func:`verilog_text`)."""
    return _convert(AxisArray(cfg, core_module=core), name)


def axi_master_verilog_text(name: str = AXI_TOP, **params) -> str:
    """Verilog source of :class:`winnow.hw.axi_master.AxiMasterTop` with ``params`` (the engines' parameters)."""
    from winnow.hw.axi_master import AxiMasterTop

    return _convert(AxiMasterTop(**params), name)


def generate(cfg: AccelConfig, out_dir, *, axis: bool = False, progress=None) -> Path:
    """Write ``winnow_array.v`` (and ``winnow_array_axis.v``) plus ``params.json`` into ``out_dir``.

    ``progress(line)``, when given, hears each step as it starts and ends ("[1/3] …").
    """
    out_dir = Path(out_dir)
    say = progress or (lambda line: None)
    n = 3 if axis else 2
    t0 = time.time()
    say(f"[1/{n}] {TOP}.v: elaborating the array and converting it to Verilog …")
    path = atomic_write_text(out_dir / f"{TOP}.v", verilog_text(cfg))
    say(f"[1/{n}] {TOP}.v: done in {time.time() - t0:.1f} s")
    if axis:
        t1 = time.time()
        say(f"[2/{n}] {AXIS_TOP}.v: the AXI-Stream wrapper …")
        atomic_write_text(out_dir / f"{AXIS_TOP}.v", axis_verilog_text(cfg))
        say(f"[2/{n}] {AXIS_TOP}.v: done in {time.time() - t1:.1f} s")
    cfg.write_params(out_dir)
    say(f"[{n}/{n}] params.json written")
    return path
