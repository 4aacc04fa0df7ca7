"""Design-space exploration results for docs/explore.md: SmallVGG, the CIFAR-10 VGG and VGG-16 on the ULX3S,
and the resource model's error against the measured builds.

    python -m bench.explore_run [--only NAME] [--build-run OUT]   # minutes; writes bench/results/explore.json

* SmallVGG: the trained, pruned F(4,3) network of tests/data/trained_f43 (the demo's
  network, exact non-zeros for F(4,3)), the default search space;
* the CIFAR-10 VGG and VGG-16 at Winograd-domain density 0.3 from their shapes (uniform random
  masks), tiled arrays on smaller spaces (:data:`CIFAR_SPACE`, :data:`VGG16_SPACE`: a VGG-16 point
  takes about 2 s of cycle model, its layers run as thousands of passes);
* the resource model: every calibration record estimated by the model fitted on all of
  them, and by the model fitted on the others (leave-one-out);
* ``--build-run OUT``: copies the builds and refit of a ``winnow explore --build`` run in OUT.

``--render`` prints the Markdown from the JSON (docs/explore.md quotes it; a test checks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from winnow.model.files.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "explore.json"
SCHEMA = "winnow-bench-explore/1"
BOARD = "ulx3s"
#: The search space of the CIFAR-10 VGG (the rest of the axes at their defaults): tiled arrays only (its
#: 256-channel layers need far more memory than the part has to run whole), blocks of 32 or 64 channels.
CIFAR_SPACE = {"k_block": (32, 64), "c_block": (32, 64), "patch": (2, 4, 8), "org": ("tiled",)}
#: VGG-16's: a point's cycle model takes about 2 s (its layers run as thousands of passes), so fewer arrays.
VGG16_SPACE = {"pes": (4, 8, 16), "lanes": (2, 4, 8), "clusters": (1, 2, 4), "otu_lanes": (2, 4), "requant": ("m",),
               "k_block": (32, 64), "c_block": (32, 64), "patch": (4, 8), "org": ("tiled",), "stream": (0.5, 0.35)}
NETWORKS = [("SmallVGG", "tests/data/trained_f43", {}),
            ("CIFAR-10 VGG", "shapes:cifar-vgg@0.3", CIFAR_SPACE),
            ("VGG-16", "shapes:vgg16@0.3", VGG16_SPACE),
            ("VGG-16 at 90 % of the part", "shapes:vgg16@0.3", VGG16_SPACE)]
#: The usable fraction of the part's resources per network (default 0.5: winnow explore's).
MAX_UTIL = {"VGG-16 at 90 % of the part": 0.9}
#: Front rows kept per network (fastest first).
TOP = 8


def _row(r: dict) -> dict:
    keep = ("m", "pes", "lanes", "clusters", "otu_lanes", "requant", "org", "k_block", "patch", "c_block", "stream",
            "bandwidth", "cycles", "fps", "fps_at_clock", "LUT", "FF", "DSP", "BRAM", "fmax_mhz",
            "memory_bound_layers", "counts")
    return {k: r.get(k) for k in keep}


def explore_network(name: str, spec: str, axes: dict, work: Path) -> dict:
    from winnow.explore import networks, sweep, target
    from winnow.explore.engine import Engine
    from winnow.explore.space import SearchSpace

    tg = target.parse_target(BOARD, MAX_UTIL.get(name, 0.5))
    net = networks.load_network(ROOT / spec if not spec.startswith("shapes:") else spec)
    sp = SearchSpace(**{"bandwidth": tuple(tg.bandwidths), **axes})
    t0 = time.perf_counter()
    try:
        with Engine() as eng:
            doc = sweep.explore(net, tg, sp, eng, work / name.replace(" ", "_"), progress=print, bars=False)
    except sweep.NothingFitsError as exc:  # a result too: the network's arrays need more than the part has
        return {"name": name, "network": spec, "space": sp.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
                "nothing_fits": str(exc)}
    front = sorted(doc["front"], key=lambda r: -r["fps"])
    return {"name": name, "network": spec, "space": sp.to_dict(), "seconds": round(time.perf_counter() - t0, 1),
            "stats": doc["stats"], "front_size": len(front), "front": [_row(r) for r in front[:TOP]],
            "chosen": {**_row(doc["chosen"]), "layers": doc["chosen"]["layers"]}}


def resource_errors() -> dict:
    from winnow.explore import resources

    recs = resources.read_calibration()
    model = resources.fit(recs)
    fitted = resources.errors(model, recs)
    loo = resources.loo_errors(recs)
    return {"records": [{"id": r["id"], "status": r["status"], "measured": r["measured"],
                         "source": r["provenance"].get("source")} for r in recs],
            "in_sample": fitted, "loo": loo,
            "summary": {"in_sample": resources.error_summary(fitted), "loo": resources.error_summary(loo)}}


def build_run(path: Path) -> dict:
    doc = json.loads((path / "points.json").read_text(encoding="utf-8"))
    return {"command": f"winnow explore {doc['network']['source']} --board {doc['target']['name']} --build "
                       f"{len(doc['builds'])}", "builds": doc["builds"], "refit": doc["refit"],
            "seconds": doc["seconds"]}


def _arch(r: dict) -> str:
    from winnow.explore.report import _arch as arch

    return arch(r)


def render(doc: dict) -> str:
    lines = []
    for n in doc.get("networks", []):
        if "nothing_fits" in n:
            lines += [f"#### {n['name']} on the ULX3S", "", f"No array fits ({n['network']}): {n['nothing_fits']}.", ""]
            continue
        st = n["stats"]
        lines += [f"#### {n['name']} on the ULX3S", "",
                  f"{st['arrays']:,} candidate arrays, {st['fit_arrays']:,} fit, front of {n['front_size']} points, "
                  f"{n['seconds']:.0f} s on 2 cores ({n['network']}).", "",
                  "| array | B/cycle | cycles | inferences/s | LUT | DSP | BRAM | Fmax MHz | memory-bound layers |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in n["front"]:
            star = " ★" if all(r[k] == n["chosen"][k] for k in r) else ""
            lines.append(f"| {_arch(r)}{star} | {r['bandwidth']:g} | {r['cycles']:,} | {r['fps']:,.1f} | {r['LUT']:,} | "
                         f"{r['DSP']} | {r['BRAM']} | {r['fmax_mhz']:.1f} | {r['memory_bound_layers']} |")
        ch = n["chosen"]
        lines += ["", f"Layers of the chosen point (★, non-zeros {ch['counts']}):", "",
                  "| layer | cycles | compute | memory | bound | busiest unit | passes | efficiency |",
                  "|---|---|---|---|---|---|---|---|"]
        for L in ch["layers"]:
            lines.append(f"| {L['layer']} | {L['cycles']:,} | {L['compute']:,} | {L['memory']:,} | {L['bound']} | "
                         f"{L['unit']} | {L['passes']:,} | {L['efficiency']:.3f} |")
        lines.append("")
    res = doc.get("resources")
    if res:
        lines += ["#### Resource model against the measured builds", "",
                  "| build | status | LUT | FF | DSP | BRAM | LUTRAM | Fmax |", "|---|---|---|---|---|---|---|---|"]
        for fit, loo in zip(res["in_sample"], res["loo"]):
            cells = []
            for k in ("LUT", "FF", "DSP", "BRAM", "LUTRAM", "fmax_mhz"):
                if k in fit["error"]:
                    cells.append(f"{fit['measured'][k]:,.0f}: {fit['error'][k]:+.0%} / {loo['error'][k]:+.0%}")
                else:
                    cells.append("—")
            lines.append(f"| {fit['id']} | {fit['status']} | " + " | ".join(cells) + " |")
        lines += ["", "Mean |error| fitted on all / leave-one-out: " + "; ".join(
            f"{k} {v['mean_abs']:.0%} / {res['summary']['loo'][k]['mean_abs']:.0%}"
            for k, v in res["summary"]["in_sample"].items() if k in res["summary"]["loo"]) + ".", ""]
    br = doc.get("build_run")
    if br:
        lines += ["#### Builds in the loop", "", f"`{br['command']}` ({br['seconds'] / 60:.0f} min):", "",
                  "| point | status | LUT est → meas | FF | DSP | BRAM | Fmax MHz |", "|---|---|---|---|---|---|---|"]
        for b in br["builds"]:
            e, m = b["estimate"], b["measured"] or {}
            p = {"patch": None, "c_block": None, **b["point"]}

            def pair(k, fmt="{:,}"):
                return f"{fmt.format(e[k])} → {fmt.format(m[k]) if k in m else '—'}"

            lines.append(f"| {_arch(p)} | {b['status']}{': ' + b['error'][:100] if b.get('error') else ''} | "
                         f"{pair('LUT')} | {pair('FF')} | {pair('DSP')} | {pair('BRAM')} | "
                         f"{pair('fmax_mhz', '{:.1f}')} |")
        if br.get("refit"):
            rf = br["refit"]
            lines += ["", f"Refit on {rf['records']} builds. Error on the new builds before the refit: " + "; ".join(
                f"{k} {v['mean_abs']:.0%}" for k, v in rf["error_before_refit"].items()) + "; leave-one-out after: "
                + "; ".join(f"{k} {v['mean_abs']:.0%}" for k, v in rf["loo"].items()) + "."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", choices=[n for n, _, _ in NETWORKS] + ["resources"])
    ap.add_argument("--build-run", type=Path, help="a 'winnow explore --build' output directory to record")
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "explore-bench")
    a = ap.parse_args(argv)
    doc = json.loads(a.out.read_text(encoding="utf-8")) if a.out.exists() else {"schema": SCHEMA}
    if not a.render:
        if a.only in (None, "resources"):
            doc["resources"] = resource_errors()
        nets = {n["name"]: n for n in doc.get("networks", [])}
        for name, spec, axes in NETWORKS:
            if a.only in (None, name):
                print(f"[explore] {name} …", flush=True)
                nets[name] = explore_network(name, spec, axes, a.work)
        doc["networks"] = [nets[n] for n, _, _ in NETWORKS if n in nets]
        if a.build_run:
            doc["build_run"] = build_run(a.build_run)
        atomic_write_json(a.out, doc)
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
