"""The report of an exploration, rendered from its JSON.

Into the output directory:

* ``points.json``: every valid point evaluated (configuration, estimated and measured
  resources, cycles, throughput, per-layer cycles and bounds), the front, the chosen point,
  the network, the part, the space, the resource model and its refit;
* ``front.md``: the table of the Pareto front; ``layers.md``: the chosen point's layers,
  compute- or memory-bound; ``summary.md``: both, with the run's figures;
* ``pareto.png``: throughput against LUTs and against DSPs, the front highlighted;
* ``chosen/params.json``: the chosen array as a preset for ``winnow gen --params`` and
  ``winnow build --params``.
"""

from __future__ import annotations

from pathlib import Path

from winnow.model.files.atomic import atomic_write_json, atomic_write_text

SCHEMA = "winnow-explore/1"


def _arch(r: dict) -> str:
    s = f"F({r['m']},3) {r['pes']}×{r['lanes']} S={r['clusters']} OTU {r['otu_lanes']} R={r['requant']}"
    if r.get("stream", 1.0) < 1.0:
        s += f" streams {r['stream']:g}"
    if r["org"] == "tiled":
        s += f" tiled {r['patch']}×{r['patch']} tiles, C blk {r['c_block']}, K blk {r['k_block']}"
    else:
        s += f" {r['org']}" + (f", K blk {r['k_block']}" if r["k_block"] else "")
    return s


def _src(r: dict, key: str) -> str:
    return "" if not r.get("measured") or key not in r["measured"] else "ᵐ"


def front_markdown(doc: dict) -> str:
    """The front as a table, fastest first (ᵐ: measured by a build; otherwise estimated)."""
    rows = sorted(doc["front"], key=lambda r: -r["fps"])
    lines = ["| # | array | B/cycle | cycles | inferences/s | LUT | FF | DSP | BRAM | Fmax MHz | memory-bound layers |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        star = " ★" if _same(r, doc["chosen"]) else ""
        lines.append(f"| {i}{star} | {_arch(r)} | {r['bandwidth']:g} | {r['cycles']:,} | {r['fps']:,.1f} | "
                     f"{r['LUT']:,}{_src(r, 'LUT')} | {r['FF']:,}{_src(r, 'FF')} | {r['DSP']}{_src(r, 'DSP')} | "
                     f"{r['BRAM']}{_src(r, 'BRAM')} | {r['fmax_mhz']:.1f}{_src(r, 'fmax_mhz')} | "
                     f"{r['memory_bound_layers']}/{len(r['layers'])} |")
    return "\n".join(lines) + "\n"


def layers_markdown(r: dict) -> str:
    """Per layer of the chosen point: cycles, compute vs memory, the bound, the busiest unit, the efficiency."""
    lines = ["| layer | cycles | compute | memory | bound | busiest unit | passes | floor | efficiency |",
             "|---|---|---|---|---|---|---|---|---|"]
    for L in r["layers"]:
        lines.append(f"| {L['layer']} | {L['cycles']:,} | {L['compute']:,} | {L['memory']:,} | {L['bound']} | "
                     f"{L['unit']} | {L['passes']:,} | {L['floor']:,} | {L['efficiency']:.3f} |")
    lines.append(f"| **network** | {r['cycles']:,} | | | {r['memory_bound_layers']} memory-bound | | | "
                 f"{sum(L['floor'] for L in r['layers']):,} | "
                 f"{sum(L['floor'] for L in r['layers']) / r['cycles']:.3f} |")
    return "\n".join(lines) + "\n"


def _same(a: dict, b: dict) -> bool:
    keys = ("m", "pes", "lanes", "clusters", "otu_lanes", "requant", "org", "k_block", "patch", "c_block", "stream",
            "bandwidth")
    return all(a.get(k) == b.get(k) for k in keys)


def summary_markdown(doc: dict) -> str:
    st, t, ch = doc["stats"], doc["target"], doc["chosen"]
    lines = [f"# Exploration: {doc['network']['name']} on {t['name']}", "",
             f"{st['arrays']:,} candidate arrays ({st['invalid']:,} invalid, {st['too_big']:,} over "
             f"{t['max_util']:.0%} of a resource, {st['fit_arrays']:,} fit) × {len(doc['space']['bandwidth'])} "
             f"bandwidth(s); front of {len(doc['front'])} points; {doc['engine']}; {doc['seconds']:.1f} s.", "",
             f"Chosen (★): {_arch(ch)} at {ch['bandwidth']:g} B/cycle: {ch['cycles']:,} cycles per inference, "
             f"{ch['fps']:,.1f} inferences/s at {ch['fmax_mhz']:.1f} MHz ({ch['fps_at_clock']:,.1f} at the "
             f"{t['clock_mhz']:g} MHz board clock); non-zeros {ch['counts']}.", "",
             "## Pareto front (ᵐ measured by a build, the rest estimated)", "", front_markdown(doc),
             "## Layers of the chosen point", "", layers_markdown(ch)]
    if doc.get("builds"):
        lines += ["## Builds", "", "| point | status | LUT est/meas | DSP est/meas | BRAM est/meas | Fmax est/meas |",
                  "|---|---|---|---|---|---|"]
        for b in doc["builds"]:
            e, m = b["estimate"], b["measured"] or {}
            lines.append(f"| {_arch({**b['point'], 'patch': b['point'].get('patch'), 'c_block': b['point'].get('c_block')})} "
                         f"| {b['status']}{': ' + b['error'][:120] if b.get('error') else ''} | "
                         f"{e['LUT']:,}/{m.get('LUT', '—')} | {e['DSP']}/{m.get('DSP', '—')} | "
                         f"{e['BRAM']}/{m.get('BRAM', '—')} | {e['fmax_mhz']:.1f}/{m.get('fmax_mhz', '—')} |")
        lines.append("")
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> Path:
    """Throughput against LUTs and DSPs: every point that fits (grey), the front (blue), the chosen one (star)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = [r for r in doc["records"] if r["status"] == "fits"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, res in zip(axes, ("LUT", "DSP")):
        ax.scatter([r[res] for r in fits], [r["fps"] for r in fits], s=6, c="0.75", label="fits")
        ax.scatter([r[res] for r in doc["front"]], [r["fps"] for r in doc["front"]], s=18, c="tab:blue",
                   label="Pareto front")
        ax.scatter([doc["chosen"][res]], [doc["chosen"]["fps"]], s=160, marker="*", c="tab:red", label="chosen")
        ax.axvline(doc["target"]["capacity"][res] * doc["target"]["max_util"], ls="--", c="0.4", lw=0.8)
        ax.set_xlabel(f"{res} ({'estimated' if res != 'DSP' else 'structural'}; dashed: usable limit)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("inferences/s at Fmax")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{doc['network']['name']} on {doc['target']['name']}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def to_json(doc: dict) -> dict:
    """The JSON of ``doc`` (the AccelConfig as its params)."""
    return {"schema": SCHEMA, **{k: v for k, v in doc.items() if k != "config"},
            "chosen_params": doc["config"].to_dict()}


def write_report(doc: dict, out) -> dict:
    """Write every file of the report (module docstring) into ``out``; return their paths."""
    out = Path(out)
    files = {"points": atomic_write_json(out / "points.json", to_json(doc)),
             "front": atomic_write_text(out / "front.md", front_markdown(doc)),
             "layers": atomic_write_text(out / "layers.md", layers_markdown(doc["chosen"])),
             "summary": atomic_write_text(out / "summary.md", summary_markdown(doc)),
             "plot": plot(doc, out / "pareto.png"),
             "params": doc["config"].write_params(out / "chosen")}
    return {k: str(v) for k, v in files.items()}
