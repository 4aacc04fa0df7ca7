# amaranth: UnusedElaboratable=no
"""Run layers on the streaming array's RTL with cocotbext-axi's ``AxiRam`` as the external memory.

``run_stream(cfg, [StreamCase …], simulator)`` writes ``winnow_stream.v``
(:class:`winnow.hw.stream_array.StreamTop` of ``cfg`` and the memory port's
:class:`~winnow.hw.stream_abi.StreamConfig`) into the build directory, builds it once
(rebuilt when the configuration or hw/ changes), and runs each case from a fresh reset:
the layer's memory image (:func:`winnow.hw.memory_image.layer_image`) and its input map
are written into the RAM, ``start`` runs every pass, and the output region is read
back and assembled into the layer's output (K, Ho, Wo). Each result carries the RTL's
cycles beside the exact model's (:func:`winnow.hw.stream_timing.stream_cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from winnow.hw.config import AccelConfig
from winnow.hw.memory_image import LayerImage, layer_image
from winnow.hw.stream_abi import FAULTS, StreamConfig
from winnow.hw.stream_timing import StreamCycles, stream_cycles
from winnow.model.files.atomic import atomic_write_json
from winnow.model.files.layer_file import SparseLayer
from winnow.model.sources import source_digest
from winnow.sim.cocotb_run import (ROOT, SimulationError, build_dir_lock, refresh_verilog, run_cocotb,
                                   simulator_available)

STREAM_TOP = "winnow_stream"
#: Simulation model optimisation: the runs are long (every pass through memory), so -O2.
CXX_OPT = "-O2"


@dataclass
class StreamCase:
    """One run: a layer and its input; optional RAM throttling, fault ranges and descriptor edits."""

    layer: SparseLayer
    xq: np.ndarray
    name: str = ""
    pause: dict = field(default_factory=dict)
    faults: list = field(default_factory=list)
    passes: int | None = None  #: run only this many passes (default: all)
    edit: object = None  #: edit(image, blobs) → blobs: tamper with the memory before the run (bad-input tests)


@dataclass
class StreamResult:
    name: str
    out: np.ndarray | None
    cycles: int
    compute_cycles: int
    start_to_done: int
    model: StreamCycles
    error: bool
    faults: list
    error_addr: int
    timed_out: bool
    run_wall_s: float
    image: LayerImage


def stream_verilog_text(cfg: AccelConfig, stream: StreamConfig) -> str:
    from winnow.hw.generate import _convert
    from winnow.hw.stream_array import StreamTop

    return _convert(StreamTop(cfg, stream), STREAM_TOP)


def _public_ports(cfg: AccelConfig, stream: StreamConfig) -> str:
    from winnow.hw.stream_array import StreamTop

    lines = ["`verilator_config"] + [f'public_flat_rw -module "{STREAM_TOP}" -var "{p}"'
                                     for p in StreamTop(cfg, stream).signature.members]
    return "\n".join(lines) + "\n"


def run_stream(cfg: AccelConfig, cases: list[StreamCase], simulator: str = "verilator",
               stream: StreamConfig = StreamConfig(), build_dir=None, cxx_opt: str = CXX_OPT) -> list[StreamResult]:
    """Run ``cases`` on the streaming array of ``cfg`` (module docstring)."""
    reason = simulator_available(simulator)
    if reason:
        raise SimulationError(reason)
    build_dir = Path(build_dir or ROOT / "build" / "sim" / f"stream_{simulator}").resolve()
    with build_dir_lock(build_dir):
        vfile = refresh_verilog(build_dir, f"{STREAM_TOP}.v", {"config": cfg.to_dict(), "stream": stream.to_dict(),
                                                               "hw": source_digest("hw"), "cxx_opt": cxx_opt},
                                lambda: stream_verilog_text(cfg, stream))
        specs, images = [], []
        for i, case in enumerate(cases):
            image = layer_image(case.layer, cfg, stream)
            blobs = list(image.blobs) + [(image.input_addr, image.input_bytes(case.xq))]
            if case.edit is not None:
                blobs = case.edit(image, blobs)
            data = bytearray()
            index = []
            for addr, b in blobs:
                index.append((addr, len(data), len(b)))
                data += b
            data_file = build_dir / f"case{i}.bin"
            data_file.write_bytes(bytes(data))
            out_addr, out_end = image.output_addr, image.end
            npass = image.passes if case.passes is None else case.passes
            model = stream_cycles(image)
            specs.append({"name": case.name or f"{case.layer.name}", "ram_size": image.end, "data": str(data_file),
                          "blobs": index, "desc_addr": image.desc_addr, "passes": npass, "pause": case.pause,
                          "faults": case.faults, "max_cycles": 3 * model.cycles + 20000,
                          "reads": [(out_addr, out_end - out_addr)], "out": str(build_dir / f"case{i}.out")})
            images.append((image, model))
        case_file = atomic_write_json(build_dir / "cases.json", specs)
        results = run_cocotb(simulator, [vfile], STREAM_TOP, _public_ports(cfg, stream), build_dir,
                             "winnow.sim.tb_stream", case_file, cxx_opt)
        out = []
        for spec, (image, model), r in zip(specs, images, results):
            raw = Path(spec["out"]).read_bytes()
            base = image.output_addr

            def read(addr, nbytes, _raw=raw, _base=base):
                return _raw[addr - _base:addr - _base + nbytes]

            ok = not r["error"] and not r["timed_out"]
            y = image.read_output(read) if ok and spec["passes"] == image.passes else None
            out.append(StreamResult(name=spec["name"], out=y, cycles=r["cycles"], compute_cycles=r["compute_cycles"],
                                    start_to_done=r["start_to_done"], model=model, error=bool(r["error"]),
                                    faults=[f for i, f in enumerate(FAULTS) if r["fault"] >> i & 1],
                                    error_addr=r["error_addr"], timed_out=r["timed_out"],
                                    run_wall_s=r["run_wall_s"], image=image))
        return out
