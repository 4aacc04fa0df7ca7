"""Smoke test of the foundation benchmarks (bench/): the quick run on tiny layers.

Checks the JSON document's structure and properties that hold on any machine
(positive finite timings and ratios, bit-equal integer paths, float32 round-off
growing with the tile), never the timings themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from bench import run  # bench/ is importable through pytest's pythonpath = ["."]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Run ``python -m bench.run --quick`` once; return (document, stdout, output path)."""
    out = tmp_path_factory.mktemp("bench") / "results" / "foundation.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run.main(["--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8")), stdout.getvalue().splitlines(), out


def _positive_finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_document_structure(quick):
    doc, lines, out = quick
    assert doc["schema"] == run.SCHEMA
    assert doc["mode"] == "quick"
    assert {"torch_speed", "integer_throughput", "float_error", "machine", "parameters"} <= doc.keys()
    steps = [s[:5] for s in lines if s.startswith("[")]
    assert steps == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert run.render_markdown(doc) in "\n".join(lines) + "\n"  # the table printed is the JSON's
    assert [p.name for p in out.parent.iterdir()] == ["foundation.json"]  # no temporary file left


def test_torch_speed_ratios(quick):
    r = quick[0]["torch_speed"]
    for phase in ("forward", "forward_backward"):
        assert _positive_finite(r[phase]["ratio"])
        for method in ("winograd", "conv2d"):
            assert _positive_finite(r[phase][method]["median_s"])
    for rel in r["max_rel_diff"].values():
        assert rel < 1e-4  # float32 Winograd agrees with conv2d, outputs and gradients


def test_integer_throughput(quick):
    r = quick[0]["integer_throughput"]
    L = r["layer"]
    assert [row["tile"] for row in r["rows"]] == ["F(2,3)", "F(4,3)", "F(6,3)"]
    for row in r["rows"]:
        assert row["bit_equal_paths"] is True
        assert row["direct_macs"] == L["N"] * L["K"] * L["C"] * L["H"] * L["W"] * 9  # padding 1: same size
        assert row["winograd_mults"] == L["N"] * L["K"] * L["C"] * row["tiles"] * row["n"] ** 2
        for path in ("float64_blas", "int64"):
            assert _positive_finite(row[path]["direct_macs_per_s"])
            assert _positive_finite(row[path]["winograd_mults_per_s"])


def test_float_error_grows_with_tile(quick):
    rows = {row["tile"]: row for row in quick[0]["float_error"]["rows"]}
    small, large = rows["F(2,3)"]["float32"], rows["F(8,3)"]["float32"]
    assert small["max_abs"] < large["max_abs"]
    assert small["mean_rel"] < large["mean_rel"]
    for row in rows.values():
        assert row["float64"]["mean_rel"] < row["float32"]["mean_rel"]


def test_markdown_renders_every_tile(quick):
    text = run.render_markdown(quick[0])
    for tile in ("F(2,3)", "F(4,3)", "F(6,3)", "F(8,3)"):
        assert tile in text


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    out = tmp_path / "foundation.json"
    run.write_json_atomic({"ok": 1}, out)
    with pytest.raises(TypeError):
        run.write_json_atomic({"bad": object()}, out)
    assert json.loads(out.read_text(encoding="utf-8")) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["foundation.json"]
