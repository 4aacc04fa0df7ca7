"""Accuracy against Winograd-domain density on MNIST-5k (issue: PyTorch side, results).

Grid: tiles F(4,3) and F(6,3); methods importance_magnitude (|U|·F, our variant of
Li 2017 / Liu & Pool 2018), liu_pool (plain |U|, Liu & Pool 2018's criterion) and
spatial_winograd (Yu et al. 2019); with and without Winograd-ReLU; densities 1.0,
0.5, 0.3, 0.2, 0.1. One dense spatial model (seed 0) is shared by every run. Each run
prunes, retrains, fine-tunes with fake quantization and measures float, fake-quant and
integer-reference accuracy plus the multiplication accounting.

    python -m bench.pruning_sweep [--quick] [--out bench/results/pruning_sweep.json]

The runs after the shared dense model are independent tasks on the Dask engine of
``winnow explore`` (:class:`winnow.explore.engine.Engine`): in-process with one thread by
default (torch's global random generator is shared by threads, so one at a time keeps
the results those of the sequential sweep), ``--workers N`` local processes, or
``--cluster ADDRESS``. Results are appended to the JSON as each run finishes
(atomically), and runs already in it are skipped, so an interrupted sweep resumes; the
final file lists the runs in grid order. ``--render`` prints the Markdown tables
from the JSON without training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from winnow.model.files.atomic import atomic_write_json
from winnow.model.data.datasets import mnist5k
from winnow.model.training.experiment import experiment_config, run_experiment, train_dense

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pruning_sweep.json"
DENSITIES = (1.0, 0.5, 0.3, 0.2, 0.1)
#: The methods swept (registered in winnow.model.pruning.registry); at density 1.0 nothing is pruned, so
#: only the first runs there.
SWEPT = ("importance_magnitude", "liu_pool", "spatial_winograd")


def grid(quick: bool):
    tiles = (4,) if quick else (4, 6)
    densities = (1.0, 0.3) if quick else DENSITIES
    for m in tiles:
        for wrelu in (False, True):
            for method in SWEPT:
                for d in densities:
                    if d < 1.0 or method == SWEPT[0]:  # at 1.0 nothing is pruned: the same run for every method
                        yield {"m": m, "winograd_relu": wrelu, "method": method, "density": d}


def key(p: dict) -> str:
    return f"F({p['m']},3) {p['method']} relu={p['winograd_relu']} d={p['density']}"


def run_point(p: dict, base: dict, data, dense) -> dict:
    """One grid point: prune, retrain, fine-tune, measure (an engine task)."""
    cfg = experiment_config({**base, **p})
    r = run_experiment(cfg, data, dense, progress=False)
    r.pop("model")
    r.pop("scales")
    acc = r.pop("accounting")
    r["reduction_vs_direct"] = acc["reduction_vs_direct"]
    r["multiplications"] = acc["total_winograd_layers"]
    r["layers"] = [{k: l[k] for k in ("name", "tile", "weight_density", "activation_density")} for l in acc["layers"]]
    return r


def run(out: Path, quick: bool, engine=None, grid_points=None) -> dict:
    from winnow.explore.engine import Engine

    doc = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    base = dict(dense_epochs=1 if quick else 4, retrain_epochs=1 if quick else 3, qat_epochs=1)
    points = list(grid_points if grid_points is not None else grid(quick))
    todo = [p for p in points if key(p) not in doc["runs"]]
    print(f"[sweep] {len(todo)} runs to do, {len(doc['runs'])} already in {out}", flush=True)
    if todo:
        data = mnist5k()
        t = time.time()
        dense = train_dense(experiment_config({**base, **todo[0]}), data, progress=False)
        doc["dense"] = {"seconds": round(time.time() - t, 1), "epochs": base["dense_epochs"]}
        with (engine or Engine(threads=1)) as eng:
            args = [(p, base, eng.scatter(data), eng.scatter(dense)) for p in todo]
            for n, (i, r) in enumerate(eng.run(run_point, args, label="sweep", progress=False), 1):
                doc["runs"][key(todo[i])] = r
                atomic_write_json(out, doc)
                print(f"[{n}/{len(todo)}] {key(todo[i])}: integer acc {r['integer_accuracy']:.4f}  fake-quant "
                      f"{r['fake_quant_accuracy']:.4f}  float {r['float_accuracy']:.4f}  reduction "
                      f"{r['reduction_vs_direct']['sparse_weights_activations']:.1f}x "
                      f"({r['timings']['total_s']:.0f} s)", flush=True)
    order = {key(p): i for i, p in enumerate(points)}  # grid order, whatever order the tasks finished in
    doc["runs"] = dict(sorted(doc["runs"].items(), key=lambda kv: order.get(kv[0], len(order))))
    atomic_write_json(out, doc)
    return doc


def render(doc: dict) -> str:
    runs = list(doc["runs"].values())
    if not runs:
        return "(no runs)"
    dense_acc = runs[0]["dense_accuracy"]
    lines = [f"Dense spatial baseline (float): {dense_acc:.2%} test accuracy.", "",
             "| tile | method | Winograd-ReLU | density | float acc | fake-quant acc | integer acc | "
             "mult. reduction (weights) | (weights + activations) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["config"]["m"], r["config"]["winograd_relu"], r["config"]["method"],
                                         -r["config"]["density"])):
        c = r["config"]
        red = r["reduction_vs_direct"]
        lines.append(f"| F({c['m']},3) | {c['method']} | {'yes' if c['winograd_relu'] else 'no'} | {c['density']} | "
                     f"{r['float_accuracy']:.2%} | {r['fake_quant_accuracy']:.2%} | {r['integer_accuracy']:.2%} | "
                     f"{red['sparse_weights']:.1f}× | {red['sparse_weights_activations']:.1f}× |")
    ok = [r for r in runs if r["integer_accuracy"] >= dense_acc - 0.01]
    if ok:
        best = max(ok, key=lambda r: r["reduction_vs_direct"]["sparse_weights_activations"])
        c = best["config"]
        lines += ["", f"Largest multiplication reduction against direct convolution with at most 1 point of "
                      f"accuracy loss (integer reference vs dense float): "
                      f"**{best['reduction_vs_direct']['sparse_weights_activations']:.1f}×** "
                      f"(F({c['m']},3), {c['method']}, Winograd-ReLU {'on' if c['winograd_relu'] else 'off'}, "
                      f"density {c['density']}, integer accuracy {best['integer_accuracy']:.2%}); "
                      f"weights only: {best['reduction_vs_direct']['sparse_weights']:.1f}×."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pruning_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one tile, two densities, one epoch each (smoke run)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--render", action="store_true", help="only print the tables from the JSON")
    ap.add_argument("--workers", type=int, default=0, help="local worker processes (default: in-process, one run "
                                                           "at a time)")
    ap.add_argument("--cluster", metavar="ADDRESS", help="a running Dask scheduler, tcp://HOST:PORT")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: OpenMP's spinning barriers make oversubscribed "
                         "multi-threaded training an order of magnitude slower on a shared 2-core machine)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.render:
        if not args.out.exists():
            print(f"error: {args.out} does not exist; run the sweep first", file=sys.stderr)
            return 1
        print(render(json.loads(args.out.read_text())))
        return 0
    from winnow.explore.engine import Engine

    engine = Engine(args.cluster, processes=args.workers, threads=1) if (args.workers or args.cluster) else None
    doc = run(args.out, args.quick, engine)
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
