"""Plain Verilog of the HostLink top for vendor flows and simulators.

``export_verilog(cfg, out_dir, divisor=...)`` writes

* ``winnow_array.v`` and ``params.json``: the array, exactly as :func:`winnow.hw.generate.generate` writes it;
* ``winnow_hostlink.v``: the UART receiver, command processor and transmitter, with the
  array instantiated by module name (ports ``clk``, ``rst`` (synchronous, active high),
  ``rx``, ``tx``, ``busy``, ``done``);
* ``hostlink.json``: divisor, timeout and what INFO reports (port widths, configuration id).

All writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

from winnow.hw.config import AccelConfig
from winnow.hw.generate import generate
from winnow.model.files.atomic import atomic_write_json, atomic_write_text

from winnow.boards.host_link import HostLink, link_info
from winnow.boards.uart import check_divisor

#: Module name of the HostLink top in the Verilog export.
TOP = "winnow_hostlink"


def hostlink_verilog(cfg: AccelConfig, *, divisor: int, timeout_bytes: int = 1024) -> str:
    """Verilog of the HostLink top (the array is an instance of module ``winnow_array``)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    top = HostLink(cfg, divisor=divisor, timeout_bytes=timeout_bytes, array="instance")
    return verilog.convert(top, name=TOP, emit_src=False)


def link_params(cfg: AccelConfig, *, divisor: int, timeout_bytes: int = 1024) -> dict:
    check_divisor(divisor)
    i = link_info(cfg)
    return {"schema": "winnow-hostlink/1", "top": TOP, "divisor": divisor, "timeout_bytes": timeout_bytes,
            "protocol_version": i.version, "load_bits": i.load_bits, "bank_bits": i.bank_bits,
            "addr_bits": i.addr_bits, "data_bits": i.data_bits, "config_id": f"{i.config_id:08x}",
            "load_bytes": i.load_bytes, "entry_bytes": i.entry_bytes, "data_bytes": i.data_bytes}


def export_verilog(cfg: AccelConfig, out_dir, *, divisor: int, timeout_bytes: int = 1024) -> list[Path]:
    """Write the array, the HostLink top, params.json and hostlink.json; return the Verilog paths."""
    out_dir = Path(out_dir)
    array_v = generate(cfg, out_dir)
    top_v = atomic_write_text(out_dir / f"{TOP}.v", hostlink_verilog(cfg, divisor=divisor, timeout_bytes=timeout_bytes))
    atomic_write_json(out_dir / "hostlink.json", link_params(cfg, divisor=divisor, timeout_bytes=timeout_bytes))
    return [array_v, top_v]
