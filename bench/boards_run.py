"""Board benchmarks: build every board's preset, the UART end-to-end simulation, and the
effective throughput per DSP of the ULX3S preset on SmallVGG.

Usage::

    python -m bench.boards_run                       # all boards (tens of minutes on 2 cores)
    python -m bench.boards_run --boards icebreaker   # one board
    python -m bench.boards_run --from-reports        # no builds: re-read build/boards/*/report.json

Writes ``bench/results/boards.json`` atomically, replaces the marked tables of
docs/boards.md and prints them.

* ``boards``: per board, ``built`` with the report (LUT, FF, DSP, BRAM use/available and
  Fmax from ``nextpnr --report``, step timings), or ``too big`` with the resource the
  build refused on (used vs available), or ``failed`` with the error.
* ``uart_e2e``: two layers through the HostLink's UART under Verilator (cocotb, 4 clocks
  per bit): build and run times, bytes each way, bit-exact and cycle-exact flags.
* ``throughput``: SmallVGG (width 16, 28×28 MNIST) conv layers at Winograd-domain
  density 0.3 (uniform random masks), packed for the ULX3S preset; cycles from the exact
  cycle model (equal to the RTL's); spatial-equivalent operations 2·K·C·Ho·Wo·9 per layer;
  GOPS/DSP = operations / (cycles / Fmax) / DSP blocks used, at the measured Fmax and at
  the board's 25 MHz oscillator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from winnow.model.files.atomic import atomic_write_json

SCHEMA = "winnow-bench-boards/1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "boards.json"
BUILD = ROOT / "build" / "boards"
#: SmallVGG (width 16) on 28×28 MNIST: (name, C, K, H = W).
SMALLVGG = [("conv1", 1, 16, 28), ("conv2", 16, 16, 28), ("conv3", 16, 32, 14), ("conv4", 32, 32, 14)]
#: WinoGen (DAC 2024): best dense figure on Xilinx parts, GOPS per DSP.
WINOGEN_GOPS_PER_DSP = 3.80


def build_boards(names, from_reports: bool) -> list[dict]:
    """Build each preset in ``names`` on its board (``winnow.boards.presets.PRESET_BOARD``), one directory each."""
    from winnow.boards.build import build_board
    from winnow.boards.errors import BoardError, ResourceError
    from winnow.boards.presets import PRESET_BOARD

    out = []
    for name in names:
        t0 = time.perf_counter()
        rep_path = BUILD / name / "report.json"
        board = PRESET_BOARD[name]
        try:
            if from_reports:
                if not rep_path.exists():
                    raise FileNotFoundError(rep_path)
                rep = json.loads(rep_path.read_text())
            else:
                rep = build_board(board, name, BUILD / name, progress=print)
            out.append({"board": board, "preset": name, "status": "built", "report": rep})
        except ResourceError as e:
            print(f"{name}: too big: {e}")
            out.append({"board": board, "preset": name, "status": "too big", "error": str(e),
                        "seconds": round(time.perf_counter() - t0, 1), "netlist": _netlist(name, board)})
        except (BoardError, FileNotFoundError) as e:
            print(f"{name}: failed: {e}")
            out.append({"board": board, "preset": name, "status": "failed", "error": str(e)[-2000:]})
    return out


def _netlist(name: str, board: str) -> dict | None:
    """Resource use of the synthesized netlist of a build that stopped after synthesis."""
    from winnow.boards.registry import get_board
    from winnow.boards.reports import netlist_cells, netlist_usage

    path = BUILD / name / "top.json"
    if not path.exists():
        return None
    cells = netlist_cells(path)
    return {"usage": netlist_usage(get_board(board), cells), "cells": {k: v for k, v in cells.items() if k[0] != "$"}}


def uart_e2e() -> dict:
    from winnow.boards.sim_hostlink import run_hostlink
    from winnow.hw.config import AccelConfig
    from winnow.hw.cycle_model import packed_cycles
    from winnow.hw.packer import pack_layer
    from winnow.model.integer.datapath import DatapathConfig
    from winnow.sim.layers import random_input, random_layer, reference_output

    dp = DatapathConfig(m=2, r=3, c_max=8)
    cfg = AccelConfig(datapath=dp, pes=2, lanes=2, k_max=8, h_max=8, w_max=8)
    cases = []
    for i, (C, K, H, W, d) in enumerate([(3, 4, 5, 7, 0.5), (8, 8, 8, 8, 0.3)]):
        layer = random_layer(dp, C=C, K=K, H=H, W=W, density=d, seed=10 + i, name=f"rand{i}")
        cases.append((pack_layer(layer, cfg), random_input(layer, seed=20 + i), layer.name, layer))
    build = ROOT / "build" / "bench" / "uart_e2e"
    if (build / "config.stamp").exists():
        (build / "config.stamp").unlink()  # measure the Verilator build too
    t0 = time.perf_counter()
    runs, timing = run_hostlink(cfg, [c[:3] for c in cases], "verilator", build, divisor=4)
    total = time.perf_counter() - t0
    layers = []
    for run, (packed, xq, name, layer) in zip(runs, cases):
        layers.append({"name": name, "shape": [layer.in_channels, layer.out_channels, *layer.size],
                       "bit_exact": bool(np.array_equal(run.out, reference_output(layer, xq))),
                       "cycles": run.cycles, "model_cycles": packed_cycles(packed).cycles,
                       "sim_cycles": run.sim_cycles, "bytes_to_board": run.bytes_to_board,
                       "bytes_from_board": run.bytes_from_board, "wall_s": round(run.wall_s, 2)})
    return {"simulator": "verilator", "divisor": 4, "config": cfg.to_dict(), "layers": layers,
            "build_s": round(timing["build_s"], 1), "run_s": round(timing["test_s"], 1), "total_s": round(total, 1)}


def throughput(report: dict, density: float = 0.3) -> dict:
    from winnow.boards.presets import PRESETS
    from winnow.hw.cycle_model import packed_cycles
    from winnow.hw.packer import pack_layer
    from winnow.sim.layers import random_layer

    cfg = PRESETS[report["preset"]]
    fmax = report["fmax_mhz"] * 1e6
    clk = report["clock_hz"]
    dsps = report["resources"]["DSP"]["used"]
    rows = []
    for i, (name, C, K, H) in enumerate(SMALLVGG):
        packed = pack_layer(random_layer(cfg.datapath, C=C, K=K, H=H, W=H, density=density, seed=100 + i,
                                         name=name), cfg)
        cr = packed_cycles(packed)
        Ho, Wo = packed.geometry.out
        ops = 2 * K * C * Ho * Wo * 9
        rows.append({"layer": name, "C": C, "K": K, "H": H, "W": H, "nnz": int(packed.layer.nnz),
                     "density": round(float(packed.layer.density), 4), "cycles": cr.cycles, "floor": cr.floor,
                     "ops": ops, "gops_per_dsp_at_fmax": ops / (cr.cycles / fmax) / dsps / 1e9,
                     "gops_per_dsp_at_clock": ops / (cr.cycles / clk) / dsps / 1e9})
    ops = sum(r["ops"] for r in rows)
    cyc = sum(r["cycles"] for r in rows)
    best = max(rows, key=lambda r: r["gops_per_dsp_at_fmax"])
    return {"board": report["board"], "preset": report["preset"], "density": density, "fmax_mhz": report["fmax_mhz"],
            "clock_mhz": clk / 1e6, "dsps": dsps, "multipliers": cfg.multipliers, "layers": rows,
            "network_ops": ops, "network_cycles": cyc,
            "gops_per_dsp_at_fmax": ops / (cyc / fmax) / dsps / 1e9,
            "gops_per_dsp_at_clock": ops / (cyc / clk) / dsps / 1e9,
            "best_layer": best["layer"], "best_gops_per_dsp_at_fmax": best["gops_per_dsp_at_fmax"],
            "winogen_gops_per_dsp": WINOGEN_GOPS_PER_DSP}  # fmt: skip


def render(res: dict) -> str:
    lines = ["| board | part | preset: F(m,3), P×L, requantizers, C/K max, H/W max, memories | LUT | FF | DSP | BRAM | Fmax (MHz) "
             "| build (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for b in res["boards"]:
        if b["status"] != "built":
            why = b["error"].splitlines()[0].split(": ", 1)[-1]
            lines.append(f"| {b['board']} | | {b.get('preset', '')}: {b['status']} | {why} | | | | | |")
            continue
        r = b["report"]
        c = r["config"]
        dp = c["datapath"]
        u = r["resources"]
        cell = lambda k: f"{u[k]['used']:,} / {u[k]['available']:,}"  # noqa: E731
        lines.append(f"| {r['board']} | {r['device']} | {r['preset']}: F({dp['m']},3), {c['pes']}×{c['lanes']}, "
                     f"{c.get('requant', dp['m'] ** 2)}, {c['c_max']}/{c['k_max']}, "
                     f"{c['h_max']}/{c['w_max']}{', serial' if c.get('serial') else ''} | {cell('LUT')} | {cell('FF')} | {cell('DSP')} | {cell('BRAM')} | "
                     f"{r['fmax_mhz']:.1f} | {r['build_s']:.0f} |")
    out = "\n".join(lines)
    for t in res.get("throughput", []):
        out += (f"\n\n{t['preset']} ({t['dsps']} DSPs, Fmax {t['fmax_mhz']:.1f} MHz), SmallVGG at density "
                f"{t['density']}:\n\n| layer | C→K | H×W | cycles | floor | GOPS/DSP at Fmax | at 25 MHz |\n"
                "|---|---|---|---|---|---|---|\n")
        for r in t["layers"]:
            out += (f"| {r['layer']} | {r['C']}→{r['K']} | {r['H']}×{r['W']} | {r['cycles']:,} | {r['floor']:,} | "
                    f"{r['gops_per_dsp_at_fmax']:.3f} | {r['gops_per_dsp_at_clock']:.3f} |\n")
        out += (f"| network | | | {t['network_cycles']:,} | | {t['gops_per_dsp_at_fmax']:.3f} | "
                f"{t['gops_per_dsp_at_clock']:.3f} |")
    e = res.get("uart_e2e")
    if e:
        out += (f"\n\nUART end to end (Verilator): build {e['build_s']} s, run {e['run_s']} s, total {e['total_s']} s; "
                + "; ".join(f"{x['name']}: {x['bytes_to_board']} bytes in, {x['bytes_from_board']} out, "
                            f"{x['cycles']} cycles (model {x['model_cycles']}), bit-exact {x['bit_exact']}"
                            for x in e["layers"]))
    return out


DOCS = ROOT / "docs" / "boards.md"


def update_docs(res: dict, path: Path = DOCS) -> None:
    """Replace the ``<!-- results_table -->`` and ``<!-- throughput_tables -->`` blocks of ``path``."""
    import re

    from winnow.model.files.atomic import atomic_write_text

    parts = render(res).split("\n\n")
    blocks = {"results_table": parts[0],
              "throughput_tables": "\n\n".join(p for p in parts[1:] if not p.startswith("UART end to end"))}
    text = path.read_text(encoding="utf-8")
    for tag, body in blocks.items():
        text = re.sub(rf"<!-- {tag} -->.*?<!-- /{tag} -->", lambda _m: f"<!-- {tag} -->\n{body}\n<!-- /{tag} -->",
                      text, flags=re.S)
    atomic_write_text(path, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--boards", nargs="*", default=["ulx3s-onchip", "ulx3s-f43", "orangecrab", "icebreaker"],
                    help="presets to build (each on its board)")
    ap.add_argument("--from-reports", action="store_true", help="read build/boards/*/report.json, build nothing")
    ap.add_argument("--no-uart", action="store_true", help="skip the UART end-to-end simulation")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    prev = json.loads(a.out.read_text()) if a.out.exists() else {}
    names = a.boards
    if a.from_reports:  # a preset without report.json (too big, failed) keeps its recorded entry
        names = [n for n in names if (BUILD / n / "report.json").exists()]
    boards = build_boards(names, a.from_reports)
    keep = [b for b in prev.get("boards", []) if b.get("preset", b["board"]) not in names]  # not rebuilt now
    order = {"ulx3s-onchip": 0, "ulx3s-f43": 1, "orangecrab": 2, "icebreaker": 3}
    res = {"schema": SCHEMA, "boards": sorted(keep + boards, key=lambda b: order.get(b.get("preset", b["board"]), 9))}
    res["throughput"] = [throughput(b["report"]) for b in res["boards"]
                         if b["board"] == "ulx3s" and b["status"] == "built"]
    res["uart_e2e"] = prev.get("uart_e2e") if a.no_uart else uart_e2e()
    atomic_write_json(a.out, res)
    if a.out == DEFAULT_OUT and DOCS.exists():
        update_docs(res)
        print(f"updated the tables in {DOCS}")
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
