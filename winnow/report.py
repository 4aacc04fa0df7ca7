"""The run report: one Markdown summary with plots, and a JSON file of the key figures.

Rendered only from the steps' ``report.json`` files (never from live objects), so
``winnow report RUN_DIR`` reproduces it for any finished run. Plots (matplotlib, PNG):

* accuracy against Winograd-domain density (the [train] sweep): float, fake-quant and
  integer accuracy, with the dense network's;
* Winograd-domain density per position (n×n heatmap per convolution);
* cycles per layer: sparse, dense Winograd on the same array, and the floor;
* resource use per board (LUT, FF, DSP, BRAM as a share of the part).
"""

from __future__ import annotations

from pathlib import Path

from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.errors import WinnowError
from winnow.model.files.bounded import finite_float
from winnow.model.files.json_file import read_json


def _finished(root: Path) -> set[str] | None:
    """The steps ``flow.json`` records as finished; ``None`` outside a flow directory."""
    state = root / "flow.json"
    if not state.exists():
        return None
    doc = read_json(state, what="flow state")
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(steps, dict):
        raise WinnowError(f"{state}: not a flow state (no 'steps' object)")
    return set(steps)


def _load(root: Path, step: str, finished: set[str] | None) -> dict | None:
    """A step's report; in a flow directory only if ``flow.json`` records the step as finished."""
    if finished is not None and step not in finished:
        return None
    p = root / step / "report.json"
    if not p.exists():
        return None
    doc = read_json(p)
    if not isinstance(doc, dict):
        raise WinnowError(f"{p}: not a step report (a JSON object)")
    return doc


def check_board_report(doc, where) -> dict:
    """A board build report (``winnow build``'s ``report.json``) as the report reads it, or a named error.

    ``resources`` maps each resource to ``used`` and ``available`` (integers >= 0);
    ``fmax_mhz``, when present, is a finite number; ``board`` and ``device`` are strings.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), dict):
        raise WinnowError(f"{where}: not a board build report (a JSON object with 'resources', from 'winnow build')")
    for name, r in doc["resources"].items():
        if not isinstance(r, dict) or not all(isinstance(r.get(k), int) and not isinstance(r.get(k), bool)
                                              and 0 <= r[k] < 1 << 40 for k in ("used", "available")):
            raise WinnowError(f"{where}: field 'resources.{name[:40]}': expected used and available "
                              f"(integers >= 0), got {r!r:.80}")
    f = doc.get("fmax_mhz")
    if f is not None and finite_float(f) is None:
        raise WinnowError(f"{where}: field 'fmax_mhz': expected a finite number, got {f!r:.60}")
    for key in ("board", "device"):
        if key in doc and not isinstance(doc[key], str):
            raise WinnowError(f"{where}: field '{key}': expected a string, got {type(doc[key]).__name__}")
    return doc


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(train: dict, path: Path) -> Path:
    plt = _plt()
    runs = sorted(train["sweep"], key=lambda r: r["winograd_density"])
    d = [r["winograd_density"] for r in runs]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label, style in (("float_accuracy", "float (before QAT)", "o--"),
                              ("fake_quant_accuracy", "fake-quant", "s-"),
                              ("integer_accuracy", "integer reference (= fake-quant where they overlap)", "^:")):
        if all(r.get(key) is not None for r in runs):
            ax.plot(d, [100 * r[key] for r in runs], style, label=label)
    ax.axhline(100 * runs[0]["dense_accuracy"], color="grey", lw=1, ls=":", label="dense spatial")
    ax.set_xlabel("Winograd-domain density")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{train['config']['dataset']}, F({train['config']['m']},3), {train['config']['method']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_position_density(layers: list[dict], path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 2.8), squeeze=False)
    im = None
    for ax, layer in zip(axes[0], layers):
        im = ax.imshow(layer["position_density"], vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{layer['name']}: {layer['C']}→{layer['K']}\nd = {layer['density']:.2f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="density")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_cycles(cycles: dict, path: Path) -> Path:
    plt = _plt()
    import numpy as np

    rows = cycles["layers"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(rows) + 2), 3.6))
    w = 0.27
    ax.bar(x - w, [r["dense_cycles"] for r in rows], w, label="dense Winograd (same array)")
    ax.bar(x, [r["sparse"]["cycles"] for r in rows], w, label="sparse")
    ax.bar(x + w, [r["sparse"]["floor"] for r in rows], w, label="floor ⌈T·nnz/(P·L)⌉")
    ax.set_xticks(x, [f"{r['name']}\n{r['C']}→{r['K']}" for r in rows], fontsize=8)
    ax.set_ylabel("cycles per image")
    ax.set_title(cycles["array"], fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _utilization(build: dict) -> dict[str, float]:
    """Resource → used/available from a board build report (keys as winnow.boards.reports writes them)."""
    res = build.get("resources", {})
    out = {}
    for k, v in res.items():
        if isinstance(v, dict) and v.get("available"):
            out[k] = v["used"] / v["available"]
    return out


def plot_resources(builds: dict[str, dict], path: Path) -> Path:
    plt = _plt()
    import numpy as np

    kinds = sorted({k for b in builds.values() for k in _utilization(b)})
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(kinds) + 2), 3.4))
    w = 0.8 / max(1, len(builds))
    for i, (name, b) in enumerate(builds.items()):
        u = _utilization(b)
        ax.bar(x + (i - (len(builds) - 1) / 2) * w, [100 * u.get(k, 0) for k in kinds], w, label=name)
    ax.set_xticks(x, kinds)
    ax.set_ylabel("% of the part")
    ax.axhline(100, color="grey", lw=1, ls=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(root, out, title: str | None = None, boards: dict[str, dict] | None = None) -> dict:
    """Render ``out/summary.md``, ``out/summary.json`` and ``out/plots/*.png`` from the run in ``root``."""
    root, out = Path(root), Path(out)
    finished = _finished(root)
    train, export, gen, sim, cycles, build = (_load(root, s, finished) for s in ("train", "export", "gen", "sim",
                                                                                 "cycles", "build"))
    if not any((train, export, gen, sim, cycles, build)):
        raise WinnowError(f"{root}: no step reports found (expected train/, export/, gen/, sim/, cycles/ …)")
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    try:
        return _render(root, out, plots, title, boards, train, export, gen, sim, cycles, build)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError, ArithmeticError) as exc:  # a report of the wrong shape
        raise WinnowError(f"{root}: a step report (or a board report) is malformed: {type(exc).__name__}: {exc}; "
                          "re-run the step that wrote it") from None


def _render(root, out, plots, title, boards, train, export, gen, sim, cycles, build) -> dict:
    builds = dict(boards or {})
    if build is not None:
        builds[check_board_report(build, root / "build" / "report.json").get("board", "board")] = build
    md = [f"# {title or 'Winnow run'}", "", f"Run directory: `{root}`.", ""]
    summary: dict = {"root": str(root)}
    if train:
        c = train["config"]
        acc = train.get("integer_accuracy")
        md += ["## Training and pruning", "",
               f"{c['method']} on {c['dataset']}, F({c['m']},3), target density {c['density']}; integer accuracy "
               f"{_pct(acc)} at Winograd-domain density {train['winograd_density']:.3f}.", "",
               "| density | dense | float | fake-quant | integer |", "|---|---|---|---|---|"]
        for r in sorted(train["sweep"], key=lambda r: -r["density"]):
            md.append(f"| {r['winograd_density']:.3f} | {_pct(r.get('dense_accuracy'))} | {_pct(r.get('float_accuracy'))} | "
                      f"{_pct(r.get('fake_quant_accuracy'))} | {_pct(r.get('integer_accuracy'))} |")
        md += ["", f"![accuracy against density](plots/{plot_accuracy(train, plots / 'accuracy_density.png').name})", ""]
        summary["integer_accuracy"] = acc
        summary["winograd_density"] = train["winograd_density"]
        summary["sweep"] = train["sweep"]
    if export:
        md += ["## Sparse layer files", "", export["how"] + ".", "",
               "| layer | C→K | input | tile | density |", "|---|---|---|---|---|"]
        for l in export["layers"]:
            md.append(f"| {l['name']} | {l['C']}→{l['K']} | {'×'.join(map(str, l['size']))} | {l['tile']} | "
                      f"{l['density']:.3f} |")
        md += ["", "Winograd-domain density per position (rows: tile row, columns: tile column):", "",
               f"![position density](plots/{plot_position_density(export['layers'], plots / 'position_density.png').name})",
               ""]
    if gen:
        a = gen["array"]
        md += ["## Generated array", "",
               f"{gen['tile']}, P = {a['pes']} PEs × L = {a['lanes']} lanes ({a['multipliers']} multipliers), "
               f"{a['clusters']} cluster(s), OTU {a['otu_lanes']} lane(s), k_block = {a['k_block']}; "
               f"limits C ≤ {a['c_max']}, K ≤ {a['k_max']}, {a['h_max']}×{a['w_max']}; "
               f"{gen['memory_bits'] / 1e3:.1f} kbit of memories. Verilog: `gen/{gen['verilog']}`, "
               f"`gen/{gen['axis_wrapper']}` (AXI-Stream wrapper, compiled with the array's file), `gen/params.json`.", ""]
        summary["array"] = a
    if sim:
        md += ["## RTL simulation", "",
               f"{sim['simulator']}, test image {sim['image']} (label {sim['label']}): every output compared with the "
               "integer reference and the network's own activation, every cycle count with the model.", "",
               "| layer | outputs | bit-exact | RTL cycles | model cycles |", "|---|---|---|---|---|"]
        for r in sim["layers"]:
            md.append(f"| {r['name']} | {r['outputs']:,} | {'yes' if r['bit_exact'] else 'NO'} | {r['rtl_cycles']:,} | "
                      f"{r['model_cycles']:,} |")
        md.append("")
        summary["bit_exact"] = sim["all_bit_exact"]
    if cycles:
        from .steps import cycles_markdown

        t = cycles["network"]
        md += ["## Cycles: sparse vs dense Winograd vs floor", "", cycles_markdown(cycles),
               f"![cycles per layer](plots/{plot_cycles(cycles, plots / 'cycles.png').name})", "",
               f"Network: {t['sparse']:,} cycles sparse, {t['dense']:,} dense on the same array: "
               f"**{t['speedup']:.2f}× faster**, {t['efficiency']:.1%} of the physical floor.", ""]
        summary["cycles"] = t
    if builds:
        kinds = sorted({k for b in builds.values() for k in _utilization(b)})
        md += ["## Boards", "", "| board | part | Fmax (MHz) | " + " | ".join(kinds) + " |",
               "|---|---|---|" + "---|" * len(kinds)]
        for name, b in builds.items():
            u = _utilization(b)
            md.append(f"| {name} | {b.get('device', '')} | {b.get('fmax_mhz', float('nan')):.1f} | "
                      + " | ".join(f"{100 * u[k]:.1f} %" if k in u else "" for k in kinds) + " |")
        md += ["", f"![resources](plots/{plot_resources(builds, plots / 'resources.png').name})", ""]
        summary["boards"] = {k: {"fmax_mhz": b.get("fmax_mhz"), "utilization": _utilization(b)} for k, b in builds.items()}
    atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
    atomic_write_json(out / "summary.json", summary)
    return {"summary": "summary.md", "plots": sorted(p.name for p in plots.glob("*.png")), **summary}
