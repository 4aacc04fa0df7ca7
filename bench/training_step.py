"""One training step of a Winograd model against the same model built from nn.Conv2d.

The small VGG-style network for 28×28 MNIST (batch 64): forward, backward and an
optimizer step, median over repeats, all variants timed in turn in one run so load
changes hit them alike. The Winograd layers run their torch training path (separable
transforms, channels-last); ``--kron`` adds the same models on the Kronecker reference
path (the layer's code before that path existed), timed in the same run. Writes
``bench/results/training_step.json``; ``--render`` prints the table from it.

    python -m bench.training_step [--threads N] [--repeats R] [--kron] [--render]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.tables import markdown_table
from winnow.model.files.atomic import atomic_write_json
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.nn.layers import winograd_layers
from winnow.model.data.nets import SmallVGG
from winnow.model.training.optim import winograd_adam

OUT = Path(__file__).resolve().parent / "results" / "training_step.json"


def measure(threads: int = 1, repeats: int = 30, batch: int = 64, kron: bool = False) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = SmallVGG()
    variants = {"nn.Conv2d": base}
    for m in (2, 4, 6):
        v = copy.deepcopy(base)
        convert_to_winograd(v, m=m)
        variants[f"Winograd F({m},3)"] = v
        if kron:
            k = copy.deepcopy(v)
            for _, layer in winograd_layers(k):
                layer.path = "kron"
            variants[f"Winograd F({m},3), Kronecker path"] = k
    opts = {k: winograd_adam(v, 1e-3) for k, v in variants.items()}
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    samples = {k: [] for k in variants}
    for rep in range(repeats + 3):
        for k, model in variants.items():
            t = time.perf_counter()
            opts[k].zero_grad()
            F.cross_entropy(model(x), y).backward()
            opts[k].step()
            if rep >= 3:
                samples[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {"threads": threads, "batch": batch, "repeats": repeats, "torch": torch.__version__,
            "machine": platform.machine(), "median_s": med,
            "ratio_vs_conv2d": {k: med[k] / med["nn.Conv2d"] for k in med}, "samples_s": samples}


def render(r: dict) -> str:
    """The Markdown table docs/pytorch.md quotes."""
    rows = [[k, f"{v * 1e3:.1f}", f"{r['ratio_vs_conv2d'][k]:.2f}"] for k, v in r["median_s"].items()]
    return markdown_table(["model", "ms/step", "ratio vs nn.Conv2d"], rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.training_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--kron", action="store_true", help="also time the Kronecker reference path, in the same run")
    ap.add_argument("--render", action="store_true", help="print the table from the saved JSON, measure nothing")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.render:
        r = json.loads(a.out.read_text(encoding="utf-8"))
    else:
        r = measure(a.threads, a.repeats, kron=a.kron)
        atomic_write_json(a.out, r)
    print(f"training step, SmallVGG, batch {r['batch']}, {r['threads']} thread(s), median of {r['repeats']}:")
    print(render(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
