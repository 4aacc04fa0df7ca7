"""Board builds: HostLink + the PE array on ULX3S, OrangeCrab and iCEBreaker with the YoWASP tools.

``build_board("ulx3s", None, "build/boards/ulx3s")`` elaborates the top (UART on the
board's serial pins, clock from the board's oscillator), runs yosys, nextpnr and the
bitstream packer from the YoWASP wheels step by step, and writes into ``out_dir``:

* ``top.bit`` (ECP5) or ``top.bin`` (iCE40): the bitstream;
* ``report.json``: LUT, FF, DSP and BRAM use/available and Fmax, read from
  ``nextpnr --report top.report.json`` (FF on iCE40, where a logic cell holds both, from
  the yosys netlist), step timings, tool versions, the configuration;
* ``params.json`` and ``hostlink.json``: the configuration and what INFO reports.

The parts: the boards and presets (:mod:`winnow.boards.registry`), the gateware
(:mod:`winnow.boards.top`), the tools and their cached steps (:mod:`winnow.boards.toolchain`),
what is measured and refused (:mod:`winnow.boards.reports`).

Errors are :class:`winnow.boards.errors.BoardError` subclasses of
:class:`winnow.model.errors.WinnowError`: an unknown board or preset, a configuration too
big for the part (which resource, used vs available: checked before building where it
can be, else from the synthesized netlist), a missing tool (which pip package installs
it), a failing tool (its log tail).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from winnow.model.errors import ConfigError
from winnow.model.files.atomic import atomic_write_json

from winnow.boards.errors import ToolFailedError, ToolTimeoutError
from winnow.boards.export import link_params
from winnow.boards.dram import DramConfig, generate_core
from winnow.boards.presets import STREAM_PRESETS
from winnow.boards.registry import get_board, resolve_config
from winnow.boards.reports import board_report, check_netlist, explain_nextpnr_failure, netlist_cells, \
    netlist_usage, placed_utilisation, precheck
from winnow.boards.toolchain import NAME, STEP_LABELS, find_tool, nextpnr_options, run_step, tool_versions
from winnow.boards.top import BoardTop
from winnow.boards.uart import divisor_for


def build_board(board: str, config=None, out_dir=None, *, baud: int = 115200, timeout_bytes: int = 1024,
                seed: int = 1, progress=print, time_limit_s: float | None = None) -> dict:
    """Build the bitstream for ``board``; return (and write) the report.

    Parameters
    ----------
    board : str
        One of :data:`winnow.boards.registry.KNOWN_BOARDS`.
    config : None, str or AccelConfig
        ``None`` for the board's preset, a preset name, or a configuration.
    out_dir : path
        Where everything goes (default ``build/boards/<board>``).
    baud : int
        UART rate; the divisor is the board clock / baud (refused if more than 2 % off).
    seed : int
        nextpnr placement seed (Fmax varies a few percent with it).
    progress : callable
        Called with one line per step.
    time_limit_s : float or None
        Stop the build after this many seconds (a router that does not converge runs for hours):
        :class:`~winnow.boards.errors.ToolTimeoutError`, carrying nextpnr's placed utilisation
        when it got that far. ``None``: no limit.
    """
    spec = get_board(board)
    cfg, preset_name = resolve_config(spec, config)
    streaming = preset_name in STREAM_PRESETS
    dram = DramConfig() if streaming else None  # the streaming array's clock is the SDRAM controller's
    clock_hz = dram.sys_clk_hz if streaming else spec.sys_clock_hz or spec.clock_hz
    divisor = divisor_for(clock_hz, baud)
    precheck(spec, cfg)
    tools = {t: find_tool(t) for t in spec.tools}
    out = Path(out_dir or Path("build") / "boards" / spec.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)  # a failed build leaves no report
    steps = []
    t_all = time.perf_counter()
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and time_limit_s > 0):
        raise ConfigError(f"time_limit_s must be a positive number of seconds; got {time_limit_s!r}")
    deadline = None if time_limit_s is None else t_all + time_limit_s

    def step(i, n, label):
        progress(f"[{i}/{n}] {spec.name}: {label}")
        return time.perf_counter()

    n = 2 + len(spec.tools)
    t0 = step(1, n, "elaborate the SDRAM top (LiteDRAM) + streaming array" if streaming
              else "elaborate HostLink + array")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    plat = spec.make_platform()
    if streaming:  # the array on the board's SDRAM through the LiteDRAM core (docs/dram.md)
        from winnow.boards.stream_top import StreamTop

        core = generate_core(dram, out / "litedram", progress=progress)
        top = StreamTop(cfg, core, divisor=divisor)
    else:
        top = BoardTop(cfg, divisor=divisor, timeout_bytes=timeout_bytes, sys_clock_hz=spec.sys_clock_hz)
    # emit_src=False: the RTLIL (the synthesis step's input) does not change when a Python line moves
    plan = plat.build(top, name=NAME, do_build=False, emit_src=False, debug_verilog=False,
                      synth_opts=spec.synth_opts, nextpnr_opts=nextpnr_options(spec, seed))
    plan.extract(out)
    cfg.write_params(out)
    if streaming:  # the host talks to the DRAM commands (winnow.boards.dram_host), not to HostLink
        atomic_write_json(out / "dram.json", {"litedram": core.info, "clock_hz": clock_hz, "baud": baud,
                                              "divisor": divisor, "host": "winnow.boards.dram_host"})
    else:
        atomic_write_json(out / "hostlink.json", {**link_params(cfg, divisor=divisor, timeout_bytes=timeout_bytes),
                                                  "baud": baud, "clock_hz": clock_hz})
    steps.append({"step": "elaborate", "seconds": round(time.perf_counter() - t0, 2)})

    commands = json.loads(plan.files[f"build_{NAME}.json"])["commands"]
    usage = None
    k = 1
    for argv in commands:
        tool = argv[0]
        if tool not in tools:  # e.g. OrangeCrab's dfu-suffix: a programming step, noted in the report
            steps.append({"step": tool, "skipped": True})
            continue
        k += 1
        t0 = step(k, n, STEP_LABELS.get(tool, f"place and route ({tool})"))
        try:
            steps.append(run_step(out, tool, tools[tool], argv, progress, t0, deadline))
        except ToolTimeoutError as exc:
            if tool.startswith("nextpnr"):  # what the placer had placed when the router was stopped
                exc.utilisation = placed_utilisation(out / f"{NAME}.tim")
                if exc.utilisation:
                    exc.args = (f"{exc.args[0]}; placed: " + ", ".join(
                        f"{k} {u:,}/{a:,}" for k, (u, a) in exc.utilisation.items()),)
            raise
        except ToolFailedError:
            if tool.startswith("nextpnr"):
                explain_nextpnr_failure(spec, tool, out / f"{NAME}.tim", usage)
            raise
        if tool == "yosys":
            usage = netlist_usage(spec, netlist_cells(out / f"{NAME}.json"))
            check_netlist(spec, usage)
    step(n, n, "report")
    rep_path = out / f"{NAME}.report.json"
    if not rep_path.exists():
        raise ToolFailedError(f"nextpnr wrote no report ({rep_path})")
    bit = out / spec.bitstream
    report = board_report(spec, cfg, preset_name, clock_hz=clock_hz, baud=baud, divisor=divisor,
                          nextpnr_report=rep_path, usage=usage, bitstream=bit, seed=seed, steps=steps,
                          build_s=round(time.perf_counter() - t_all, 1), tools=tool_versions(spec))
    atomic_write_json(out / "report.json", report)
    fmax = report["fmax_mhz"]
    if not report["timing_met"]:
        progress(f"warning: {spec.name}: Fmax {fmax:.1f} MHz is below the "
                 f"{clock_hz / 1e6:g} MHz design clock; the bitstream will not run reliably")
    r = report["resources"]
    progress(f"{spec.name}: LUT {r['LUT']['used']}/{r['LUT']['available']}, FF {r['FF']['used']}, "
             f"DSP {r['DSP']['used']}/{r['DSP']['available']}, BRAM {r['BRAM']['used']}/{r['BRAM']['available']}, "
             f"Fmax {fmax:.1f} MHz; {bit} ({report['build_s']:.0f} s)")
    return report
