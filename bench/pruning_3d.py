"""3-D Winograd pruning on the generated shapes3d set (the 3-D CNN seed's method).

SmallC3D's 3-D convolutions become 3-D Winograd layers (F(2,3)³ and F(4,3)³); the
Winograd-domain weights are ranked by importance (the output-referred magnitude of
winnow.model.pruning.winograd; method importance_magnitude, winnow.model.pruning.magnitude), pruned along an iterative schedule with retraining between steps, and
fine-tuned with fake quantization; accuracy is measured on the integer reference.

    python -m bench.pruning_3d [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from winnow.model.files.atomic import atomic_write_json
from winnow.model.data.datasets import shapes3d
from winnow.model.pruning.magnitude import MagnitudeConfig
from winnow.model.training.experiment import ExperimentConfig, run_experiment, train_dense

OUT = Path(__file__).resolve().parent / "results" / "pruning_3d.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pruning_3d", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = shapes3d()
    base = dict(dataset="shapes3d", dense_epochs=2 if a.quick else 6, retrain_epochs=1 if a.quick else 6,
                qat_epochs=1, options=MagnitudeConfig(schedule="iterative", iterative_steps=3))
    dense = train_dense(ExperimentConfig(**base), data, progress=False)
    rows = []
    for m in (2,) if a.quick else (2, 4):
        for d in (1.0, 0.3) if a.quick else (1.0, 0.5, 0.3, 0.2):
            r = run_experiment(ExperimentConfig(**base, m=m, density=d), data, dense, progress=False)
            red = r["accounting"]["reduction_vs_direct"]
            rows.append({"tile": f"F({m},3)^3", "density": d, "dense_accuracy": r["dense_accuracy"],
                         "float_accuracy": r["float_accuracy"], "integer_accuracy": r["integer_accuracy"],
                         "reduction_weights": red["sparse_weights"], "reduction_weights_acts": red["sparse_weights_activations"],
                         "seconds": r["timings"]["total_s"]})
            print(f"| {rows[-1]['tile']} | {d} | {r['float_accuracy']:.2%} | {r['integer_accuracy']:.2%} | "
                  f"{red['sparse_weights']:.1f}× | {red['sparse_weights_activations']:.1f}× |", flush=True)
    atomic_write_json(OUT, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
