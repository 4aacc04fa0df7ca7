"""Run the foundation benchmarks, write JSON, print a Markdown summary.

Usage::

    python -m bench.run            # full run (about half a minute on 2 cores)
    python -m bench.run --quick    # smoke run on tiny layers (a second or two)
    python -m bench.run --out PATH # write the JSON elsewhere

The JSON (default ``bench/results/foundation.json``) is written atomically: to a
temporary file in the same folder, then renamed over the target. The Markdown tables
are rendered from that same JSON, so what is printed is what is stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import foundation

SCHEMA = "winnow-bench-foundation/1"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "foundation.json"

#: Keyword arguments of each measurement, per mode. The full sizes are the ones the
#: figures in docs/benchmarks.md were taken with.
PARAMS: dict[str, dict[str, dict]] = {
    "full": {
        "torch_speed": {"batch": 32, "channels": 64, "size": 32, "m": 4, "repeats": 20, "warmup": 2},
        "integer_throughput": {"tiles": [2, 4, 6], "batch": 4, "channels": 64, "size": 32, "min_time": 2.0},
        "float_error": {"tiles": [2, 4, 6, 8], "batch": 8, "channels": 64, "size": 32},
    },
    "quick": {
        "torch_speed": {"batch": 2, "channels": 8, "size": 16, "m": 4, "repeats": 3, "warmup": 1},
        "integer_throughput": {"tiles": [2, 4, 6], "batch": 1, "channels": 8, "size": 16, "min_time": 0.0,
                               "min_repeats": 2},
        "float_error": {"tiles": [2, 4, 6, 8], "batch": 2, "channels": 8, "size": 16},
    },
}  # fmt: skip

#: (key, function, one-line description) in the order they run.
STEPS: list[tuple[str, Callable[..., dict], str]] = [
    ("torch_speed", foundation.torch_speed, "torch tile convolution vs F.conv2d"),
    ("integer_throughput", foundation.integer_throughput, "integer reference throughput"),
    ("float_error", foundation.float_error, "float round-off vs tile size"),
]


def _layer_text(kw: dict) -> str:
    return f"N={kw['batch']}, C=K={kw['channels']}, {kw['size']}x{kw['size']}"


def collect(mode: str, log: Callable[[str], None] = print) -> dict:
    """Run every measurement of ``mode`` (``"full"`` or ``"quick"``) and return the results.

    Parameters
    ----------
    mode : str
        Key of :data:`PARAMS`.
    log : callable
        Receives one progress line per step.

    Returns
    -------
    dict
        The JSON document: ``schema``, ``mode``, ``machine``, ``parameters``, one entry
        per measurement and ``elapsed_s`` per measurement.
    """
    params = PARAMS[mode]
    total = len(STEPS) + 1
    doc: dict = {"schema": SCHEMA, "mode": mode, "machine": foundation.machine_info(), "parameters": params,
                 "elapsed_s": {}}  # fmt: skip
    for i, (key, fn, text) in enumerate(STEPS, 1):
        log(f"[{i}/{total}] {text} ({_layer_text(params[key])}) ...")
        t0 = time.perf_counter()
        doc[key] = fn(**params[key])
        doc["elapsed_s"][key] = round(time.perf_counter() - t0, 3)
        log(f"      done in {doc['elapsed_s'][key]:.1f} s")
    return doc


def write_json_atomic(doc: dict, path: Path) -> None:
    """Write ``doc`` as JSON to ``path`` via a temporary file and ``os.replace``.

    The folder is created if needed; a failure leaves any previous file untouched
    and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _si(value: float, unit: str = "") -> str:
    """``value`` with an SI prefix: 1.23e9 → '1.23 G'."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}".rstrip()


def _ms(t: dict) -> str:
    return f"{t['median_s'] * 1e3:.2f}"


def render_torch_speed(r: dict) -> list[str]:
    """Markdown lines of the torch speed table."""
    L = r["layer"]
    d = r["max_abs_diff"]
    lines = [
        f"**Torch tile convolution {L['tile']} vs `F.conv2d`** (N={L['N']}, C=K={L['C']}, "
        f"{L['H']}x{L['W']}, padding {L['padding']}, {L['dtype']}; median of {r['forward']['conv2d']['repeats']})",
        "",
        "| phase | winograd_conv (ms) | F.conv2d (ms) | ratio winograd/conv2d |",
        "|---|---:|---:|---:|",
    ]
    for phase, label in (("forward", "forward"), ("forward_backward", "forward + backward")):
        t = r[phase]
        lines.append(f"| {label} | {_ms(t['winograd'])} | {_ms(t['conv2d'])} | {t['ratio']:.2f} |")
    rel = r["max_rel_diff"]
    lines += ["", "Max abs (relative) difference winograd vs conv2d: "
                  + ", ".join(f"{k.replace('_', ' ')} {d[k]:.2e} ({rel[k]:.1e})" for k in d) + "."]
    return lines


def render_integer_throughput(r: dict) -> list[str]:
    """Markdown lines of the integer reference throughput table."""
    L = r["layer"]
    lines = [
        f"**Integer reference `integer_conv`** (N={L['N']}, C=K={L['C']}, {L['H']}x{L['W']}, padding "
        f"{L['padding']}, {L['act_bits']}-bit activations and weights)",
        "",
        "| tile | T | acc bits | accumulation | ms/call | direct-equivalent MAC/s | Winograd mult/s | paths bit-equal |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in r["rows"]:
        for path in ("float64_blas", "int64"):
            t = row[path]
            lines.append(
                f"| {row['tile']} | {row['tiles']} | {row['acc_bits']} | {path} | {_ms(t)} | "
                f"{_si(t['direct_macs_per_s'])} | {_si(t['winograd_mults_per_s'])} | {row['bit_equal_paths']} |"
            )
    return lines


def render_float_error(r: dict) -> list[str]:
    """Markdown lines of the float round-off table."""
    L = r["layer"]
    base = r["conv2d_float32"]
    lines = [
        f"**Float round-off vs float64 `F.conv2d`** (N={L['N']}, C=K={L['C']}, {L['H']}x{L['W']}, "
        f"padding {L['padding']}, seed {L['seed']}; output rms {r['output_rms']:.3f}; relative = / output rms)",
        "",
        "| tile | n | float32 max abs | float32 mean rel | float64 max abs | float64 mean rel |",
        "|---|---:|---:|---:|---:|---:|",
        f"| F.conv2d (direct) | - | {base['max_abs']:.2e} | {base['mean_rel']:.2e} | - | - |",
    ]
    for row in r["rows"]:
        a, b = row["float32"], row["float64"]
        lines.append(
            f"| {row['tile']} | {row['n']} | {a['max_abs']:.2e} | {a['mean_rel']:.2e} | "
            f"{b['max_abs']:.2e} | {b['mean_rel']:.2e} |"
        )
    return lines


def render_markdown(doc: dict) -> str:
    """The Markdown summary of a results document (as written to JSON)."""
    m = doc["machine"]
    lines = [
        f"Mode `{doc['mode']}`, {m['date']}, {m['cpu_count']} CPUs ({m['torch_threads']} torch threads), "
        f"Python {m['python']}, torch {m['torch']}, NumPy {m['numpy']}.",
        "",
    ]
    for render, key in ((render_torch_speed, "torch_speed"), (render_integer_throughput, "integer_throughput"),
                        (render_float_error, "float_error")):  # fmt: skip
        lines += render(doc[key]) + [""]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny layers: a smoke run of every measurement")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    doc = collect("quick" if args.quick else "full", log=lambda s: print(s, flush=True))
    total = len(STEPS) + 1
    print(f"[{total}/{total}] writing {args.out}", flush=True)
    write_json_atomic(doc, args.out)
    print()
    print(render_markdown(json.loads(Path(args.out).read_text(encoding="utf-8"))), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
