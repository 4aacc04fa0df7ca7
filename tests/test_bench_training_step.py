"""The training-step benchmark: docs/pytorch.md quotes the table rendered from its recorded JSON."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_quote_the_table_rendered_from_the_recorded_json():
    from bench.training_step import OUT, render

    doc = json.loads(OUT.read_text(encoding="utf-8"))
    assert doc["ratio_vs_conv2d"]["nn.Conv2d"] == 1.0
    assert set(doc["median_s"]) == set(doc["samples_s"]) == set(doc["ratio_vs_conv2d"])
    assert all(len(s) == doc["repeats"] for s in doc["samples_s"].values())
    assert render(doc) in (ROOT / "docs" / "pytorch.md").read_text(encoding="utf-8")


def test_the_kronecker_variant_runs_the_reference_path(monkeypatch):
    # --kron must time the layer's reference code, not the separable path twice
    import bench.training_step as ts
    import winnow.model.algebra.winograd_conv as wc

    seen = []
    real = wc.winograd_conv_from_u

    def spy(*args, path="auto", **kw):
        seen.append(path)
        return real(*args, path=path, **kw)

    import torch

    monkeypatch.setattr("winnow.model.nn.layers.winograd_conv_from_u", spy)
    threads = torch.get_num_threads()
    try:
        r = ts.measure(repeats=1, batch=2, kron=True)
    finally:
        torch.set_num_threads(threads)  # measure() pins one thread for the timing
    assert {"auto", "kron"} <= set(seen)
    assert len(r["median_s"]) == 7
