# amaranth: UnusedElaboratable=no
"""Run layers on the streaming array through LiteDRAM's controller, with LiteDRAM's SDRAM model as the memory.

The board's SDRAM chip cannot be simulated here; this is the nearest: the LiteDRAM
core of the ULX3S top (:class:`winnow.boards.dram.DramConfig`, the same controller,
crossbar, 128-bit AXI4 port with its 128→16-bit conversion and 32-bit Wishbone host
port) generated with ``sim=True``, where LiteDRAM's ``SDRAMPHYModel`` (a behavioural
memory of the MT48LC16M16's geometry and CAS latency) stands in for the PHY and the chip.
:func:`run_stream_dram` writes ``winnow_stream.v`` (the array, 25-bit addresses as on the
board), the simulation core and a wrapper ``winnow_stream_dram`` joining the array's
``m_axi_*`` to the core's ``user_port_axi_*``, builds them under Verilator and runs each
case (:mod:`winnow.sim.tb_stream_dram`): the SDRAM initialisation replayed on the core's
``wb_ctrl`` (what :class:`winnow.boards.stream_top.InitSequencer` does on the board),
the layer's memory image written through the host port (as the UART ``W`` command
does), ``start``, ``done``, the output read back through the host port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth import Shape

from winnow.hw.config import AccelConfig
from winnow.hw.memory_image import LayerImage, layer_image
from winnow.hw.ports import AxiReadSignature, AxiWriteSignature
from winnow.hw.stream_abi import FAULTS, StreamConfig
from winnow.hw.stream_timing import StreamCycles, stream_cycles
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.files.layer_file import SparseLayer
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import ROOT, SimulationError, build_dir_lock, refresh_verilog, run_cocotb, \
    simulator_available
from winnow.sim.stream_run import STREAM_TOP, stream_verilog_text

from winnow.boards.dram import DramConfig, DramCore, generate_core

TOP = "winnow_stream_dram"
#: The AXI signals LiteDRAM's user port has (the array's lock, cache and prot have no counterpart).
LITEDRAM_AXI = {"valid", "ready", "id", "addr", "len", "size", "burst", "data", "resp", "last", "strb"}


@dataclass
class DramResult:
    name: str
    out: np.ndarray | None
    cycles: int
    model: StreamCycles
    error: bool
    faults: list
    error_addr: int
    timed_out: bool
    image: LayerImage


def sim_core(build_dir) -> DramCore:
    """The simulation LiteDRAM core of the ULX3S top's configuration."""
    return generate_core(DramConfig(sim=True, name="litedram_sim"), Path(build_dir) / "litedram")


def wrapper_verilog(core: DramCore, stream: StreamConfig) -> str:
    """``winnow_stream_dram``: ``winnow_stream`` on the core's AXI port; control, status and both Wishbone ports out."""
    a, w = stream.addr_bits, stream.data_bits
    axi = [(n, Shape.cast(f.shape).width) for sig in (AxiReadSignature(a, w), AxiWriteSignature(a, w))
           for n, f in sig.members.items() if n[1:] in LITEDRAM_AXI or n[2:] in LITEDRAM_AXI]
    lines = [f"module {TOP} (",
             "    input wire clk, input wire aresetn, input wire start,",
             f"    input wire [{a - 1}:0] desc_addr, input wire [23:0] passes,",
             "    output wire busy, output wire done, output wire error,",
             f"    output wire [{len(FAULTS) - 1}:0] fault, output wire [{a - 1}:0] error_addr,",
             "    output wire [31:0] cycles, output wire [31:0] compute_cycles, output wire [23:0] pass_index,",
             "    output wire init_done, output wire init_error,"]
    wb = []
    for prefix, core_prefix in (("ctl", "wb_ctrl"), ("host", "user_port_host")):
        for sig in ("adr", "dat_w", "dat_r", "sel", "cyc", "stb", "we", "ack", "err"):
            d, width = core.ports[f"{core_prefix}_{sig}"]
            wb.append(f"    {d} wire [{width - 1}:0] {prefix}_{sig}")
            lines.append(wb[-1] + ",")
    lines[-1] = lines[-1].rstrip(",")
    lines.append(");")
    for n, width in axi:
        lines.append(f"    wire [{width - 1}:0] axi_{n};")
    conn = [f".m_axi_{n}(axi_{n})" for n, _ in axi]
    lines.append(f"    {STREAM_TOP} array (.aclk(clk), .aresetn(aresetn), .start(start), .desc_addr(desc_addr), "
                 ".passes(passes), .busy(busy), .done(done), .error(error), .fault(fault), .error_addr(error_addr), "
                 ".cycles(cycles), .compute_cycles(compute_cycles), .pass_index(pass_index),")
    # the array's lock/cache/prot outputs stay unconnected: LiteDRAM has none
    lines.append("        " + ", ".join(conn) + ");")
    dconn = []
    for n, width in axi:
        cw = core.ports[f"user_port_axi_{n}"][1]
        src = f"axi_{n}" if cw == width else f"{{{cw - width}'b0, axi_{n}}}"
        dconn.append(f".user_port_axi_{n}({src})")
    for prefix, core_prefix in (("ctl", "wb_ctrl"), ("host", "user_port_host")):
        for sig in ("adr", "dat_w", "dat_r", "sel", "cyc", "stb", "we", "ack", "err"):
            dconn.append(f".{core_prefix}_{sig}({prefix}_{sig})")
    extra = [p for p in ("wb_ctrl_bte", "wb_ctrl_cti") if p in core.ports]
    dconn += [f".{p}(0)" for p in extra] + [".clk(clk)", ".sim_trace(1'b0)", ".init_done(init_done)",
                                            ".init_error(init_error)"]
    lines.append(f"    {core.config.name} dram (" + ", ".join(dconn) + ");")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _public_ports(core: DramCore, stream: StreamConfig) -> str:
    names = ["clk", "aresetn", "start", "desc_addr", "passes", "busy", "done", "error", "fault", "error_addr",
             "cycles", "compute_cycles", "pass_index", "init_done", "init_error"]
    names += [f"{p}_{s}" for p in ("ctl", "host") for s in ("adr", "dat_w", "dat_r", "sel", "cyc", "stb", "we", "ack",
                                                            "err")]
    return "`verilator_config\n" + "".join(f'public_flat_rw -module "{TOP}" -var "{n}"\n' for n in names)


def run_stream_dram(cfg: AccelConfig, cases: list, build_dir=None, cxx_opt: str = "-O0") -> list[DramResult]:
    """Run ``cases`` (:class:`winnow.sim.stream_run.StreamCase`: layer and input) through LiteDRAM (module docstring)."""
    reason = simulator_available("verilator")
    if reason:
        raise SimulationError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim" / "stream_dram").resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    core = sim_core(build_dir)
    stream = StreamConfig(data_bits=core.config.data_bits, addr_bits=core.axi_addr_bits)
    with build_dir_lock(build_dir):
        arr = refresh_verilog(build_dir, f"{STREAM_TOP}.v", {"config": cfg.to_dict(), "stream": stream.to_dict(),
                                                             "hw": source_digest("hw"), "cxx_opt": cxx_opt},
                              lambda: stream_verilog_text(cfg, stream))
        dram_v = atomic_write_text(build_dir / core.verilog.name, core.verilog.read_text())
        top_v = atomic_write_text(build_dir / f"{TOP}.v", wrapper_verilog(core, stream))
        specs, images = [], []
        for i, case in enumerate(cases):
            image = layer_image(case.layer, cfg, stream)
            blobs = list(image.blobs) + [(image.input_addr, image.input_bytes(case.xq))]
            data, index = bytearray(), []
            for addr, b in blobs:
                index.append((addr, len(data), len(b)))
                data += b
            (build_dir / f"case{i}.bin").write_bytes(bytes(data))
            model = stream_cycles(image)
            specs.append({"name": case.name or case.layer.name, "data": str(build_dir / f"case{i}.bin"),
                          "blobs": index, "desc_addr": image.desc_addr, "passes": image.passes,
                          "max_cycles": 20 * model.cycles + 50000, "init_writes": core.init_writes,
                          "reads": [(image.output_addr, image.end - image.output_addr)],
                          "out": str(build_dir / f"case{i}.out")})
            images.append((image, model))
        case_file = atomic_write_json(build_dir / "cases.json", specs)
        results = run_cocotb("verilator", [arr, dram_v, top_v], TOP, _public_ports(core, stream), build_dir,
                             "winnow.sim.tb_stream_dram", case_file, cxx_opt)
    out = []
    for spec, (image, model), r in zip(specs, images, results):
        raw = Path(spec["out"]).read_bytes()

        def read(addr, nbytes, _raw=raw, _base=image.output_addr):
            return _raw[addr - _base:addr - _base + nbytes]

        ok = not r["error"] and not r["timed_out"]
        out.append(DramResult(name=spec["name"], out=image.read_output(read) if ok else None, cycles=r["cycles"],
                              model=model, error=bool(r["error"]),
                              faults=[f for i, f in enumerate(FAULTS) if r["fault"] >> i & 1],
                              error_addr=r["error_addr"], timed_out=r["timed_out"], image=image))
    return out
