"""``winnow import``: a user's CNN (ONNX, or ``file.py:factory`` + weights) to a Winnow model and network.

:func:`import_model` reads the model, folds BatchNorm, lowers every convolution onto the array's
F(m, r) (:mod:`winnow.model.imports.lowering`) and checks the lowered float model against the
graph's own semantics (``torch.nn.functional`` on the original parameters, BatchNorm unfolded;
for a factory, against the module itself): a lowering that does not compute the same function is
a bug, never a result. :func:`quantize_imported` calibrates and builds the integer network;
:func:`write_import` writes everything into a staging directory and moves it into place, so a
refused or failed import writes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from winnow.model.errors import InputShapeError, ModelImportError, ModelParseError
from winnow.model.imports.graph import Graph, check_finite, fold_batchnorm, infer_shapes
from winnow.model.imports.lowering import ImportedNet, calibrate, integer_network, lower

#: Relative error allowed between the lowered float64 model and the graph evaluated directly.
LOWERING_TOLERANCE = 1e-9


def read_graph(source: str, input_shape, weights=None) -> tuple[Graph, object]:
    """(Graph, the torch module for a factory or None) of ``source``: ``*.onnx`` or ``file.py:factory``."""
    s = str(source)
    if s.endswith(".onnx"):
        from winnow.model.imports.onnx_reader import read_onnx

        if weights is not None:
            raise ModelParseError(f"{s}: an ONNX model carries its weights; --weights is for file.py:factory")
        return read_onnx(s, input_shape), None
    if ".py:" in s:
        from winnow.model.imports.fx_reader import read_factory

        return read_factory(s, weights, input_shape)
    raise ModelParseError(f"{s[:120]!r}: expected an ONNX file (*.onnx) or path/to/file.py:factory")


def graph_forward(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """The graph evaluated directly with torch.nn.functional (strided convolutions, BatchNorm as such)."""
    vals = {graph.input: x}
    for n in graph.nodes:
        ins = [vals[t] for t in n.inputs]
        h = ins[0]
        p = {k: torch.tensor(v) for k, v in n.params.items()}
        if n.op == "conv":
            y = F.conv2d(h, p["weight"], p.get("bias"), stride=n.attrs["stride"], padding=n.attrs["padding"])
        elif n.op == "batchnorm":
            y = F.batch_norm(h, p["mean"], p["var"], p["gamma"], p["beta"], False, 0.0, n.attrs["eps"])
        elif n.op == "relu":
            y = F.relu(h)
        elif n.op == "maxpool":
            y = F.max_pool2d(h, n.attrs["size"])
        elif n.op == "avgpool":
            y = F.avg_pool2d(h, n.attrs["size"])
        elif n.op == "gap":
            y = F.adaptive_avg_pool2d(h, 1)
        elif n.op == "add":
            y = ins[0] + ins[1]
        elif n.op == "concat":
            y = torch.cat(ins, dim=1)
        elif n.op == "flatten":
            y = torch.flatten(h, 1)
        elif n.op == "linear":
            y = F.linear(h, p["weight"], p.get("bias"))
        else:
            raise ModelImportError(f"node {n.name}: unknown kind {n.op}")
        vals[n.output] = y
    return vals[graph.output]


@dataclass
class Imported:
    """An imported model: the Winnow model, the report's rows, what was folded, the lowering's check."""

    net: ImportedNet
    rows: list
    folded: list
    lowering_error: float
    source: str
    input_shape: tuple


def import_model(source: str, input_shape, weights=None, m: int = 4, r: int = 3, seed: int = 0) -> Imported:
    """Read, fold, lower and check a model (module docstring)."""
    graph, module = read_graph(source, input_shape, weights)
    check_finite(graph)
    infer_shapes(graph)  # every shape, before anything is folded (names the node that does not fit)
    x = torch.randn((4, *input_shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        ref = graph_forward(graph, x)
        if module is not None:
            try:
                direct = module.double().eval()(x)
            except Exception as exc:
                raise InputShapeError(f"{source}: the model does not run on inputs of shape "
                                      f"{','.join(map(str, input_shape))} ({type(exc).__name__}: "
                                      f"{str(exc)[:160]})") from None
            finally:
                module.float()
            if tuple(direct.shape) != tuple(ref.shape) or not torch.allclose(direct, ref, rtol=1e-9, atol=1e-9):
                raise ModelImportError(f"{source}: the traced graph does not compute what the module does (the "
                                       f"forward depends on something torch.fx does not record)")
    folded = fold_batchnorm(graph)
    net, rows = lower(graph, m=m, r_min=r)
    with torch.no_grad():
        got = net.double()(x)
    net.float()
    err = float((got - ref).abs().max() / max(float(ref.abs().max()), 1e-30))
    if not err <= LOWERING_TOLERANCE:
        raise ModelImportError(f"{source}: the lowered model differs from the original by {err:.3g} (relative); "
                               f"this is a bug in the lowering, please report it")
    return Imported(net, rows, folded, err, str(source), tuple(input_shape))


def calibration_images(input_shape, data: str | None, count: int = 256):
    """(calibration images, the data set's Split) of an import: ``data`` or, for 1×28×28, MNIST-5k."""
    from winnow.model.data.datasets import DATASETS, load_dataset

    name = data
    if name is None:
        if tuple(input_shape) != (1, 28, 28):
            raise InputShapeError(f"input shape {','.join(map(str, input_shape))}: no embedded calibration data of "
                                  f"this shape (MNIST-5k is 1,28,28; digits 1,8,8): give --data")
        name = "mnist5k"
    ds = DATASETS.get(name) if name in DATASETS else None
    if ds is None or not ds.embedded:
        raise InputShapeError(f"--data {name!r}: not an embedded data set ({', '.join(n for n, d in DATASETS.items() if d.embedded)})")
    split = load_dataset(name)
    if tuple(split.input_shape) != tuple(input_shape):
        raise InputShapeError(f"--data {name}: its images are {','.join(map(str, split.input_shape))}, the model "
                              f"takes {','.join(map(str, input_shape))}")
    g = torch.Generator().manual_seed(0)
    calib = split.x_train[torch.randperm(len(split.x_train), generator=g)[:count]]
    return calib, split


def quantize_imported(imp: Imported, calib: torch.Tensor, act_bits: int = 8, weight_bits: int = 8,
                      c_max: int | None = None):
    """Calibrate ``imp.net`` on ``calib`` (fake quantization on) and return its integer network."""
    calibrate(imp.net, calib, act_bits=act_bits, weight_bits=weight_bits, c_max=c_max)
    return integer_network(imp.net)


#: Logits closer than this are a tie in :func:`agreement` (the integer logits are multiples of a requantization
#: scale far above it).
TIE = 1e-6


def agreement(imp: Imported, inet, x: torch.Tensor, y=None) -> dict:
    """Top-1 agreement of the integer network with the float and the fake-quantized model (and accuracy)."""
    import copy

    net = imp.net
    q = net.quant
    with torch.no_grad():
        fq = copy.deepcopy(net).double().eval()
        fq_out = fq(x.double())
        fl = copy.deepcopy(net).double().eval()
        fl.quant = None
        for mod in fl.convs:
            mod.qat = None
        if hasattr(fl.linear, "linear"):
            fl.linear = fl.linear.linear
        fl_out = fl(x.double())
    assert q is net.quant
    pred = inet.predict(x.numpy())
    logits = inet.run(x.numpy())
    fq_pred = fq_out.argmax(1).numpy()
    # a disagreement where the integer logits of both classes are equal is a tie broken differently (the
    # float model's logits differ from the integer ones by rounding, ~1e-9), not a difference of the datapath
    rows = np.arange(len(pred))
    split = (pred != fq_pred) & (np.abs(logits[rows, pred] - logits[rows, fq_pred]) > TIE)
    out = {"images": int(len(x)),
           "integer_vs_float_top1": float((pred == fl_out.argmax(1).numpy()).mean()),
           "integer_vs_fake_quant_top1": float((pred == fq_pred).mean()),
           "integer_vs_fake_quant_disagreements_not_ties": int(split.sum()),
           "integer_vs_fake_quant_max_logit_diff": float(np.abs(logits - fq_out.numpy()).max())}
    if y is not None:
        out["float_accuracy"] = float((fl_out.argmax(1) == y).double().mean())
        out["integer_accuracy"] = float((torch.from_numpy(pred) == y).double().mean())
    return out


def array_needs(network_dir) -> dict:
    """What an array must hold to run the exported network's convolutions (untiled)."""
    from winnow.model.files.export import read_network

    convs = read_network(network_dir).convs
    dp = convs[0][1].config
    return {"tile": dp.alg.name, "c_max": dp.c_max, "k_max": max(l.out_channels for _, l in convs),
            "h_max": max(l.size[0] for _, l in convs), "w_max": max(l.size[1] for _, l in convs),
            "pad_max": max(max(l.padding) for _, l in convs)}


def report_markdown(doc: dict) -> str:
    lines = [f"# Import of {doc['source']}", "",
             f"Input {','.join(map(str, doc['input_shape']))}; every convolution on the array as {doc['tile']}; "
             f"lowered float model against the original: relative error {doc['lowering_error']:.2e}.", "",
             "| # | node | op | runs on | how | direct mults | lowered dense | lowered, structural zeros skipped |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(doc["operations"]):
        c = r.get("cost")
        cost = (f"{c['direct']:,} | {c['winograd_dense']:,} | {c['winograd_structural']:,}" if c else " | | ")
        lines.append(f"| {i} | {r['node']} | {r['op']} | {r['runs_on']} | {r['how']} | {cost} |")
    t = doc["cost"]
    lines += ["", f"Convolutions, multiplications per image: direct {t['direct']:,}; lowered Winograd dense "
                  f"{t['winograd_dense']:,}; with the lowering's structural zeros skipped {t['winograd_structural']:,}."]
    if doc.get("quantization"):
        qd = doc["quantization"]
        lines += ["", f"Post-training quantization on {qd['calibration_images']} {qd['data']} images; on "
                      f"{qd['check']['images']} test images the integer network agrees with the float model on "
                      f"{qd['check']['integer_vs_float_top1']:.1%} of top-1 predictions and with the fake-quantized "
                      f"model on {qd['check']['integer_vs_fake_quant_top1']:.1%}."]
        if doc.get("array_needs"):
            a = doc["array_needs"]
            lines += ["", "The array needs: " + ", ".join(f"{k} = {v}" for k, v in a.items()) + "."]
    return "\n".join(lines) + "\n"


def import_report(imp: Imported) -> dict:
    costs = [r["cost"] for r in imp.rows if r.get("cost")]
    net = imp.net
    return {"source": imp.source, "input_shape": list(imp.input_shape),
            "tile": f"F({net.spec['m']},{net.spec['r']})", "lowering_error": imp.lowering_error,
            "batchnorm_folded": [{"batchnorm": b, "into": c} for b, c in imp.folded], "operations": imp.rows,
            "cost": {k: sum(c[k] for c in costs) for k in ("direct", "winograd_dense", "winograd_structural")}}


def write_import(out, imp: Imported, inet=None, report: dict | None = None) -> Path:
    """Write model.pt (+ network/ and the reports) into ``out`` through a staging directory (nothing on failure)."""
    from winnow.model.files.atomic import atomic_write_json, atomic_write_text
    from winnow.model.files.export import export_network
    from winnow.model.nn.checkpoint import save_checkpoint

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
    try:
        save_checkpoint(imp.net, stage / "model.pt", meta={"import": imp.net.spec, "quant": imp.net.quant,
                                                          "input_shape": list(imp.input_shape)})
        doc = dict(report or import_report(imp))
        if inet is not None:
            export_network(inet, imp.input_shape, stage / "network")
            doc["array_needs"] = array_needs(stage / "network")
        atomic_write_json(stage / "report.json", doc)
        atomic_write_text(stage / "report.md", report_markdown(doc))
        for entry in sorted(stage.iterdir()):
            dest = out / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(entry, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def load_imported(path) -> ImportedNet:
    """The Winnow model ``model.pt`` of an import (or of a flow's training step), fake quantization restored."""
    from winnow.model.imports.lowering import attach_quant
    from winnow.model.nn.checkpoint import load_checkpoint, read_meta

    meta = read_meta(path)
    if "import" not in meta:
        raise ModelParseError(f"{path}: not the model of 'winnow import' (no import description)")
    net = ImportedNet(meta["import"])
    if meta.get("quant"):
        attach_quant(net, meta["quant"])
    load_checkpoint(net, path)
    return net



def finetune(net: ImportedNet, split, steps: int, lr: float = 1e-3, batch: int = 64, seed: int = 0,
             hooks=()) -> list:
    """``steps`` Adam steps on ``split.x_train`` (seeded batches), pruning masks held by ``hooks``; the losses."""
    from winnow.model.training.train import make_optimizer, TrainConfig, seed_everything

    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 100_000:
        raise ModelImportError(f"fine-tuning steps must be an integer in [0, 100000]; got {steps!r}")
    seed_everything(seed)
    opt = make_optimizer(net, TrainConfig(epochs=1, lr=lr, batch_size=batch, seed=seed))
    for h in hooks:
        h.attach(opt)
    g = torch.Generator().manual_seed(seed)
    losses = []
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(split.x_train), (batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(split.x_train[idx]), split.y_train[idx])
        if not torch.isfinite(loss):
            raise ModelImportError(f"fine-tuning diverged (loss {float(loss)}): lower the learning rate")
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    net.eval()
    return losses


def prune_imported(net: ImportedNet, split, density: float, steps: int, lr: float = 1e-3, seed: int = 0,
                   criterion: str = "importance"):
    """Winograd-domain magnitude pruning of every lowered layer to ``density`` (of its positions; the
    structural zeros count as pruned) by ``criterion`` (winnow.model.pruning.winograd.CRITERIA), then
    ``steps`` of fine-tuning with the masks held; the Pruner."""
    from winnow.model.pruning.winograd import Pruner, check_density

    check_density(density)
    pruner = Pruner(net, criterion=criterion)
    pruner.prune(density)
    finetune(net, split, steps, lr=lr, seed=seed, hooks=[pruner])
    return pruner
