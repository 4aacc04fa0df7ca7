"""PE-array benchmarks: simulation speed of the generated RTL, and VGG-16 cycle tables.

Usage::

    python -m bench.hw_run             # full run (a few minutes: Verilator build + Icarus run)
    python -m bench.hw_run --quick     # smaller sim-speed layer, model tables only for F(4,3)
    python -m bench.hw_run --no-icarus # skip the Icarus speed run

Writes ``bench/results/hw.json`` atomically and prints the Markdown tables rendered
from it (docs/hardware.md quotes them).

* ``sim_speed``: C = K = 32, 16×16, F(4,3), density 0.3 on P = 4, L = 4; memories are
  loaded through the load port, then the run goes from ``start`` to ``done`` with no
  Python in the loop; cycles/s = RTL cycles / wall time of that run. The outputs are
  checked against the reference and the cycles against the model.
* ``vgg16``: the 13 conv layers of VGG-16 (224×224, padding 1) at Winograd-domain
  densities 0.5, 0.3, 0.2, 0.1 (uniform random masks: each row U_p[k, :] holds
  Binomial(C, d) non-zeros), F(4,3) and F(6,3), on the arrays of :data:`ARRAYS`
  (P·L = 64, k_block = 64): cycles from the exact cycle model (sparse, dense on the
  same array) against the floor ⌈T·nnz/(P·L)⌉.
* ``roofline``: VGG-16 and the CIFAR-10 VGG of :data:`CIFAR_VGG` on the streaming
  array's tiling (:mod:`winnow.hw.tiling`, buffers :data:`TILED_BUFFERS`) at the
  bandwidths of :data:`BANDWIDTHS`: per layer the compute floor ⌈T·nnz/(P·L)⌉, the
  memory floor ⌈bytes/bandwidth⌉ (whole bus beats of input windows, weight segments,
  quantization words and outputs), which one binds, and dense/sparse floors (what
  sparsity gains once memory counts). ``--only roofline`` recomputes just these
  tables into the existing hw.json (seconds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from winnow.explore import networks as _networks
from winnow.model.files.atomic import atomic_write_json

SCHEMA = "winnow-bench-hw/1"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "hw.json"
ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"

#: VGG-16 conv layers: (name, C, K, H=W) (the shape tables live with the exploration that also uses them).
VGG16 = _networks.VGG16

#: P·L of the VGG-16 tables.
MULTIPLIERS = 64
#: Output-channel block of the VGG-16 arrays: the accumulators hold 64 rows (not 512).
K_BLOCK = 64

#: Arrays evaluated per tile: (P, L, clusters S, otu_lanes). The first row of each tile is the
#: plain position-per-PE array with a one-lane OTU (the design before clusters and OTU lanes);
#: the starred one is the recommended array.
ARRAYS = {
    4: [(4, 16, 1, 1), (4, 16, 1, 4), (8, 8, 1, 4), (16, 4, 1, 4), (8, 8, 2, 4), (16, 4, 4, 4), (32, 2, 8, 2)],
    6: [(8, 8, 1, 1), (8, 8, 1, 4), (16, 4, 1, 4), (32, 2, 1, 2), (64, 1, 1, 1)],
}
RECOMMENDED = {4: (16, 4, 4, 4), 6: (32, 2, 1, 2)}

#: CIFAR-10 VGG conv layers: conv 3→64→64 | pool | 128, 128 | pool | 256 × 4 on 32×32 inputs.
CIFAR_VGG = _networks.CIFAR_VGG
#: Memory bandwidths of the roofline tables, bytes per array cycle, with the bus width that carries them:
#: a 16-bit SDR SDRAM at the array's clock (ULX3S), a 64-bit port at full rate, a 256-bit port (HBM-class).
BANDWIDTHS = [(2.0, 8), (8.0, 8), (32.0, 32)]
#: Densities of the roofline tables (1.0: dense Winograd on the same array).
ROOFLINE_DENSITIES = (1.0, 0.3, 0.1)
#: On-chip buffers of the streaming array in the roofline tables (winnow.hw.tiling.TiledBuffers fields).
TILED_BUFFERS = {"c_block": 32, "patch_h": 8, "patch_w": 8, "stream_depth": 4096}


def sim_speed(simulator: str, size: int = 16, channels: int = 32, density: float = 0.3) -> dict:
    """Cycles/s of the generated RTL under ``simulator`` on one F(4,3) layer."""
    from winnow.hw.config import AccelConfig
    from winnow.hw.cycle_model import packed_cycles
    from winnow.hw.packer import pack_layer
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.sim.cocotb_run import run_layers, simulator_available
    from winnow.sim.layers import random_input, random_layer, reference_output

    reason = simulator_available(simulator)
    if reason:
        return {"simulator": simulator, "skipped": reason}
    dp = DatapathConfig(m=4, r=3, c_max=channels)
    cfg = AccelConfig(datapath=dp, pes=4, lanes=4, k_max=channels, h_max=size, w_max=size)
    layer = random_layer(dp, C=channels, K=channels, H=size, W=size, density=density, seed=1)
    packed = pack_layer(layer, cfg)
    xq = random_input(layer, seed=2)
    t0 = time.perf_counter()
    res = run_layers(cfg, [(packed, xq, "speed")], simulator, build_dir=BUILD / f"{simulator}_speed")[0]
    total = time.perf_counter() - t0
    exact = bool(np.array_equal(res.out, reference_output(layer, xq)))
    model = packed_cycles(packed).cycles
    return {"simulator": simulator, "layer": {"C": channels, "K": channels, "H": size, "W": size, "tile": "F(4,3)",
                                              "density": density, "nnz": layer.nnz},
            "array": {"pes": cfg.pes, "lanes": cfg.lanes}, "cycles": res.cycles, "model_cycles": model,
            "bit_exact": exact, "run_wall_s": res.run_wall_s, "cycles_per_s": res.cycles / res.run_wall_s,
            "load_wall_s": res.load_wall_s, "total_wall_s_incl_build": total}  # fmt: skip


def vgg16_tables(tiles=(4, 6), densities=(0.5, 0.3, 0.2, 0.1), seed: int = 0) -> list[dict]:
    """Model cycles of every VGG-16 conv layer, sparse and dense, per tile, array and density.

    Masks are uniform random: each row U_p[k, :] holds Binomial(C, d) non-zeros.
    """
    from winnow.hw.config import AccelConfig
    from winnow.hw.cycle_model import shape_cycles
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.model.algebra.tiling import ConvGeometry

    rows = []
    rng = np.random.default_rng(seed)
    for m in tiles:
        dp = DatapathConfig(m=m, r=3, c_max=512)
        masks = {(d, name): rng.binomial(C, d, size=(dp.positions, K)) for d in densities for name, C, K, _ in VGG16}
        for (pes, lanes, clusters, otu_lanes), d in ((a, d) for a in ARRAYS[m] for d in densities):
            cfg = AccelConfig(datapath=dp, pes=pes, lanes=lanes, clusters=clusters, otu_lanes=otu_lanes,
                              k_max=512, k_block=K_BLOCK, h_max=224, w_max=224,
                              stream_depth=1)  # model only: no memories are built
            for name, C, K, H in VGG16:
                geom = ConvGeometry.of((H, H), 1, m, 3)
                rep = shape_cycles(cfg, in_channels=C, out_channels=K, tiles=geom.num_tiles,
                                   nnz_rows=masks[(d, name)])
                s, dn = rep["sparse"], rep["dense"]
                rows.append({"tile": f"F({m},3)", "pes": pes, "lanes": lanes, "clusters": clusters,
                             "otu_lanes": otu_lanes, "k_block": K_BLOCK, "density": d, "layer": name,
                             "C": C, "K": K, "H": H, "sparse": s.to_dict(), "dense_cycles": dn.cycles,
                             "speedup": dn.cycles / s.cycles, "efficiency": s.efficiency,
                             "recommended": (pes, lanes, clusters, otu_lanes) == RECOMMENDED[m]})  # fmt: skip
    return rows


def roofline_tables(tiles=(4, 6), densities=ROOFLINE_DENSITIES, seed: int = 0) -> dict:
    """Compute and memory floors of every VGG-16 and CIFAR-10 VGG layer on the ★ arrays' tiling.

    Masks as in :func:`vgg16_tables`; a layer's stream entries are its non-zeros (dense:
    every weight). Returns the arrays' on-chip buffer sizes and one row per
    (network, tile, density, bandwidth, layer).
    """
    from winnow.hw.config import AccelConfig
    from winnow.hw.tiling import MemoryPort, TiledBuffers, plan_layer, roofline
    from winnow.model.integer.datapath import DatapathConfig

    rng = np.random.default_rng(seed)
    buffers = TiledBuffers(**TILED_BUFFERS)
    arrays, rows = [], []
    for m in tiles:
        pes, lanes, clusters, otu = RECOMMENDED[m]
        dp = DatapathConfig(m=m, r=3, c_max=512)
        cfg = AccelConfig(datapath=dp, pes=pes, lanes=lanes, clusters=clusters, otu_lanes=otu, k_max=512,
                          k_block=K_BLOCK, h_max=8, w_max=8, stream_depth=1)
        arrays.append({"tile": f"F({m},3)", "pes": pes, "lanes": lanes, "clusters": clusters, "k_block": K_BLOCK,
                       **TILED_BUFFERS, "memories": buffers.memories(cfg), "memory_bits": buffers.memory_bits(cfg)})
        for net, layers in (("VGG-16", VGG16), ("CIFAR-10 VGG", CIFAR_VGG)):
            for name, C, K, H in layers:
                plan = plan_layer(cfg, buffers, in_channels=C, out_channels=K, size=(H, H), padding=1)
                floors = {}
                for d in densities:
                    nnz = C * K * dp.positions if d == 1.0 else int(rng.binomial(C, d, size=(dp.positions, K)).sum())
                    for bw, bus in BANDWIDTHS:
                        r = roofline(plan, MemoryPort(bus_bytes=bus, bytes_per_cycle=bw), nnz=nnz, entries=nnz)
                        floors[(d, bw)] = r.floor
                        rows.append({"network": net, "tile": f"F({m},3)", "layer": name, "C": C, "K": K, "H": H,
                                     "density": d, "bandwidth": bw, "bus_bytes": bus, "nnz": nnz,
                                     "plan": plan.to_dict(), **r.to_dict()})
                for row in rows[-len(densities) * len(BANDWIDTHS):]:
                    row["dense_over_sparse"] = floors[(1.0, row["bandwidth"])] / row["floor"] \
                        if 1.0 in densities else None
    return {"buffers": TILED_BUFFERS, "arrays": arrays, "rows": rows}


def render_roofline(roof: dict) -> str:
    lines = []
    for a in roof["arrays"]:
        mems = ", ".join(f"{k} {v['bits'] / 1e6:.2f}" for k, v in a["memories"].items())
        lines.append(f"* {a['tile']} on {a['pes']}×{a['lanes']}, S={a['clusters']}, k_block = {a['k_block']}: "
                     f"{a['memory_bits'] / 1e6:.2f} Mbit on chip ({mems} Mbit)")
    lines.append("")
    keys = sorted({(r["network"], r["tile"]) for r in roof["rows"]}, key=lambda k: (k[0] != "VGG-16", k[1]))
    for net, tile in keys:
        sel = [r for r in roof["rows"] if r["network"] == net and r["tile"] == tile]
        bws = sorted({r["bandwidth"] for r in sel})
        dens = sorted({r["density"] for r in sel}, reverse=True)
        sparse = [d for d in dens if d < 1.0]
        head = "| layer | C→K | H | patches × blocks × C blocks |"
        for bw in bws:
            head += f" {bw:g} B/cycle: " + " / ".join(f"d={d:g}" for d in dens) + " floor (Mcycles), bound |"
            head += f" gain at {bw:g} |"
        lines += [f"#### {net}, {tile}", "", head, "|" + "---|" * (4 + 2 * len(bws))]
        names = list(dict.fromkeys(r["layer"] for r in sel))
        tot = {(d, bw): 0 for d in dens for bw in bws}
        for name in names:
            rr = {(r["density"], r["bandwidth"]): r for r in sel if r["layer"] == name}
            r0 = next(iter(rr.values()))
            p = r0["plan"]
            line = f"| {name} | {r0['C']}→{r0['K']} | {r0['H']} | {p['patches']} × {p['blocks']} × {p['c_blocks']} |"
            for bw in bws:
                cells = []
                for d in dens:
                    r = rr[(d, bw)]
                    tot[(d, bw)] += r["floor"]
                    cells.append(f"{r['floor'] / 1e6:.3f}{'ᴹ' if r['bound'] == 'memory' else ''}")
                line += " " + " / ".join(cells) + " |"
                line += " " + " / ".join(f"{rr[(d, bw)]['dense_over_sparse']:.2f}" for d in sparse) + " |"
            lines.append(line)
        line = "| **network** | | | |"
        for bw in bws:
            line += " " + " / ".join(f"{tot[(d, bw)] / 1e6:.3f}" for d in dens) + " |"
            line += " " + " / ".join(f"{tot[(1.0, bw)] / tot[(d, bw)]:.2f}" for d in sparse) + " |"
        lines += [line, ""]
    return "\n".join(lines)


#: Full-size layers run on the RTL of a tiled-mode array (``--only tiled``): (name, C, K, H=W).
TILED_LAYERS = [("CIFAR-10 VGG conv6", 256, 256, 32), ("VGG-16 conv5_1", 512, 512, 14)]
#: The tiled-mode array of those runs: F(4,3), 8 PEs × 4 lanes in 2 clusters, blocks of 16 output channels,
#: C blocks of 32 channels, 18×18-pixel windows (patches of 4×4 tiles).
TILED_ARRAY = {"pes": 8, "lanes": 4, "clusters": 2, "otu_lanes": 4, "k_max": 16, "h_max": 18, "w_max": 18,
               "pad_max": 0, "c_block": 32}


def tiled_rtl(simulator: str = "verilator", layers=TILED_LAYERS, density: float = 0.3) -> dict:
    """Full-size layers through the tiled-mode RTL, pass after pass over the load port: bit-exact, cycles = model."""
    from winnow.hw.config import AccelConfig
    from winnow.hw.tiled_packer import plan_for, tiled_cycles
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.sim.cocotb_run import simulator_available
    from winnow.sim.layers import random_input, random_layer, reference_output
    from winnow.sim.tiled_run import run_tiled

    reason = simulator_available(simulator)
    if reason:
        return {"simulator": simulator, "skipped": reason}
    dp = DatapathConfig(m=4, r=3, c_max=512)
    cfg = AccelConfig(datapath=dp, tiled=True, **TILED_ARRAY)
    rows = []
    for name, C, K, H in layers:
        layer = random_layer(dp, C=C, K=K, H=H, W=H, density=density, seed=C + H, relu=True, name=name)
        xq = random_input(layer, seed=5)
        plan = plan_for(cfg, layer)
        t0 = time.perf_counter()
        res = run_tiled(cfg, layer, xq, simulator, build_dir=BUILD / f"{simulator}_tiled")
        wall = time.perf_counter() - t0
        model, dense = tiled_cycles(layer, cfg)
        rows.append({"layer": name, "C": C, "K": K, "H": H, "density": density, "nnz": layer.nnz,
                     "plan": plan.to_dict(), "passes": len(res.passes),
                     "bit_exact": bool(np.array_equal(res.out, reference_output(layer, xq))),
                     "rtl_cycles": res.cycles, "model_cycles": res.model_cycles,
                     "passes_equal": all(c == m for _, c, m in res.passes), "layer_model_cycles": model.cycles,
                     "dense_cycles": dense, "floor": model.floor, "efficiency": model.floor / model.cycles,
                     "wall_s": round(wall, 1)})
        print(f"      {name}: {len(res.passes)} passes, bit-exact {rows[-1]['bit_exact']}, "
              f"{res.cycles:,} cycles (model {res.model_cycles:,}), {wall:.0f} s", flush=True)
    return {"simulator": simulator, "array": {"tile": "F(4,3)", "c_max": 512, **TILED_ARRAY},
            "memory_bits": cfg.memory_bits, "layers": rows}


def render_tiled(t: dict) -> str:
    if "skipped" in t:
        return f"Tiled RTL runs skipped: {t['skipped']}"
    a = t["array"]
    lines = [f"Array: {a['tile']}, P = {a['pes']} × L = {a['lanes']}, S = {a['clusters']}, blocks of {a['k_max']} "
             f"output channels, C blocks of {a['c_block']}, {a['h_max']}×{a['w_max']} windows; "
             f"{t['memory_bits'] / 1e6:.2f} Mbit of on-chip memory; {t['simulator']}, density "
             f"{t['layers'][0]['density'] if t['layers'] else ''}.", "",
             "| layer | C→K | H | passes | bit-exact | RTL cycles | model | every pass = model | dense | floor | "
             "efficiency | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in t["layers"]:
        lines.append(f"| {r['layer']} | {r['C']}→{r['K']} | {r['H']} | {r['passes']} | {r['bit_exact']} | "
                     f"{r['rtl_cycles']:,} | {r['model_cycles']:,} | {r['passes_equal']} | {r['dense_cycles']:,} | "
                     f"{r['floor']:,} | {r['efficiency']:.3f} | {r['wall_s']} |")
    return "\n".join(lines) + "\n"


def stream_rtl(simulator: str = "verilator", layers=TILED_LAYERS, density: float = 0.3) -> dict:
    """Full-size layers through the streaming array's RTL with AxiRam as the external memory (``--only stream``).

    The TILED_ARRAY behind a 128-bit AXI4 port: every pass's descriptor, load words and input
    window read from the RAM, the outputs written back; bit-exact, cycles = the streaming model.
    """
    from winnow.hw.config import AccelConfig
    from winnow.hw.memory_image import layer_image
    from winnow.hw.stream_abi import StreamConfig
    from winnow.hw.stream_timing import stream_cycles
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.sim.cocotb_run import simulator_available
    from winnow.sim.layers import random_input, random_layer, reference_output
    from winnow.sim.stream_run import StreamCase, run_stream

    reason = simulator_available(simulator)
    if reason:
        return {"simulator": simulator, "skipped": reason}
    dp = DatapathConfig(m=4, r=3, c_max=512)
    cfg = AccelConfig(datapath=dp, tiled=True, **TILED_ARRAY)
    s = StreamConfig()
    rows = []
    for name, C, K, H in layers:
        layer = random_layer(dp, C=C, K=K, H=H, W=H, density=density, seed=C + H, relu=True, name=name)
        xq = random_input(layer, seed=5)
        t0 = time.perf_counter()
        (res,) = run_stream(cfg, [StreamCase(layer, xq, name)], simulator, stream=s,
                            build_dir=BUILD / f"{simulator}_stream")
        wall = time.perf_counter() - t0
        dense = stream_cycles(layer_image(layer, cfg.changed(mode="dense"), s))
        m = res.model
        rows.append({"layer": name, "C": C, "K": K, "H": H, "density": density, "nnz": layer.nnz,
                     "passes": m.passes, "image_bytes": res.image.end - res.image.base,
                     "bit_exact": res.out is not None and bool(np.array_equal(res.out, reference_output(layer, xq))),
                     "rtl_cycles": res.cycles, "compute_cycles": res.compute_cycles, "model": m.to_dict(),
                     "dense_cycles": dense.cycles, "run_wall_s": round(res.run_wall_s, 1), "wall_s": round(wall, 1)})
        print(f"      {name}: {m.passes} passes through memory, bit-exact {rows[-1]['bit_exact']}, "
              f"{res.cycles:,} cycles (model {m.cycles:,}; array {res.compute_cycles:,}), {wall:.0f} s", flush=True)
    return {"simulator": simulator, "array": {"tile": "F(4,3)", "c_max": 512, **TILED_ARRAY}, "memory": s.to_dict(),
            "layers": rows}


def render_stream(t: dict) -> str:
    if "skipped" in t:
        return f"Streaming RTL runs skipped: {t['skipped']}"
    a, s = t["array"], t["memory"]
    lines = [f"Array: {a['tile']}, P = {a['pes']} × L = {a['lanes']}, S = {a['clusters']}, blocks of {a['k_max']}, "
             f"C blocks of {a['c_block']}, {a['h_max']}×{a['w_max']} windows, behind a {s['data_bits']}-bit AXI4 port "
             f"(cocotbext-axi AxiRam, unthrottled); {t['simulator']}, density "
             f"{t['layers'][0]['density'] if t['layers'] else ''}. Shares of the cycles: the array's own (compute), "
             "the load words (registers, quantization, stream segments), the input windows and the outputs.", "",
             "| layer | C→K | H | passes | image MB | bit-exact | RTL cycles | model | compute | load words | windows | "
             "outputs | dense | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in t["layers"]:
        m = r["model"]
        c = m["cycles"]
        lines.append(f"| {r['layer']} | {r['C']}→{r['K']} | {r['H']} | {r['passes']} | {r['image_bytes'] / 1e6:.1f} | "
                     f"{r['bit_exact']} | {r['rtl_cycles']:,} | {c:,} | {m['compute'] / c:.0%} | "
                     f"{m['loads'] / c:.0%} | {m['window'] / c:.0%} | {m['output'] / c:.1%} | {r['dense_cycles']:,} | "
                     f"{r['wall_s']} |")
    return "\n".join(lines) + "\n"


#: The real-size issue's done-when layers on the ULX3S streaming preset (``--only preset``): C, K, H = W.
PRESET_LAYERS = [("256→256, 32×32 (CIFAR-10 scale)", 256, 256, 32), ("64→128, 56×56 (VGG-16 scale)", 64, 128, 56)]


def preset_rtl(preset: str = "ulx3s", layers=PRESET_LAYERS, density: float = 0.3) -> dict:
    """``winnow sim --random C,K,H,W --preset ulx3s`` for the full-size layers, run as the user runs it (the
    console script), each report.json read back: bit-exact, cycles = the streaming model, wall time."""
    import json
    import subprocess
    import sys

    from winnow.boards.presets import preset as get_preset
    from winnow.sim.cocotb_run import simulator_available

    reason = simulator_available("verilator")
    if reason:
        return {"preset": preset, "skipped": reason}
    exe = Path(sys.executable).with_name("winnow")
    rows = []
    for name, C, K, H in layers:
        out = BUILD / f"preset_{preset}_{C}x{K}x{H}"
        cmd = [str(exe), "sim", "--random", f"{C},{K},{H},{H}", "--preset", preset, "--density", str(density),
               "--out", str(out), "--build-dir", str(BUILD / f"preset_{preset}_build")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            rows.append({"layer": name, "C": C, "K": K, "H": H, "command": " ".join(cmd[1:]), "status": "failed",
                         "error": (proc.stderr or proc.stdout)[-1500:]})
            continue
        rep = json.loads((out / "report.json").read_text())
        L = rep["layers"][0]
        rows.append({"layer": name, "C": C, "K": K, "H": H, "density": density, "status": "passed",
                     "command": "winnow " + " ".join(cmd[1:4]) + f" --preset {preset}", "passes": L["runs"],
                     "bit_exact": L["bit_exact"], "rtl_cycles": L["rtl_cycles"], "model_cycles": L["model_cycles"],
                     "breakdown": L["breakdown"], "run_wall_s": L["run_wall_s"], "wall_s": round(wall, 1)})
        print(f"      {name}: {L['runs']} passes, bit-exact {L['bit_exact']}, {L['rtl_cycles']:,} cycles "
              f"(model {L['model_cycles']:,}), {wall:.0f} s", flush=True)
    cfg = get_preset(preset)
    return {"preset": preset, "simulator": "verilator", "array": cfg.to_dict(), "layers": rows}


def preset_memory(synth: bool = True) -> list[dict]:
    """Every board preset's on-chip memory against its part's block RAM (``--only memory``): the count by the
    memories' shapes, the builds' measured count, and for the streaming presets (no board build yet) a yosys
    synthesis (``synth``; minutes)."""
    from winnow.boards.presets import PRESET_BOARD, PRESETS, STREAM_PRESETS
    from winnow.steps import board_memory

    import json

    boards = ROOT / "bench" / "results" / "boards.json"
    measured = {}  # preset → block RAMs a build used (routed) or placed
    for b in (json.loads(boards.read_text(encoding="utf-8")).get("boards", []) if boards.exists() else []):
        if b["status"] == "built":
            measured[b["preset"]] = (b["report"]["resources"]["BRAM"]["used"], "built")
        elif b.get("utilisation", {}).get("BRAM"):
            measured[b["preset"]] = (b["utilisation"]["BRAM"][0], "placed")
    rows = []
    for name, cfg in PRESETS.items():
        bm = board_memory(cfg, name, progress=lambda line: None)
        if name in measured:
            bm["block_rams_measured"], bm["measured_by"] = measured[name]
        elif synth and name in STREAM_PRESETS:
            print(f"      {name}: yosys synth_ecp5 of the streaming array …", flush=True)
            bm["synthesis"] = synth_stream(name)
            bm["block_rams_measured"], bm["measured_by"] = bm["synthesis"]["cells"]["BRAM"], "synthesized"
        rows.append({"preset": name, "board": PRESET_BOARD[name], "streaming": name in STREAM_PRESETS,
                     "tile": f"F({cfg.m},3)", "pes": cfg.pes, "lanes": cfg.lanes, "c_max": cfg.c_max,
                     "k_max": cfg.k_max, "h_max": cfg.h_max, "tiled": cfg.tiled, **bm})
    return rows


#: ECP5 cells counted from a synthesis (yosys ``stat -json``) by resource.
SYNTH_CELLS = {"BRAM": ("DP16KD",), "LUT": ("LUT4",), "FF": ("TRELLIS_FF",), "DSP": ("MULT18X18D",),
               "LUTRAM": ("TRELLIS_DPR16X4",), "CARRY": ("CCU2C",)}


def synth_stream(preset: str = "ulx3s") -> dict:
    """yosys ``synth_ecp5`` of the streaming preset's Verilog (``winnow gen --preset``): its cells by resource,
    the measured side of the block RAM count (minutes)."""
    import json
    import subprocess
    import sys

    from winnow.boards.toolchain import find_tool

    out = BUILD / f"synth_{preset}"
    exe = Path(sys.executable).with_name("winnow")
    subprocess.run([str(exe), "gen", "--preset", preset, "--out", str(out)], check=True, capture_output=True)
    yosys = find_tool("yosys")
    t0 = time.perf_counter()
    # the YoWASP tools see the working directory only: relative paths
    subprocess.run(yosys + ["-q", "-p", "read_verilog -sv winnow_stream.v; synth_ecp5 -top winnow_stream; "
                                        "tee -q -o stat.json stat -json"], cwd=out, check=True, capture_output=True)
    mod = next(iter(json.loads((out / "stat.json").read_text())["modules"].values()))
    cells = mod.get("num_cells_by_type", {})
    return {"preset": preset, "command": f"winnow gen --preset {preset}; yosys synth_ecp5 -top winnow_stream",
            "seconds": round(time.perf_counter() - t0, 1),
            "cells": {res: sum(int(cells.get(c, 0)) for c in names) for res, names in SYNTH_CELLS.items()}}


def render_preset_memory(rows: list[dict]) -> str:
    lines = ["| preset | board | array | layers it runs | on-chip Mbit | block RAMs (of the part's) | measured by a build | "
             "distributed kbit |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        runs = (f"any, C ≤ {r['c_max']}, through external memory" if r["streaming"] else
                f"C ≤ {r['c_max']}, K ≤ {r['k_max']}, H, W ≤ {r['h_max']}, on chip")
        lines.append(f"| {r['preset']} | {r['board']} | {r['tile']}, {r['pes']}×{r['lanes']} | {runs} | "
                     f"{r['memory_bits'] / 1e6:.2f} | {r['block_rams']} / {r['block_rams_available']} | "
                     + (f"{r['block_rams_measured']} ({r['measured_by']})" if "block_rams_measured" in r else "—")
                     + f" | {r['distributed_bits'] / 1e3:.1f} |")
    return "\n".join(lines) + "\n"


def render_preset(t: dict) -> str:
    if "skipped" in t:
        return f"Preset runs skipped: {t['skipped']}"
    a = t["array"]
    lines = [f"Preset `{t['preset']}`: F({a['datapath']['m']},3), P = {a['pes']} × L = {a['lanes']}, S = "
             f"{a['clusters']}, blocks of {a['k_max']} output channels, C blocks of {a['c_block']}, "
             f"{a['h_max']}×{a['w_max']} windows, C ≤ {a['datapath']['c_max']}; {t['simulator']}, AxiRam "
             f"unthrottled.", "",
             "| command | passes | bit-exact | RTL cycles | model | compute | load words | windows | outputs | "
             "wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in t["layers"]:
        if r["status"] != "passed":
            lines.append(f"| `{r['command']}` | failed: {r['error'][-200:]} | | | | | | | | |")
            continue
        b, c = r["breakdown"], r["rtl_cycles"]
        lines.append(f"| `{r['command']}` | {r['passes']} | {r['bit_exact']} | {c:,} | {r['model_cycles']:,} | "
                     f"{b['compute'] / c:.0%} | {b['loads'] / c:.0%} | {b['window'] / c:.0%} | "
                     f"{b['output'] / c:.1%} | {r['wall_s']} |")
    return "\n".join(lines) + "\n"


def _array(r) -> str:
    return f"{r['pes']}×{r['lanes']}, S={r['clusters']}, OTU {r['otu_lanes']}"


def _network(rows):
    out = {}
    for r in rows:
        key = (r["tile"], _array(r), r["density"])
        a = out.setdefault(key, {"sparse": 0, "dense": 0, "floor": 0, "min_eff": 1.0, "worst": "",
                                 "recommended": r["recommended"]})
        a["sparse"] += r["sparse"]["cycles"]
        a["dense"] += r["dense_cycles"]
        a["floor"] += r["sparse"]["floor"]
        if r["efficiency"] < a["min_eff"]:
            a["min_eff"], a["worst"] = r["efficiency"], f"{r['layer']} ({r['sparse']['bottleneck']})"
    return out


def render(result: dict) -> str:
    lines = []
    sp = result.get("sim_speed", [])
    if sp:
        lines += ["### Simulation speed (C = K = 32, 16×16, F(4,3), density 0.3, P = 4, L = 4)", "",
                  "| simulator | RTL cycles | model | bit-exact | run wall s | cycles/s |", "|---|---|---|---|---|---|"]
        for s in sp:
            if "skipped" in s:
                lines.append(f"| {s['simulator']} | skipped: {s['skipped']} | | | | |")
            else:
                lines.append(f"| {s['simulator']} | {s['cycles']} | {s['model_cycles']} | {s['bit_exact']} | "
                             f"{s['run_wall_s']:.3f} | {s['cycles_per_s']:,.0f} |")
        lines.append("")
    rows = result.get("vgg16", [])
    if rows:
        net = _network(rows)
        lines += [f"### VGG-16 network totals (cycle model, P·L = {MULTIPLIERS}, k_block = {K_BLOCK})", "",
                  "| tile | array | density | sparse Mcycles | dense Mcycles | speedup | 0.9/d | efficiency | "
                  "worst layer |", "|---|---|---|---|---|---|---|---|---|"]
        for (tile, arr, d), a in net.items():
            star = " ★" if a["recommended"] else ""
            lines.append(f"| {tile} | {arr}{star} | {d} | {a['sparse'] / 1e6:.2f} | {a['dense'] / 1e6:.2f} | "
                         f"{a['dense'] / a['sparse']:.2f} | {0.9 / d:.2f} | {a['floor'] / a['sparse']:.3f} | "
                         f"{a['min_eff']:.3f} {a['worst']} |")
        lines.append("")
        for r0 in [r for r in rows if r["recommended"] and r["layer"] == VGG16[0][0]]:
            sel = [r for r in rows if r["recommended"] and r["tile"] == r0["tile"] and r["density"] == r0["density"]]
            lines += [f"#### {r0['tile']} on {_array(r0)}, density {r0['density']}", "",
                      "| layer | C→K | H | cycles | dense | floor | speedup | efficiency | busy ITU/PE/OTU | bound |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for r in sel:
                s = r["sparse"]
                lines.append(f"| {r['layer']} | {r['C']}→{r['K']} | {r['H']} | {s['cycles']:,} | "
                             f"{r['dense_cycles']:,} | {s['floor']:,} | {r['speedup']:.2f} | {r['efficiency']:.3f} | "
                             f"{s['itu']:,}/{s['pe']:,}/{s['otu']:,} | {s['bottleneck']} |")
            lines.append("")
    if result.get("tiled_rtl"):
        lines += ["### Full-size layers on the tiled-mode RTL", "", render_tiled(result["tiled_rtl"])]
    if result.get("stream_rtl"):
        lines += ["### Full-size layers through external memory (the streaming array)", "",
                  render_stream(result["stream_rtl"])]
    if result.get("preset_memory"):
        lines += ["### On-chip memory per board preset", "", render_preset_memory(result["preset_memory"])]
    if result.get("preset_rtl"):
        lines += ["### The ULX3S streaming preset on full-size layers", "", render_preset(result["preset_rtl"])]
    if result.get("roofline"):
        lines += [f"### Roofline of the streaming array (buffers {result['roofline']['buffers']})", "",
                  render_roofline(result["roofline"])]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sim-speed layer; F(4,3) tables only")
    ap.add_argument("--no-icarus", action="store_true")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", choices=("roofline", "tiled", "stream", "preset", "memory"),
                    help="recompute only these tables into the existing --out file (the others are kept)")
    a = ap.parse_args(argv)
    if a.only:
        import json

        result = json.loads(a.out.read_text(encoding="utf-8")) if a.out.exists() else {"schema": SCHEMA}
        if a.only == "roofline":
            print("[1/1] roofline tables …", flush=True)
            result["roofline"] = roofline_tables()
        elif a.only == "memory":
            print("[1/1] on-chip memory per board preset …", flush=True)
            result["preset_memory"] = preset_memory()
        elif a.only == "preset":
            print("[1/1] the ULX3S streaming preset on full-size layers (winnow sim --preset ulx3s; tens of "
                  "minutes) …", flush=True)
            result["preset_rtl"] = preset_rtl()
        elif a.only == "stream":
            print("[1/1] full-size layers through the streaming array's external memory (tens of minutes) …",
                  flush=True)
            result["stream_rtl"] = stream_rtl()
        else:
            print("[1/1] full-size layers on the tiled-mode RTL (minutes) …", flush=True)
            result["tiled_rtl"] = tiled_rtl()
        atomic_write_json(a.out, result)
        print(render(result))
        print(f"\nwrote {a.out}")
        return 0
    result = {"schema": SCHEMA, "mode": "quick" if a.quick else "full"}
    sims = ["verilator"] + ([] if a.no_icarus else ["icarus"])
    speed = []
    for i, simr in enumerate(sims, 1):
        print(f"[{i}/{len(sims) + 2}] simulation speed under {simr} …", flush=True)
        kw = {"size": 8, "channels": 8} if a.quick else {}
        speed.append(sim_speed(simr, **kw))
    result["sim_speed"] = speed
    print(f"[{len(sims) + 1}/{len(sims) + 2}] VGG-16 cycle tables …", flush=True)
    result["vgg16"] = vgg16_tables(tiles=(4,) if a.quick else (4, 6))
    print(f"[{len(sims) + 2}/{len(sims) + 2}] roofline tables …", flush=True)
    result["roofline"] = roofline_tables(tiles=(4,) if a.quick else (4, 6))
    atomic_write_json(a.out, result)
    print(render(result))
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
