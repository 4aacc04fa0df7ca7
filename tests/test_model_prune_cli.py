"""`winnow prune`: one command for every method, through its real entry point."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from winnow.cli import main as winnow_main


def main(argv):
    return winnow_main(["prune", *argv])


def test_cli_runs_a_method_and_writes_reports(tmp_path, capsys):
    cfg = tmp_path / "kep.json"
    cfg.write_text(json.dumps({"dataset": "digits", "method": "kep", "width": 8, "dense_epochs": 3,
                               "retrain_epochs": 1, "qat_epochs": 1}))
    rc = main(["--config", str(cfg), "--density", "0.5", "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["config"]["method"] == "kep" and report["config"]["density"] == 0.5  # the option overrides
    assert report["integer_accuracy"] == report["fake_quant_accuracy"]
    assert (tmp_path / "out" / "network" / "network.json").is_file()
    assert "| integer accuracy |" in (tmp_path / "out" / "report.md").read_text()
    assert "[3/3]" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--method", "obd"], "method must be one of"),
    (["--density", "1.5"], r"density must be in \(0, 1\]"),
    (["--method", "kep", "--winograd-relu", "true"], "contradicts"),
])
def test_cli_errors_are_messages_not_tracebacks(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(words, err)


def test_cli_config_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metod": "kep"}))
    assert main(["--config", str(bad)]) == 2
    assert "unknown field(s) metod" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "none.json")]) == 2
    assert "no such configuration file" in capsys.readouterr().err


def test_entry_point_help():
    exe = Path(sys.executable).with_name("winnow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "winnow.cli"]
    out = subprocess.run(cmd + ["prune", "--help"], capture_output=True, text=True, check=True)
    assert "--filter-ratio" in out.stdout and "--kep-lambda" in out.stdout and "--schedule" in out.stdout
