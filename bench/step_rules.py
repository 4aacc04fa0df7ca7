"""Spatial-Winograd retraining under each step rule (issue 14, item 1), on MNIST-5k.

One dense SmallVGG (seed 0) is shared; each run is ``spatial_winograd`` with the same
schedule and seed and only ``spatial_winograd_step_rule`` changed
(:data:`winnow.model.pruning.winograd.STEP_RULES`): ``none`` (plain steps: what the
earlier gradient scaling amounted to under Adam) and ``yu2019`` (Yu et al.'s released
rule, each update of U_p scaled by (F_p/F_min)^-1.5). The JSON also holds the runs of
``preconditioner_diagonal`` (the earlier factor D_p = ∏‖G_i‖², applied to the update),
measured by this script before that rule was removed for training worse.

    python -m bench.step_rules [--quick] [--out bench/results/step_rules.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.tables import markdown_table
from winnow.model.data.datasets import mnist5k
from winnow.model.files.atomic import atomic_write_json
from winnow.model.pruning.winograd import STEP_RULES
from winnow.model.training.experiment import ExperimentConfig, run_experiment, train_dense

OUT = Path(__file__).resolve().parent / "results" / "step_rules.json"


def render(runs: list[dict]) -> str:
    """The Markdown table of docs/pytorch.md from the JSON's runs."""
    return markdown_table(["tile", "density", "step rule", "float acc", "integer acc"],
                          [[f"F({r['m']},3)", f"{r['density']}", f"`{r['step_rule']}`", f"{r['float_accuracy']:.2%}",
                            f"{r['integer_accuracy']:.2%}"] for r in runs])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.step_rules", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="F(4,3), density 0.3, one epoch per phase")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = mnist5k()
    base = dict(method="spatial_winograd", dense_epochs=1 if a.quick else 4, retrain_epochs=1 if a.quick else 2,
                qat_epochs=1)
    dense = train_dense(ExperimentConfig(**base), data, progress=False)
    runs = []
    for m in (4,) if a.quick else (4, 6):
        for d in (0.3,) if a.quick else (0.3, 0.1):
            for rule in STEP_RULES:
                t = time.time()
                cfg = ExperimentConfig(**base, m=m, density=d, options={"step_rule": rule})
                r = run_experiment(cfg, data, dense, progress=False)
                row = {"m": m, "density": d, "step_rule": rule, "dense_accuracy": r["dense_accuracy"],
                       "float_accuracy": r["float_accuracy"], "integer_accuracy": r["integer_accuracy"],
                       "winograd_density": r["winograd_density"], "seconds": round(time.time() - t, 1)}
                runs.append(row)
                print(f"F({m},3) d={d} {rule:>24}: float {row['float_accuracy']:.4f}  integer "
                      f"{row['integer_accuracy']:.4f}  ({row['seconds']:.0f} s)", flush=True)
                atomic_write_json(a.out, {"base": base, "runs": runs})
    print()
    print(render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
