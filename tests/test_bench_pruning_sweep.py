"""The pruning sweep runs its points as engine tasks, resumes, and lists the runs in grid order."""

import json

import bench.pruning_sweep as S


def test_sweep_points_run_on_the_engine_and_resume(tmp_path, monkeypatch):
    calls = []

    def fake_experiment(cfg, data, dense, progress=False):  # the engine path, not the training
        calls.append((cfg.m, cfg.method, cfg.density))
        return {"model": None, "scales": None, "integer_accuracy": cfg.density, "fake_quant_accuracy": 0.5,
                "float_accuracy": 0.5, "dense_accuracy": 0.9, "timings": {"total_s": 0.0},
                "config": {"m": cfg.m, "method": cfg.method, "density": cfg.density,
                           "winograd_relu": cfg.winograd_relu},
                "accounting": {"reduction_vs_direct": {"sparse_weights": 1.0, "sparse_weights_activations": 1.0},
                               "total_winograd_layers": 1, "layers": []}}

    monkeypatch.setattr(S, "run_experiment", fake_experiment)
    monkeypatch.setattr(S, "train_dense", lambda cfg, data, progress=False: "dense")
    monkeypatch.setattr(S, "mnist5k", lambda: "data")
    out = tmp_path / "sweep.json"
    grid = list(S.grid(quick=True))
    doc = S.run(out, quick=True)
    assert list(doc["runs"]) == [S.key(p) for p in grid]  # every point once, in grid order
    assert sorted(calls) == sorted((p["m"], p["method"], p["density"]) for p in grid)
    assert json.loads(out.read_text())["runs"] == doc["runs"]
    calls.clear()
    S.run(out, quick=True)  # resumed: nothing left to run
    assert calls == []
