"""What a board build measures and refuses: resource use from the yosys netlist and from
nextpnr (its ``--report`` JSON and its log), configurations too big for the part, and the
board report (``report.json``).
"""

from __future__ import annotations

import re
from pathlib import Path

from winnow.hw.config import AccelConfig
from winnow.model.errors import WinnowError
from winnow.model.files.bounded import read_json_bounded, read_text_bounded

from winnow.boards import protocol as P
from winnow.boards.errors import ResourceError, ToolFailedError
from winnow.boards.registry import Board

#: Schema tag of report.json.
REPORT_SCHEMA = "winnow-board-report/1"


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
    nl = read_json_bounded(path, ToolFailedError, what="tool output")
    counts: dict[str, int] = {}
    try:
        for mod in nl["modules"].values():
            if mod.get("attributes", {}).get("top"):
                for cell in mod["cells"].values():
                    counts[str(cell["type"])] = counts.get(str(cell["type"]), 0) + 1
    except (KeyError, TypeError, AttributeError) as exc:
        raise ToolFailedError(f"{path}: not a yosys JSON netlist ({type(exc).__name__}: {str(exc)[:80]})") from None
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


#: The resources of a placed-only calibration record and their names in nextpnr's ECP5 log.
_PLACED_NAMES = {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD",
                 "LUTRAM": "TRELLIS_RAMW"}


def placed_utilisation(tim: Path) -> dict:
    """What nextpnr's log (``tim``) shows placed: {resource: (used, available)} from its last utilisation
    block (LUT, FF, DSP, BRAM, LUTRAM as ECP5 cells); ``{}`` if the log is missing or has none."""
    try:
        text = read_text_bounded(tim, error=ToolFailedError, what="tool output", errors="replace")
    except (OSError, WinnowError):
        return {}
    rows = {name.strip(): (int(u), int(a)) for name, u, a in _UTIL_LINE.findall(text)}
    return {res: rows[key] for res, key in _PLACED_NAMES.items() if key in rows}


def check_placement(board: Board, log_text: str) -> None:
    """Raise :class:`ResourceError` if nextpnr's log says the design does not fit the part."""
    over = any(int(u) > int(a) for _, u, a in _UTIL_LINE.findall(log_text))
    if over or "Unable to find legal placement" in log_text or "utilisation limit" in log_text:
        raise ResourceError(f"configuration too big for {board.name} ({board.device}): nextpnr found no legal "
                            f"placement; fullest resources: {'; '.join(placement_overuse(log_text))}")


def explain_nextpnr_failure(board: Board, tool: str, tim: Path, usage: dict[str, int] | None) -> None:
    """Raise the error that explains a failed nextpnr run; return if its log says nothing.

    nextpnr logs to ``tim`` (Amaranth's ``--log``), not to stdout: an overfull netlist or
    placement is a :class:`ResourceError` naming the resource, any other failure a
    :class:`ToolFailedError` with the log's tail. Call it while handling the tool's failure.
    """
    text = read_text_bounded(tim, error=ToolFailedError, what="tool output", errors="replace") if tim.exists() else ""
    if usage is not None:
        check_netlist(board, usage)  # explains an overfull part by its resource
    check_placement(board, text)
    if text:
        raise ToolFailedError(f"{tool} failed; log {tim}:\n{text[-2500:]}") from None


def parse_report(board: Board, report: dict, usage: dict[str, int]) -> tuple[dict, dict]:
    """nextpnr's --report JSON → (resources {name: {used, available, source}}, fmax {achieved, constraint})."""
    try:
        util = report.get("utilization", {})
        res = {}
        for name, key in board.report_keys.items():
            if key in util:
                res[name] = {"used": int(util[key]["used"]), "available": int(util[key]["available"]),
                             "source": "nextpnr"}
        if "FF" not in res:  # iCE40: a logic cell holds a LUT and a flip-flop
            res["FF"] = {"used": usage["FF"], "available": board.capacity["FF"], "source": "yosys netlist"}
        fmax = report.get("fmax", {})
        if not fmax:
            raise ToolFailedError("nextpnr's report has no fmax entry")
        # the one clock domain (the board clock); the slowest if there are several
        clk, f = min(fmax.items(), key=lambda kv: float(kv[1]["achieved"]))
        return res, {"clock": clk, "achieved_mhz": float(f["achieved"]), "constraint_mhz": float(f["constraint"])}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ToolFailedError(f"nextpnr's report is not in the expected form ({type(exc).__name__}: "
                              f"{str(exc)[:80]})") from None


def board_report(board: Board, cfg: AccelConfig, preset_name: str | None, *, clock_hz: float, baud: int,
                 divisor: int, nextpnr_report: Path, usage: dict[str, int], bitstream: Path, seed: int,
                 steps: list[dict], build_s: float, tools: dict) -> dict:
    """The board report (``report.json``, :data:`REPORT_SCHEMA`) of a finished build."""
    resources, fmax = parse_report(board, read_json_bounded(nextpnr_report, ToolFailedError, what="tool output"),
                                   usage)
    if not bitstream.exists():
        raise ToolFailedError(f"no bitstream {bitstream} after the build")
    return {
        "schema": REPORT_SCHEMA, "board": board.name, "platform": board.platform, "device": board.device,
        "family": board.family, "preset": preset_name, "config_id": f"{P.config_id(cfg):08x}",
        "config": cfg.to_dict(), "multipliers": cfg.multipliers,
        "clock_hz": clock_hz, "oscillator_hz": board.clock_hz, "baud": baud, "divisor": divisor,
        "resources": resources, "fmax_mhz": fmax["achieved_mhz"], "constraint_mhz": fmax["constraint_mhz"],
        "timing_met": fmax["achieved_mhz"] >= clock_hz / 1e6, "clock_net": fmax["clock"],
        "netlist": usage, "bitstream": board.bitstream, "bitstream_bytes": bitstream.stat().st_size,
        "nextpnr_report": nextpnr_report.name, "seed": seed, "steps": steps,
        "build_s": build_s,
        "tool_s": round(sum(st.get("seconds") or 0 for st in steps), 1),  # cached steps: their last real run
        "tools": tools, "notes": board.notes,
    }  # fmt: skip
