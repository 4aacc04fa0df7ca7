"""Generate the Verilog of a :class:`winnow.hw.array.WinogradArray` with its params.json beside it.

Usage (``winnow gen`` is the same with presets and clear errors)::

    python -m winnow.hw.generate --m 4 --pes 4 --lanes 4 --out build/hw/f43   # writes winnow_array.v + params.json

The port names are Amaranth's (``load__valid``, ``load__payload``, ``rd_addr`` …);
``--axis`` adds a thin wrapper module ``winnow_array_axis`` whose load port is named
AXI-Stream style (``s_axis_load_tvalid``/``tready``/``tdata``) for vendor flows.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from winnow.model.files.atomic import atomic_write_text
from winnow.model.integer.datapath import DatapathConfig

from winnow.hw.abi import load_layout
from winnow.hw.array import WinogradArray
from winnow.hw.config import AccelConfig

TOP = "winnow_array"


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


def verilog_text(cfg: AccelConfig, name: str = TOP) -> str:
    """Verilog source of the array (uses the bundled yosys)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    dut = WinogradArray(cfg)
    return _comb_at_time_zero(_compact_zero_init(verilog.convert(dut, name=name, emit_src=False)))


def axis_wrapper(cfg: AccelConfig, name: str = TOP) -> str:
    """A Verilog wrapper renaming the load port to AXI-Stream conventions."""
    width = load_layout(cfg).size
    w = cfg.datapath.act_bits
    rb = max(1, (cfg.m ** 2 - 1).bit_length())
    ra = max(1, (cfg.out_depth - 1).bit_length())
    return f"""// AXI-Stream naming for {name} (generated; see hw/generate.py)
module {name}_axis (
    input  wire aclk, input wire aresetn,
    input  wire s_axis_load_tvalid, output wire s_axis_load_tready, input wire [{width - 1}:0] s_axis_load_tdata,
    input  wire start, output wire busy, output wire done, output wire [31:0] cycles,
    input  wire [{rb - 1}:0] rd_bank, input wire [{ra - 1}:0] rd_addr, output wire [{w - 1}:0] rd_data
);
    {name} core (
        .clk(aclk), .rst(~aresetn),
        .load__valid(s_axis_load_tvalid), .load__ready(s_axis_load_tready), .load__payload(s_axis_load_tdata),
        .start(start), .busy(busy), .done(done), .cycles(cycles),
        .rd_bank(rd_bank), .rd_addr(rd_addr), .rd_data(rd_data)
    );
endmodule
"""


def generate(cfg: AccelConfig, out_dir, *, axis: bool = False) -> Path:
    """Write ``winnow_array.v`` (and ``winnow_array_axis.v``) plus ``params.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    path = atomic_write_text(out_dir / f"{TOP}.v", verilog_text(cfg))
    if axis:
        atomic_write_text(out_dir / f"{TOP}_axis.v", axis_wrapper(cfg))
    cfg.write_params(out_dir)
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--r", type=int, default=3)
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--c-max", type=int, default=32)
    ap.add_argument("--k-max", type=int, default=32)
    ap.add_argument("--h-max", type=int, default=32)
    ap.add_argument("--w-max", type=int, default=32)
    ap.add_argument("--pes", type=int, default=4)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--clusters", type=int, default=1)
    ap.add_argument("--k-block", type=int, default=None)
    ap.add_argument("--otu-lanes", type=int, default=None, help="default gcd(lanes, 4), as winnow gen")
    ap.add_argument("--mode", default="sparse", choices=["sparse", "dense"])
    ap.add_argument("--axis", action="store_true", help="also write the AXI-Stream named wrapper")
    ap.add_argument("--out", default="build/hw/array")
    return ap


def config_from_args(argv) -> AccelConfig:
    """The array the command line ``argv`` describes (defaults: :meth:`AccelConfig.resolved`)."""
    a = _parser().parse_args(argv)
    dp = DatapathConfig(m=a.m, r=a.r, act_bits=a.act_bits, weight_bits=a.weight_bits, c_max=a.c_max)
    return AccelConfig.resolved(dp, pes=a.pes, lanes=a.lanes, clusters=a.clusters, k_block=a.k_block,
                                otu_lanes=a.otu_lanes, k_max=a.k_max, h_max=a.h_max, w_max=a.w_max, mode=a.mode)


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    cfg = config_from_args(argv)
    path = generate(cfg, a.out, axis=a.axis)
    print(f"wrote {path} and {path.parent / 'params.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
