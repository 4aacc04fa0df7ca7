"""One comparison table of every pruning method on the same model and data.

MNIST-5k, SmallVGG, F(4,3), 8-bit integer datapath; one dense model shared by all.
For each method: test accuracy on the bit-accurate integer reference, spatial
multiplications per image (zero weights skipped), Winograd-domain multiplications
(sparse weights), the bits stored for the Winograd weights including indices, and the
hardware cycles of the four convolutions on the sparse PE array (:data:`PE_ARRAY`,
exact cycle model of ``hw/``): sparse, dense Winograd on the same array, and the
physical floor. Spatial methods (filter pruning, KEP) appear twice: alone (then
converted to dense Winograd layers) and feeding Winograd-domain pruning to density 0.3.

    python -m bench.compare_methods [--quick] [--out docs/comparison.md]
    python -m bench.compare_methods --render-only   # Markdown from the saved JSON

Writes the JSON beside the Markdown (``bench/results/compare_methods.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from winnow.hw.config import AccelConfig
from winnow.hw.packer import sparse_and_dense
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.data.datasets import mnist5k
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError, WinnowError
from winnow.model.training.experiment import experiment_config, run_experiment, train_dense
from winnow.model.files.export import sparse_layers
from winnow.model.integer.network import build_integer_network
from winnow.model.files.layer_file import SparseLayer

ROOT = Path(__file__).resolve().parents[1]
#: (label, [train] keys): every row's method and options, looked up in winnow.model.pruning.registry.
ROWS = [
    ("dense Winograd (no pruning)", dict(method="importance_magnitude", density=1.0)),
    ("magnitude |U|, Winograd domain (Liu & Pool 2018)", dict(method="liu_pool", density=0.3)),
    ("importance-weighted magnitude |U|·F, Winograd domain (variant)", dict(method="importance_magnitude", density=0.3)),
    ("spatial-Winograd (Yu et al. 2019)", dict(method="spatial_winograd", density=0.3)),
    ("filter pruning, L1 norm, 50% filters", dict(method="filter_l1", filter_ratio=0.5, density=1.0)),
    ("filter pruning, distribution fit, 50% filters", dict(method="filter_distribution_fit", filter_ratio=0.5, density=1.0)),
    ("KEP, 4 of 9 taps, 8 patterns", dict(method="kep", density=1.0)),
    ("filter distribution fit 50% → Winograd 0.3", dict(method="filter_distribution_fit", filter_ratio=0.5, density=0.3)),
    ("KEP → Winograd 0.3", dict(method="kep", density=0.3)),
]

#: The sparse PE array the hardware columns assume: P = 4 PEs × L = 4 lanes (16
#: multipliers), limits that fit SmallVGG on MNIST (C, K ≤ 32, 28×28, padding 1). The
#: datapath (tile, points, bit widths, c_max) is the one the network was quantized for
#: (the packer refuses a layer quantized for another datapath), with c_max at most 32.
PE_ARRAY = dict(pes=4, lanes=4, otu_lanes=4, c_max=32, k_max=32, h_max=28, w_max=28, pad_max=1)


def pe_array(datapath: DatapathConfig) -> AccelConfig:
    """The (sparse) array of :data:`PE_ARRAY` for ``datapath``."""
    if datapath.c_max > PE_ARRAY["c_max"]:
        raise ConfigError(f"the network is quantized for c_max = {datapath.c_max} input channels; the array "
                          f"takes at most c_max = {PE_ARRAY['c_max']}")
    limits = {k: v for k, v in PE_ARRAY.items() if k != "c_max"}
    return AccelConfig(datapath=datapath, **limits)


def network_layers(model: nn.Module, input_shape) -> list[SparseLayer]:
    """The convolutions of a fake-quantized model as sparse layer files would hold them.

    Builds the integer network (as ``winnow.model.apps.prune_experiment`` does before export) and takes its
    layers with :func:`winnow.model.files.export.sparse_layers`, as the export does. Raises
    :class:`winnow.model.errors.WinnowError` (naming the layer) if a convolution is not a
    Winograd layer or the network cannot be made integer.
    """
    left = [name for name, mod in model.named_modules() if isinstance(mod, (nn.Conv2d, nn.Conv3d))]
    if left:
        raise WinnowError(f"convolution(s) {', '.join(left)} are not Winograd layers (not converted)")
    return sparse_layers(build_integer_network(copy.deepcopy(model).double()), input_shape)


def layer_cycles(layer: SparseLayer) -> dict:
    """Sparse and dense-Winograd cycles of one layer on :func:`pe_array` (raises ConfigError if it does not fit)."""
    _, sparse, dense = sparse_and_dense(layer, pe_array(layer.config))
    return {"name": layer.name, "C": layer.in_channels, "K": layer.out_channels, "input_size": list(layer.size),
            "density": layer.density, "sparse": sparse.to_dict(), "dense": dense.to_dict()}


def network_cycles(model: nn.Module, input_shape) -> dict:
    """Per-image cycles of every convolution of ``model`` on the array, and their sums.

    ``{"runs": False, "reason": ...}`` when a layer cannot run on the array (not a
    Winograd layer, another tile, beyond the array's limits).
    """
    try:
        layers = network_layers(model, input_shape)
        if not layers:
            raise WinnowError("the network has no convolution")
        per_layer = [layer_cycles(layer) for layer in layers]
    except WinnowError as exc:
        return {"runs": False, "reason": str(exc)}
    dp = layers[0].config
    sparse = sum(r["sparse"]["cycles"] for r in per_layer)
    dense = sum(r["dense"]["cycles"] for r in per_layer)
    floor = sum(r["sparse"]["floor"] for r in per_layer)
    return {"runs": True, "array": pe_array(dp).to_dict(), "tile": dp.alg.name, "c_max": dp.c_max,
            "layers": per_layer, "sparse_cycles": sparse, "dense_cycles": dense, "floor": floor,
            "speedup": dense / sparse, "efficiency": floor / sparse}


def run(quick: bool) -> dict:
    base = dict(dataset="mnist5k", m=4, dense_epochs=1 if quick else 4, retrain_epochs=1 if quick else 3,
                qat_epochs=1)
    data = mnist5k()
    dense = train_dense(experiment_config(base), data, progress=False)
    rows = []
    for i, (label, kw) in enumerate(ROWS[:4] if quick else ROWS):
        print(f"[{i + 1}/{len(ROWS)}] {label}", flush=True)
        r = run_experiment(experiment_config({**base, **kw}), data, dense, progress=False)
        acc = r["accounting"]["total_winograd_layers"]
        rows.append({"method": label, "config": r["config"], "integer_accuracy": r["integer_accuracy"],
                     "dense_accuracy": r["dense_accuracy"], "spatial_macs": r["spatial_macs"],
                     "dense_spatial_macs": r["dense_spatial_macs"], "winograd_mults": acc["sparse_weights"],
                     "winograd_mults_with_activations": acc["sparse_weights_activations"],
                     "winograd_density": r["winograd_density"], "storage_bits": r["winograd_storage_bits"],
                     "kep": r.get("kep"), "filters": r.get("filters"),
                     "hardware": network_cycles(r["model"], data.input_shape)})
    return {"array": {**PE_ARRAY, "multipliers": PE_ARRAY["pes"] * PE_ARRAY["lanes"]}, "rows": rows}


def render(doc: dict) -> str:
    rows = doc["rows"]
    d = rows[0]
    lines = ["# Pruning methods compared", "",
             "Generated by `make compare` (`python -m bench.compare_methods`) from the code; MNIST-5k, SmallVGG, "
             "F(4,3), 8-bit integer datapath, one shared dense model "
             f"(dense float accuracy {d['dense_accuracy']:.2%}). Multiplications are per image over the four "
             "convolutions; storage is the Winograd weights as the sparse layer files hold them (8-bit values, "
             "column indices, row pointers).", "",
             "| method | integer acc | spatial MACs | Winograd mults | Winograd mults (+act. zeros) | Winograd density | "
             "stored kbit | ",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['integer_accuracy']:.2%} | {r['spatial_macs'] / 1e6:.3f} M "
                     f"({r['dense_spatial_macs'] / r['spatial_macs']:.1f}×) | {r['winograd_mults'] / 1e6:.3f} M | "
                     f"{r['winograd_mults_with_activations'] / 1e6:.3f} M | {r['winograd_density']:.2f} | "
                     f"{r['storage_bits'] / 1e3:.1f} |")
    kep = next((r["kep"] for r in rows if r.get("kep")), None)
    if kep:
        lines += ["", f"KEP stores one pattern index per kernel plane: {kep['index_bits']:,} index bits for "
                      f"{kep['kept_weights']:,} kept spatial weights ({kep['index_bits_per_kept_weight']:.2f} bits "
                      f"each), against {kep['index_bits_unstructured']:,} for element-wise indices; parameters "
                      f"{kep['parameter_reduction']:.2f}× fewer."]
    fits = [r for r in rows if r.get("filters")]
    for r in fits:
        ks = ", ".join(f"{f['ks_distance']:.3f}" for f in r["filters"])
        lines.append("")
        lines.append(f"{r['method']}: Kolmogorov–Smirnov distance of kept vs original filter norms per layer: {ks}.")
    alone = next((r for r in rows if r.get("kep") and r["config"]["density"] == 1.0), None)
    if alone:
        lines += ["", f"KEP's spatial zeros do not survive the Winograd transform: U = G g Gᵀ mixes every tap of a "
                      f"plane into most positions, so the KEP model's Winograd density is "
                      f"{alone['winograd_density']:.2f} (exact zeros of U counted) and its Winograd multiplications "
                      f"{alone['winograd_mults'] / rows[0]['winograd_mults']:.2f}× the dense Winograd model's. "
                      "Spatial sparsity only carries into the Winograd domain when it is structured along the "
                      "supports of G (spatial-Winograd pruning) or removes whole filters (filter pruning)."]
    best = min(rows, key=lambda r: r["winograd_mults"])
    lines += ["", f"Fewest Winograd multiplications: {best['method']}, "
                  f"{rows[0]['dense_spatial_macs'] / best['winograd_mults']:.1f}× fewer than the dense direct "
                  f"convolution at {best['integer_accuracy']:.2%} integer accuracy."]
    lines += render_hardware(doc)
    return "\n".join(lines) + "\n"


def render_hardware(doc: dict) -> list[str]:
    """The hardware-cycle table and its reading, all figures from ``doc``."""
    rows = doc["rows"]
    hw = [r for r in rows if r.get("hardware", {}).get("runs")]
    a = doc.get("array", PE_ARRAY)
    lines = ["", "## Hardware cycles on the sparse PE array (cycle model)", "",
             f"Every method's convolutions, as its sparse layer files hold them (`SparseLayer.from_quantized_conv` "
             f"of the integer network), packed (`winnow.hw.packer.pack_layer`) for one array: P = {a['pes']} PEs × L = {a['lanes']} lanes ({a['pes'] * a['lanes']} multipliers), "
             f"an output unit finishing {a.get('otu_lanes', 1)} tiles per cycle, "
             f"C ≤ {a['c_max']}, K ≤ {a['k_max']}, inputs up to {a['h_max']}×{a['w_max']}, padding ≤ {a['pad_max']} "
             "(`bench.compare_methods.PE_ARRAY`), with the datapath the network was quantized for. Cycles per image, "
             "summed over the four convolutions, from the exact cycle model (`winnow.hw.cycle_model.packed_cycles`); "
             "dense = dense Winograd on the same array (every weight streamed, zeros included); "
             "floor = ⌈T·nnz/(P·L)⌉ per layer; speedup = dense / sparse; efficiency = floor / sparse; "
             "vs unpruned = the unpruned network's dense-Winograd cycles / this row's sparse cycles. "
             "Per-layer figures in `bench/results/compare_methods.json`.", "",
             "| method | sparse kcycles | dense kcycles | floor kcycles | speedup | efficiency | vs unpruned |",
             "|---|---|---|---|---|---|---|"]
    ref = rows[0].get("hardware", {})
    for r in rows:
        h = r.get("hardware")
        if not h:
            lines.append(f"| {r['method']} | not computed | | | | | |")
        elif not h["runs"]:
            lines.append(f"| {r['method']} | cannot run: {h['reason']} | | | | | |")
        else:
            vs = f"{ref['dense_cycles'] / h['sparse_cycles']:.2f}×" if ref.get("runs") else "–"
            lines.append(f"| {r['method']} | {h['sparse_cycles'] / 1e3:.1f} | {h['dense_cycles'] / 1e3:.1f} | "
                         f"{h['floor'] / 1e3:.1f} | {h['speedup']:.2f}× | {h['efficiency']:.3f} | {vs} |")
    if not hw:
        return lines
    notes = []

    def names(methods) -> str:
        return "; ".join(f"*{m}*" for m in methods)

    cant = [r["method"] for r in rows if r.get("hardware") and not r["hardware"]["runs"]]
    tiles = " and ".join(sorted({r["hardware"]["tile"] for r in hw}))
    notes.append(f"Every method's layers run on the array (all are {tiles} Winograd layers after conversion)."
                 if not cant else f"Not runnable on the array: {names(cant)} (reason in the table); the others "
                 f"are {tiles} Winograd layers after conversion.")
    cmax = sorted({r["hardware"]["c_max"] for r in hw})
    if len(cmax) > 1:
        small = [r["method"] for r in hw if r["hardware"]["c_max"] < cmax[-1]]
        notes.append(f"The datapath's c_max is the widest layer's C: {names(small)} "
                     f"{'is' if len(small) == 1 else 'are'} quantized for c_max = "
                     f"{', '.join(str(c) for c in cmax[:-1])} (the others {cmax[-1]}), so their array has the same "
                     "P × L and limits but narrower channel buffers and accumulators; the cycle count does not "
                     "depend on c_max.")
    fastest = min(hw, key=lambda r: r["hardware"]["sparse_cycles"])
    fh = fastest["hardware"]
    notes.append(f"Fewest cycles: *{fastest['method']}*, {fh['sparse_cycles']:,} per image "
                 f"({fh['speedup']:.2f}× its own dense-Winograd run"
                 + (f", {ref['dense_cycles'] / fh['sparse_cycles']:.2f}× fewer than the unpruned network's "
                    f"{ref['dense_cycles']:,} dense-Winograd cycles" if ref.get("runs") else "")
                 + f", {fastest['integer_accuracy']:.2%} integer accuracy).")
    pruned = [r for r in hw if r["winograd_density"] < 0.5]
    if pruned:
        notes.append("At Winograd density ≈ " + ", ".join(sorted({f"{r['winograd_density']:.2f}" for r in pruned}))
                     + " the speedup over dense Winograd on the same array is (in table order) "
                     + ", ".join(f"{r['hardware']['speedup']:.2f}×" for r in pruned)
                     + f" (1/density = {1 / np.mean([r['winograd_density'] for r in pruned]):.2f}).")
    spatial = [r for r in hw if r["winograd_density"] >= 0.5 and r is not rows[0]]
    if spatial:
        notes.append("Spatial-only rows keep most Winograd weights and gain little over their own dense run ("
                     + "; ".join(f"*{r['method']}* {r['hardware']['speedup']:.2f}×" for r in spatial)
                     + ")" + ("; filter pruning's gain is the smaller network itself (vs unpruned column)."
                              if any(r.get("filters") for r in spatial)
                              else "."))
    eff = [r["hardware"]["efficiency"] for r in hw]
    notes.append(f"Whole-network efficiency (floor / cycles) is {min(eff):.3f} to {max(eff):.3f}.")
    slow, slow_notes = {}, []
    for r in hw:
        for layer in r["hardware"]["layers"]:
            s = layer["sparse"]
            if s["bottleneck"] != "pe":
                slow.setdefault((layer["name"], layer["C"], layer["K"], s["bottleneck"]), []).append(s)
    for (name, c, k, unit), reps in slow.items():
        effs = [s["efficiency"] for s in reps]
        eff = f"{effs[0]:.2f}" if f"{min(effs):.2f}" == f"{max(effs):.2f}" else f"{min(effs):.2f} to {max(effs):.2f}"
        pe = max(s["pe"] for s in reps)
        busy = max(s[unit] for s in reps)
        slow_notes.append(f"Convolution `{name}` (C = {c}, K = {k}) is {unit.upper()}-bound in {len(reps)} of "
                          f"{len(hw)} rows (layer efficiency {eff}): the "
                          + ("output" if unit == "otu" else "input")
                          + f" transform is busy up to {busy:,} cycles per image, the PEs at most {pe:,}.")
    if slow:
        notes.append(" ".join(slow_notes + ["Everywhere else the PEs are the bottleneck."]))
    return lines + [""] + [f"* {n}" for n in notes]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_methods", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "comparison.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--render-only", action="store_true",
                    help="re-render the Markdown from bench/results/compare_methods.json without running anything")
    a = ap.parse_args(argv)
    results = ROOT / "bench" / "results" / "compare_methods.json"
    if a.render_only:
        doc = json.loads(results.read_text(encoding="utf-8"))
    else:
        torch.set_num_threads(a.threads)
        doc = run(a.quick)
        atomic_write_json(results, doc)
    atomic_write_text(a.out, render(doc))
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
