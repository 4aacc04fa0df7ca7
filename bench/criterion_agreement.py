"""How often the two Winograd-domain rankings keep the same weights (issue 14, item 2).

``liu_pool`` keeps the largest plain |U| per layer (Liu & Pool 2018); ``importance_magnitude``
keeps the largest |U|·F (winnow.model.pruning.winograd). Both prune every layer to the
same density, so their kept sets have equal sizes and the agreement is
|kept by both| / |kept|. Measured on the dense SmallVGG trained on MNIST-5k (the
sweep's dense model: seed 0, 4 epochs) converted at F(2,3), F(4,3) and F(6,3), and on
i.i.d. Gaussian spatial kernels (64×64, no data), before any retraining.

    python -m bench.criterion_agreement [--quick] [--out bench/results/criterion_agreement.json]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from bench.tables import markdown_table
from winnow.model.data.datasets import mnist5k
from winnow.model.files.atomic import atomic_write_json
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.nn.layers import WinogradConv2d, winograd_layers
from winnow.model.pruning.winograd import prune_layer
from winnow.model.training.experiment import ExperimentConfig, train_dense

OUT = Path(__file__).resolve().parent / "results" / "criterion_agreement.json"
TILES = (2, 4, 6)
DENSITIES = (0.5, 0.3, 0.2, 0.1)


def agreement(layer, density: float) -> float:
    """|kept by plain ∩ kept by importance| / |kept| for one layer pruned from dense to ``density``."""
    masks = []
    for criterion in ("plain", "importance"):
        lay = copy.deepcopy(layer)
        prune_layer(lay, density, criterion)
        masks.append(lay.mask.bool())
    return float((masks[0] & masks[1]).sum() / masks[0].sum())


def render(rows: list[dict]) -> str:
    """The Markdown table of docs/pytorch.md from the JSON's rows."""
    return markdown_table(
        ["tile", "density", "trained SmallVGG, MNIST-5k (4 layers pooled)", "per layer", "i.i.d. Gaussian 64×64 kernels"],
        [[f"F({r['m']},3)", f"{r['density']}", f"{r['trained']:.1%}",
          " / ".join(f"{x:.0%}" for x in r["trained_per_layer"]), f"{r['gaussian']:.1%}"] for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.criterion_agreement", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one dense epoch")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    epochs = 1 if a.quick else 4
    dense = train_dense(ExperimentConfig(dense_epochs=epochs), mnist5k(), progress=False)
    torch.manual_seed(0)
    gaussian = torch.randn(64, 64, 3, 3)
    rows = []
    for m in TILES:
        net = copy.deepcopy(dense)
        convert_to_winograd(net, m=m)
        layers = [layer for _, layer in winograd_layers(net)]
        rnd = WinogradConv2d(64, 64, 3, m=m)
        with torch.no_grad():
            rnd.set_spatial_weight(gaussian)
        for d in DENSITIES:
            per_layer = [agreement(layer, d) for layer in layers]
            kept = [round(d * layer.mask.numel()) for layer in layers]
            row = {"m": m, "density": d, "trained_per_layer": per_layer,
                   "trained": sum(a * k for a, k in zip(per_layer, kept)) / sum(kept),
                   "gaussian": agreement(rnd, d)}
            rows.append(row)
            print(f"F({m},3) density {d}: trained {row['trained']:.1%} (per layer "
                  f"{', '.join(f'{x:.0%}' for x in per_layer)}), Gaussian kernels {row['gaussian']:.1%}", flush=True)
    atomic_write_json(a.out, {"dense_epochs": epochs, "rows": rows})
    print()
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
