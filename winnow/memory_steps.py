"""The ``--memory`` steps of ``winnow sim`` and ``winnow cycles``: layers through the streaming array.

* :func:`simulate` runs layers (files, a random layer) on the streaming array's RTL with
  cocotbext-axi's ``AxiRam`` as the external memory and checks each output against the
  reference and each run's cycles against :func:`winnow.hw.stream_timing.stream_cycles`;
* :func:`simulate_network` runs an exported network layer after layer through memory
  (:func:`winnow.sim.stream_network.run_network`);
* :func:`cycles` gives per layer the streaming array's exact cycles, sparse and dense
  (every weight streamed: more load words and more compute), where they go (compute,
  descriptors, load words, input windows, outputs), the roofline floor
  max(⌈T·nnz/(P·L)⌉, bytes moved / bytes per cycle) and whether the layer is compute- or
  memory-bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from winnow.model.errors import WinnowError

from .steps import Progress, array_label, layer_cells


def _stream_config(cfg):
    from winnow.hw.stream_abi import StreamConfig, check_stream

    s = StreamConfig()
    check_stream(cfg, s)
    return s


def gen(cfg, out: Path, progress: Progress = print) -> dict:
    """``winnow_stream.v`` (the streaming array: tiled array, controller, AXI4 master) and stream.json beside it."""
    from winnow.hw.stream_abi import desc_words, pass_layout
    from winnow.model.files.atomic import atomic_write_json, atomic_write_text
    from winnow.sim.stream_run import STREAM_TOP, stream_verilog_text

    s = _stream_config(cfg)
    t0 = time.time()
    progress(f"      {STREAM_TOP}.v: the streaming array ({s.data_bits}-bit AXI4 master) …")
    path = atomic_write_text(Path(out) / f"{STREAM_TOP}.v", stream_verilog_text(cfg, s))
    layout = pass_layout(cfg, s)
    doc = {"schema": "winnow-stream/1", "module": STREAM_TOP, "memory": s.to_dict(),
           "descriptor_words": desc_words(cfg, s),
           "descriptor": {name: {"offset": f.offset, "bits": f.width} for name, f in layout}}
    atomic_write_json(Path(out) / "stream.json", doc)
    progress(f"      {path.name}: {path.stat().st_size / 1e6:.2f} MB of Verilog in {time.time() - t0:.1f} s; stream.json")
    return {"verilog": path.name, "description": "stream.json", **doc}


def simulate(cfg, items, simulator: str, build_dir: Path, progress: Progress = print, labels=None) -> dict:
    """Run ``items`` = [(name, SparseLayer, xq)] through memory on the RTL; raises WinnowError on any difference."""
    from winnow.sim.cocotb_run import simulator_available
    from winnow.sim.layers import reference_output
    from winnow.sim.stream_run import StreamCase, run_stream

    reason = simulator_available(simulator)
    if reason:
        raise WinnowError(f"cannot simulate under {simulator}: {reason}")
    s = _stream_config(cfg)
    labels = labels or [f"layer {name}" for name, _, _ in items]
    t0 = time.time()
    progress(f"      {simulator}: the streaming array (AXI4, {s.data_bits}-bit words) with AxiRam; "
             f"{len(items)} layer(s), build cached in {build_dir}")
    res = run_stream(cfg, [StreamCase(layer, xq, name) for name, layer, xq in items], simulator, stream=s,
                     build_dir=build_dir)
    rows = []
    for (name, layer, xq), label, r in zip(items, labels, res):
        if r.error or r.timed_out or r.out is None:
            raise WinnowError(f"{label}: the streaming run stopped ({', '.join(r.faults) or 'no done'} "
                              f"at 0x{r.error_addr:x})")
        want = reference_output(layer, xq)
        if not np.array_equal(r.out, want):
            where = tuple(int(v) for v in np.argwhere(r.out != want)[0])
            raise WinnowError(f"{label}: the RTL output differs from the reference at (k, h, w) = {where}: "
                              f"RTL {r.out[where]}, reference {want[where]}")
        if r.cycles != r.model.cycles:
            raise WinnowError(f"{label}: the streaming run took {r.cycles} cycles, the model says {r.model.cycles}")
        rows.append(_row(name, want.size, r.cycles, r.model.to_dict(), r.compute_cycles, r.image.passes,
                         r.run_wall_s))
        progress(f"      {label}: {r.image.passes} passes through memory, {want.size:,} outputs bit-exact, "
                 f"{r.cycles:,} cycles = model (array {r.compute_cycles:,})")
    return {"simulator": simulator, "memory": s.to_dict(), "layers": rows, "all_bit_exact": True,
            "seconds": round(time.time() - t0, 1), "build_dir": str(build_dir), "waves": []}


def _row(name, outputs, cycles, model, compute, passes, wall) -> dict:
    return {"name": name, "bit_exact": True, "outputs": int(outputs), "rtl_cycles": cycles,
            "model_cycles": model["cycles"], "cycles_equal": cycles == model["cycles"], "compute_cycles": compute,
            "runs": passes, "breakdown": model, "run_wall_s": round(wall, 4), "cycles_per_s": cycles / max(wall, 1e-9)}


def simulate_network(cfg, network_dir: Path, image, simulator: str, build_dir: Path, progress: Progress = print,
                     layers=None) -> dict:
    """The network's convolutions through memory, each fed what the RTL wrote before it (host ops between)."""
    from winnow.sim.cocotb_run import simulator_available
    from winnow.sim.stream_network import run_network

    reason = simulator_available(simulator)
    if reason:
        raise WinnowError(f"cannot simulate under {simulator}: {reason}")
    s = _stream_config(cfg)
    t0 = time.time()
    progress(f"      {simulator}: the network through the streaming array's memory (AxiRam), layer after layer")
    steps, _ = run_network(network_dir, image, cfg, simulator, stream=s, build_dir=build_dir, progress=progress,
                           layers=layers)
    rows = []
    for st in steps:
        if not st.bit_exact:
            raise WinnowError(f"layer {st.name}: the RTL output through memory differs from the reference")
        if not st.matches_network:
            raise WinnowError(f"layer {st.name}: the reference and the RTL agree, but differ from the exported "
                              f"network's own activation")
        if st.cycles != st.model_cycles:
            raise WinnowError(f"layer {st.name}: the streaming run took {st.cycles} cycles, the model says "
                              f"{st.model_cycles}")
        rows.append(_row(st.name, st.outputs, st.cycles, st.model, st.compute_cycles, st.passes, st.run_wall_s))
    return {"simulator": simulator, "memory": s.to_dict(), "chained": True, "layers": rows, "all_bit_exact": True,
            "seconds": round(time.time() - t0, 1), "build_dir": str(build_dir), "waves": []}


def cycles(cfg, layers) -> dict:
    """Per layer: the streaming array's exact cycles (sparse, dense), their breakdown, the roofline floor, the bound."""
    from winnow.hw.memory_image import layer_image
    from winnow.hw.stream_timing import stream_cycles

    s = _stream_config(cfg)
    dense_cfg = cfg.changed(mode="dense")
    rows = []
    for index, (name, layer) in enumerate(layers):
        image = layer_image(layer, cfg, s)
        sp = stream_cycles(image)
        dn = stream_cycles(layer_image(layer, dense_cfg, s))
        T = image.plan.geometry.num_tiles
        compute_floor = -(-T * layer.nnz // cfg.multipliers)
        memory_floor = -(-(sp.bytes_read + sp.bytes_written) // s.word_bytes)
        floor = max(compute_floor, memory_floor)
        rows.append({"index": index, "name": name, "C": layer.in_channels, "K": layer.out_channels,
                     "size": list(layer.size), "density": layer.density, "sparse": sp.to_dict(),
                     "dense": dn.to_dict(), "speedup": dn.cycles / sp.cycles, "compute_floor": compute_floor,
                     "memory_floor": memory_floor, "floor": floor, "efficiency": floor / sp.cycles,
                     "bound": "compute" if compute_floor >= memory_floor else "memory",
                     "compute_share": sp.compute / sp.cycles})
    tot = {k: sum(r[k] for r in rows) for k in ("floor", "compute_floor", "memory_floor")}
    tot.update(sparse=sum(r["sparse"]["cycles"] for r in rows), dense=sum(r["dense"]["cycles"] for r in rows))
    tot["speedup"] = tot["dense"] / tot["sparse"]
    tot["efficiency"] = tot["floor"] / tot["sparse"]
    return {"array": array_label(cfg) + ", streaming (external memory)", "multipliers": cfg.multipliers,
            "memory": {**s.to_dict(), "bytes_per_cycle": s.word_bytes}, "layers": rows, "network": tot}


def cycles_markdown(doc: dict) -> str:
    lines = [f"Array {doc['array']} ({doc['multipliers']} multipliers), a {doc['memory']['data_bits']}-bit AXI4 port "
             f"({doc['memory']['bytes_per_cycle']} B/cycle); dense = dense Winograd on the same array through the same "
             "memory; floor = max(⌈T·nnz/(P·L)⌉, bytes moved / bytes per cycle); compute = the array's own share.", "",
             "| # | layer | C→K | size | density | passes | sparse cycles | compute | load words | windows | dense cycles "
             "| speedup | floor | efficiency | bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(doc["layers"]):
        s = r["sparse"]
        lines.append(f"{layer_cells(r, i)} {s['passes']} | {s['cycles']:,} | {s['compute'] / s['cycles']:.0%} | "
                     f"{s['loads'] / s['cycles']:.0%} | {s['window'] / s['cycles']:.0%} | {r['dense']['cycles']:,} | "
                     f"{r['speedup']:.2f} | {r['floor']:,} | {r['efficiency']:.3f} | {r['bound']} |")
    t = doc["network"]
    lines.append(f"| | **network** | | | | | {t['sparse']:,} | | | | {t['dense']:,} | {t['speedup']:.2f} | "
                 f"{t['floor']:,} | {t['efficiency']:.3f} | |")
    return "\n".join(lines) + "\n"
