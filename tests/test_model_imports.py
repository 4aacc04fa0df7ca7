"""winnow import: ONNX and torch.fx readers, the exact lowering onto the array, host operations, bad input.

Oracles: torch's own strided ``F.conv2d`` and the user's ``nn.Module`` (float64) for the lowering;
real-valued arithmetic (scales times integers) for the host operations' rounding; the float model
for the integer network's predictions.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from winnow.model.errors import (CheckpointMismatchError, DynamicShapeError, InputShapeError, ModelImportError,
                                 ModelParseError, UnsupportedOperationError)
from winnow.model.imports.fx_reader import load_factory
from winnow.model.imports.importer import (agreement, calibration_images, import_model, prune_imported,
                                           quantize_imported, write_import)
from winnow.model.imports.lowering import lowered_weight, plan_conv, structural_mask
from winnow.model.integer.host_ops import Add, AvgPool, GlobalAvgPool, common_requant, host_requant, polyphase

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "data" / "imports" / "resnet_style.py"
FACTORY = f"{MODELS}:factory"


def _export(model, path: Path, shape=(1, 1, 28, 28), **kw) -> Path:
    torch.onnx.export(model, torch.zeros(shape), str(path), dynamo=False, **kw)
    return path


@pytest.fixture(scope="module")
def resnet():
    return load_factory(FACTORY)


@pytest.fixture(scope="module")
def onnx_file(resnet, tmp_path_factory):
    # PRESERVE keeps the BatchNormalization nodes (eval mode would let the exporter fold them itself)
    return _export(resnet, tmp_path_factory.mktemp("onnx") / "resnet.onnx",
                   training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


# ---------------------------------------------------------------------------- the lowering
@pytest.mark.parametrize("k,stride,pad,size", [(3, 2, 1, 9), (3, 2, 1, 10), (1, 2, 0, 9), (5, 2, 2, 11),
                                               (2, 2, 0, 8), (4, 2, 1, 9), (1, 1, 0, 7), (2, 1, 1, 6), (5, 1, 2, 7)])
def test_lowered_convolution_equals_the_strided_one(k, stride, pad, size):
    """polyphase split + stride-1 r×r convolution without padding == torch's strided k×k convolution."""
    r = 3
    g = torch.Generator().manual_seed(k * 10 + stride)
    x = torch.randn((2, 3, size, size + 1), generator=g, dtype=torch.float64)
    w = torch.randn((4, 3, k, k), generator=g, dtype=torch.float64)
    want = F.conv2d(x, w, stride=stride, padding=pad)
    r = max(r, -(-k // stride)) if stride > 1 else max(r, k)
    low = plan_conv(stride, k, pad, r, tuple(want.shape[2:]))
    wl = torch.tensor(lowered_weight(w.numpy(), low, r))
    if low.polyphase:
        xin = polyphase(x, stride, pad, low.offset, low.phases, low.size)
        got = F.conv2d(xin, wl)
    else:
        got = F.conv2d(x, wl, padding=pad + low.offset)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_structural_mask_keeps_the_positions_a_1x1_kernel_reaches():
    from winnow.model.algebra.cook_toom import winograd

    alg = winograd(4, 3)
    centre = np.zeros((3, 3))
    centre[1, 1] = 1
    mask = structural_mask(centre, alg)
    u = np.asarray(alg.G_f64) @ centre @ np.asarray(alg.G_f64).T  # G e_c e_cᵀ Gᵀ, the centre tap's U
    assert np.array_equal(mask, np.abs(u) > 1e-12) and mask.sum() == 16


def test_onnx_import_computes_what_the_torch_model_computes(resnet, onnx_file):
    imp = import_model(str(onnx_file), (1, 28, 28))
    ops = [s["op"] for s in imp.net.steps]
    assert ops.count("conv") == 5 and ops.count("polyphase") == 2 and "add" in ops and "gap" in ops
    assert len(imp.folded) == 4  # every BatchNorm folded into its convolution
    x = torch.randn((3, 1, 28, 28), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        want = resnet.double()(x)
        got = imp.net.double()(x)
    resnet.float()
    assert imp.lowering_error < 1e-12  # float64 U against the graph; the model keeps U in float32:
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_onnx_exported_in_eval_mode_imports_too(resnet, tmp_path):
    """The exporter's own BatchNorm folding (the default, eval mode) gives the same function."""
    imp = import_model(str(_export(resnet, tmp_path / "eval.onnx")), (1, 28, 28))
    assert imp.folded == []
    x = torch.randn((2, 1, 28, 28), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(imp.net.double()(x), resnet.double()(x), rtol=1e-6, atol=1e-6)
    resnet.float()


def test_factory_with_weights_and_the_branches_model(tmp_path, resnet):
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    imp = import_model(FACTORY, (1, 28, 28), tmp_path / "w.pt")
    assert imp.lowering_error < 1e-12
    br = import_model(f"{MODELS}:branches", (1, 8, 8))  # 5×5 among 3×3s: every layer F(4,5)
    assert br.net.spec["r"] == 5
    assert {s["op"] for s in br.net.steps} >= {"concat", "maxpool", "avgpool", "polyphase", "flatten", "linear"}


# ---------------------------------------------------------------------------- host operations
def test_host_add_and_pooling_round_to_the_real_value():
    rng = np.random.default_rng(0)
    sa, sb, so = 0.013, 0.021, 0.03
    a = rng.integers(-127, 128, (2, 3, 5, 5))
    b = rng.integers(-127, 128, (2, 3, 5, 5))
    mult, shift = common_requant([sa / so, sb / so], "add")
    out = Add(tuple(mult), shift, 8, so)(a, b)
    real = (a * sa + b * sb) / so
    inside = np.abs(real) < 127
    # half an LSB of rounding plus the multipliers' relative error (< 2^-14 each)
    assert np.all(np.abs(out - real)[inside] <= 0.5 + np.abs(real[inside]) * 2.0**-13)
    assert np.all(out[real >= 128] == 127) and np.all(out[real <= -129] == -128)
    x = rng.integers(-128, 128, (2, 3, 9, 9))
    for op, want in ((AvgPool(3, *host_requant(1 / 9, "avg"), 8), x.reshape(2, 3, 3, 3, 3, 3).mean(axis=(3, 5))),
                     (GlobalAvgPool(*host_requant(1 / 81, "gap"), 8), x.mean(axis=(2, 3), keepdims=True))):
        got = op(x)
        assert got.shape == want.shape and np.all(np.abs(got - want) <= 0.5 + np.abs(want) * 2.0**-14)


# ---------------------------------------------------------------------------- quantization, pruning, files
def test_quantized_import_tracks_the_float_model_and_round_trips(onnx_file, tmp_path):
    imp = import_model(str(onnx_file), (1, 28, 28))
    calib, split = calibration_images((1, 28, 28), None, 128)
    pruner = prune_imported(imp.net, split, 0.5, steps=5)
    structural = [m.mask.clone() for m in imp.net.convs]
    assert 0.4 <= pruner.density() <= 0.5
    for mod, s in zip(imp.net.convs, structural):
        assert torch.all(mod.mask <= s) and torch.all(mod.weight[mod.mask == 0] == 0)
    inet = quantize_imported(imp, calib)
    check = agreement(imp, inet, split.x_test[:300], split.y_test[:300])
    assert check["integer_vs_fake_quant_top1"] == 1.0 and check["integer_vs_fake_quant_max_logit_diff"] < 1e-6
    assert check["integer_vs_float_top1"] >= 0.9
    out = write_import(tmp_path / "imp", imp, inet)
    from winnow.model.files.export import read_network

    back = read_network(out / "network")
    doc = json.loads((out / "network" / "network.json").read_text())
    assert doc["format_version"] == 3 and len(back.convs) == 5
    x = split.x_test[:40].numpy()
    assert np.array_equal(back.net.run(x), inet.run(x))
    # a host requantizer edited and the manifest re-sealed: the cross-check against the scales names it
    from winnow.model.files.export import ManifestError, manifest_digest

    add = next(e for e in doc["ops"] if e["op"] == "add")
    add["mult"][0] += 1
    doc["manifest_sha256"] = manifest_digest(doc)
    (out / "network" / "network.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="mult"):
        read_network(out / "network")


# ---------------------------------------------------------------------------- bad input: the command
def _winnow(*args):
    """The command in this process (a subprocess would import torch again for every case)."""
    from winnow.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main([str(a) for a in args])
    return types.SimpleNamespace(returncode=rc, stderr=err.getvalue(), stdout=out.getvalue())


class Sig(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.sigmoid(self.c(x))


def test_bad_inputs_are_named_errors_and_write_nothing(tmp_path, resnet):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a protobuf at all \xff\xfe")
    sig = _export(Sig().eval(), tmp_path / "sig.onnx", shape=(1, 1, 8, 8))
    dyn = tmp_path / "dyn.onnx"
    torch.onnx.export(resnet, torch.zeros(1, 1, 28, 28), str(dyn), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    torch.save(Sig().state_dict(), tmp_path / "other.pt")
    cases = [
        ((bad, "--input-shape", "1,28,28", "--no-quantize"), "not an ONNX model"),
        ((sig, "--input-shape", "1,8,8", "--no-quantize"), "(op type Sigmoid) is not supported; nearest supported: Relu"),
        ((dyn, "--input-shape", "1,28,28", "--no-quantize"), "dynamic dimension 2"),
        ((FACTORY, "--weights", tmp_path / "other.pt", "--input-shape", "1,28,28", "--no-quantize"),
         "does not match the model"),
        ((FACTORY, "--input-shape", "1,32,32"), "give --data"),
        ((FACTORY, "--input-shape", "3,28,28", "--data", "mnist5k"), "its images are 1,28,28"),
        ((FACTORY, "--input-shape", "3,28,28", "--no-quantize"), "takes 1 input channels, gets 3"),
        ((str(sig), "--input-shape", "1,28,28", "--no-quantize"), "not the --input-shape"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        res = _winnow("import", *args, "--out", out)
        assert res.returncode == 2, (args, res.stderr[-800:])
        assert message in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)
        assert not out.exists(), args


def test_the_readers_raise_their_named_errors(tmp_path, resnet):
    from winnow.model.imports.fx_reader import read_module

    with pytest.raises(ModelParseError):
        import_model(str(tmp_path / "missing.onnx"), (1, 28, 28))
    torch.save({"stem.weight": torch.zeros(4, 1, 5, 5)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointMismatchError, match="missing"):
        import_model(FACTORY, (1, 28, 28), tmp_path / "w.pt")

    class Flow(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(UnsupportedOperationError, match="torch.fx cannot trace"):
        read_module(Flow(), (1, 8, 8), "flow")
    with pytest.raises(InputShapeError, match="pooling by 3 a 2×2 input"):
        import_model(FACTORY, (1, 2, 2))
    assert all(issubclass(e, ModelImportError) for e in (DynamicShapeError, InputShapeError))


def test_winnow_import_end_to_end_and_cycles(onnx_file, tmp_path):
    out = tmp_path / "imp"
    res = _winnow("import", onnx_file, "--input-shape", "1,28,28", "--out", out, "--density", "0.5", "--steps", "5")
    assert res.returncode == 0, res.stderr[-2000:]
    files = sorted(p.name for p in (out / "network").glob("*.wnl"))
    assert len(files) == 5
    rep = json.loads((out / "report.json").read_text())
    assert [r["runs_on"] for r in rep["operations"] if r["op"] == "Conv"] == ["array"] * 5
    check = rep["quantization"]["check"]
    # the integer network computes the fake-quantized model's logits (to float rounding); a top-1 that differs
    # is a tie between two equal logits, broken one way by argmax on the integers and the other on the floats
    assert check["integer_vs_fake_quant_max_logit_diff"] < 1e-6
    assert check["integer_vs_fake_quant_disagreements_not_ties"] == 0 and check["integer_vs_fake_quant_top1"] >= 0.99
    assert math.isclose(rep["cost"]["direct"], sum(r["cost"]["direct"] for r in rep["operations"] if r.get("cost")))
    res = _winnow("cycles", "--network", out / "network", "--json", tmp_path / "c.json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(json.loads((tmp_path / "c.json").read_text())["layers"]) == 5


def test_imported_model_pruned_by_plain_magnitude_keeps_the_top_u(onnx_file):
    """liu_pool on an imported model: per layer, the kept set is the top-|U| among the structurally allowed."""
    imp = import_model(str(onnx_file), (1, 28, 28))
    _, split = calibration_images((1, 28, 28), None, 64)
    before = [(m.weight.detach().abs() * m.mask).flatten() for m in imp.net.convs]
    allowed = [int(m.mask.sum()) for m in imp.net.convs]
    prune_imported(imp.net, split, 0.3, steps=0, criterion="plain")
    for mod, a, n in zip(imp.net.convs, before, allowed):
        k = min(n, max(1, round(0.3 * a.numel())))
        assert set(torch.nonzero(mod.mask.flatten()).flatten().tolist()) == set(torch.topk(a, k).indices.tolist())


def test_flow_refuses_an_imported_model_with_a_spatial_method(tmp_path):
    from winnow.flowconfig import FlowConfigError, load_flow_config

    (tmp_path / "nets.py").write_text(MODELS.read_text())
    for method in ("liu_pool", "magnitude"):
        (tmp_path / "ok.toml").write_text(f'[model]\nsource = "nets.py:factory"\n\n[train]\nmethod = "{method}"\n')
        load_flow_config(tmp_path / "ok.toml")
    (tmp_path / "bad.toml").write_text('[model]\nsource = "nets.py:factory"\n\n[train]\nmethod = "spatial_winograd"\n')
    with pytest.raises(FlowConfigError, match="pruned with importance_magnitude or liu_pool"):
        load_flow_config(tmp_path / "bad.toml")


# ---------------------------------------------------------------------------- [model] in a flow
def test_flow_model_section_trains_and_exports_the_imported_model(tmp_path):
    from winnow.flowconfig import load_flow_config
    from winnow import steps
    from winnow.model.files.export import read_network

    (tmp_path / "nets.py").write_text(MODELS.read_text())
    (tmp_path / "flow.toml").write_text('[model]\nsource = "nets.py:factory"\n\n[train]\ndensity = 0.5\n'
                                        'retrain_epochs = 0\nqat_epochs = 0\n')
    cfg = load_flow_config(tmp_path / "flow.toml")
    assert cfg.model["source"] == f"{tmp_path / 'nets.py'}:factory"
    (tmp_path / "train").mkdir()
    rep = steps.train(cfg, tmp_path / "train", progress=lambda line: None)
    assert 0.4 <= rep["winograd_density"] <= 0.5 and rep["integer_accuracy"] is not None
    (tmp_path / "export").mkdir()
    steps.export(tmp_path / "train", tmp_path / "export", progress=lambda line: None)
    a, b = (read_network(tmp_path / d / "network") for d in ("train", "export"))
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28))
    assert len(b.convs) == 5 and np.array_equal(a.net.run(x), b.net.run(x))  # rebuilt from the checkpoint
    (tmp_path / "bad.toml").write_text('[model]\nsource = "missing.onnx"\n')
    with pytest.raises(ModelParseError, match="no such ONNX model"):
        load_flow_config(tmp_path / "bad.toml")
