"""One training step of a Winograd model against the same model built from nn.Conv2d.

The small VGG-style network for 28×28 MNIST (batch 64): forward, backward and an
optimizer step, median over repeats, both variants timed in turn in one run so load
changes hit both. Writes ``bench/results/training_step.json``.

    python -m bench.training_step [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from winnow.model.files.atomic import atomic_write_json
from winnow.model.nn.convert import convert_to_winograd
from winnow.model.data.nets import SmallVGG
from winnow.model.training.optim import winograd_adam

OUT = Path(__file__).resolve().parent / "results" / "training_step.json"


def measure(threads: int = 1, repeats: int = 30, batch: int = 64) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = SmallVGG()
    variants = {"nn.Conv2d": base}
    for m in (2, 4, 6):
        v = copy.deepcopy(base)
        convert_to_winograd(v, m=m)
        variants[f"Winograd F({m},3)"] = v
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
    return {"threads": threads, "batch": batch, "repeats": repeats, "median_s": med,
            "ratio_vs_conv2d": {k: med[k] / med["nn.Conv2d"] for k in med}, "samples_s": samples}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.training_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    r = measure(a.threads, a.repeats)
    atomic_write_json(a.out, r)
    print(f"training step, SmallVGG, batch {r['batch']}, {r['threads']} thread(s), median of {r['repeats']}:")
    print("| model | ms/step | ratio vs nn.Conv2d |\n|---|---|---|")
    for k, v in r["median_s"].items():
        print(f"| {k} | {v * 1e3:.1f} | {r['ratio_vs_conv2d'][k]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
