"""The ``winnow`` command through its real entry point: every subcommand, the resumable flow, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from winnow.sim.cocotb_run import simulator_available

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "tests" / "data" / "trained_f43"

#: A flow small enough for the test suite: sklearn's 8×8 digits, F(2,3), one epoch per phase.
FLOW = """
[train]
dataset = "digits"
m = 2
method = "magnitude"
density = 0.3
dense_epochs = 1
retrain_epochs = 1
qat_epochs = 1
sweep = [0.6]

[array]
pes = 2
lanes = 2
otu_lanes = 2
k_max = 32
h_max = 8
w_max = 8

[sim]
layers = "all"
image = 3

[report]
title = "test run"
"""


def winnow(*args, cwd=None, check=None):
    """Run the installed console script (``python -m winnow.cli`` if it is not on this venv's bin)."""
    exe = Path(sys.executable).with_name("winnow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "winnow.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd or ROOT, env=env,
                       timeout=1200)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}"
    return r


def _needs_verilator():
    reason = simulator_available("verilator")
    if reason:
        pytest.skip(reason)


#: Every test that reads the flow fixture runs on one xdist worker (``--dist loadgroup``): one flow per run.
pytestmark_flow = pytest.mark.xdist_group("winnow_flow")


@pytest.fixture(scope="session")  # one flow per worker, and loadgroup puts its tests on one worker
def flow_run(tmp_path_factory):
    _needs_verilator()
    d = tmp_path_factory.mktemp("flow")
    (d / "flow.toml").write_text(FLOW)
    r = winnow("flow", d / "flow.toml", "--out", d / "run", check=0)
    return d, r.stdout


def _copy_run(flow_run, tmp_path) -> Path:
    """A copy of the fixture's finished run, for a test that changes it."""
    return Path(shutil.copytree(flow_run[0] / "run", tmp_path / "run"))


def _steps(stdout: str) -> dict[str, str]:
    """step title → 'ran' or 'skipped' from the flow's progress lines."""
    out = {}
    for m in re.finditer(r"^\[(\d+)/(\d+)\] (.+?): (done in [\d.]+ s|unchanged, skipped)$", stdout, re.M):
        out[m.group(3)] = "skipped" if "skipped" in m.group(4) else "ran"
    return out


# ---------------------------------------------------------------------------- the flow
@pytestmark_flow
def test_flow_runs_every_step_with_progress_and_reports(flow_run):
    d, stdout = flow_run
    run = d / "run"
    assert _steps(stdout) == {t: "ran" for t in ("train and prune", "export the integer network",
                                                  "generate the PE array", "simulate on the RTL",
                                                  "cycles: sparse vs dense vs floor", "report")}
    assert "[1/6] train and prune …" in stdout and "[6/6] report: done in" in stdout
    for f in ("train/checkpoint.pt", "export/network/network.json", "gen/winnow_array.v", "gen/params.json",
              "gen/winnow_array_axis.v", "cycles/cycles.md", "report/summary.md", "report/summary.json",
              "report/plots/accuracy_density.png", "report/plots/position_density.png", "report/plots/cycles.png"):
        assert (run / f).is_file(), f
    for step in ("train", "export", "gen", "sim", "cycles", "report"):
        rep = json.loads((run / step / "report.json").read_text())
        assert rep["step"] == step
    sim = json.loads((run / "sim" / "report.json").read_text())
    assert sim["all_bit_exact"] and len(sim["layers"]) == 4
    assert all(r["rtl_cycles"] == r["model_cycles"] for r in sim["layers"])
    train = json.loads((run / "train" / "report.json").read_text())
    assert sorted(r["density"] for r in train["sweep"]) == [0.3, 0.6]
    # the printed epilogue: the cycle table and where the report is
    assert "| **network** |" in stdout and "Report: " in stdout
    # issue 17: progress without a terminal (plain lines, not tqdm bars); gen's own steps; conv numbering
    assert re.search(r"^ +dense epoch 1/1: loss [\d.]+, train accuracy [\d.]+ \([\d.]+ s\)$", stdout, re.M)
    assert "[1/3] winnow_array.v: elaborating" in stdout and "estimated ~" in stdout
    assert "conv #3 (layer 7): " in stdout and "| # | layer |" in stdout
    summary = json.loads((run / "report" / "summary.json").read_text())
    cyc = json.loads((run / "cycles" / "report.json").read_text())
    assert summary["cycles"]["sparse"] == sum(r["sparse"]["cycles"] for r in cyc["layers"])
    assert summary["bit_exact"] is True


@pytestmark_flow
def test_flow_second_run_skips_every_step(flow_run):
    d, _ = flow_run
    r = winnow("flow", d / "flow.toml", "--out", d / "run", check=0)
    assert set(_steps(r.stdout).values()) == {"skipped"} and len(_steps(r.stdout)) == 6


@pytestmark_flow
def test_flow_reruns_only_what_a_change_reaches(flow_run, tmp_path):
    d, run = flow_run[0], _copy_run(flow_run, tmp_path)
    cfg = tmp_path / "changed.toml"
    cfg.write_text(FLOW.replace('title = "test run"', 'title = "renamed"').replace('layers = "all"', "layers = [1]"))
    r = winnow("flow", cfg, "--out", run, check=0)
    st = _steps(r.stdout)
    assert st["train and prune"] == st["export the integer network"] == st["generate the PE array"] == "skipped"
    assert st["cycles: sparse vs dense vs floor"] == "skipped"
    assert st["simulate on the RTL"] == "ran" and st["report"] == "ran"
    assert "# renamed" in (run / "report" / "summary.md").read_text()
    assert len(json.loads((run / "sim" / "report.json").read_text())["layers"]) == 1


@pytestmark_flow
def test_failed_step_keeps_every_output_records_only_current_ones_and_resumes(flow_run, tmp_path):
    d, run = flow_run[0], _copy_run(flow_run, tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(FLOW.replace("image = 3", "image = 100000"))
    r = winnow("flow", bad, "--out", run)
    assert r.returncode == 2 and "image 100000" in r.stderr and "Traceback" not in r.stderr
    state = json.loads((run / "flow.json").read_text())
    assert "sim" not in state["steps"] and {"train", "export", "gen", "cycles", "report"} <= set(state["steps"])
    assert not list(run.glob(".*.tmp-*"))  # nothing half-written left behind
    # the previous run's sim no longer matches the configuration: kept on disk (nothing is lost), not recorded
    assert json.loads((run / "sim" / "report.json").read_text())["all_bit_exact"]
    r = winnow("report", run, "--out", tmp_path / "rep", check=0)  # a report now shows no simulation
    assert "RTL simulation" not in (tmp_path / "rep" / "summary.md").read_text()
    r = winnow("flow", d / "flow.toml", "--out", run, check=0)
    st = _steps(r.stdout)
    assert st["train and prune"] == "skipped" and st["simulate on the RTL"] == "ran"


def test_flow_refuses_a_non_empty_directory_it_does_not_own(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    cfg = tmp_path / "flow.toml"
    cfg.write_text(FLOW)
    r = winnow("flow", cfg, "--out", tmp_path / "mine")
    assert r.returncode == 2 and "not empty" in r.stderr and "flow.json" in r.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["precious.txt"]


@pytestmark_flow
def test_an_array_change_regenerates_and_resimulates_but_does_not_retrain(flow_run, tmp_path):
    d, run = flow_run[0], _copy_run(flow_run, tmp_path)
    cfg = tmp_path / "array.toml"
    cfg.write_text(FLOW.replace("otu_lanes = 2", "otu_lanes = 2\nrequant = 2").replace('layers = "all"', "layers = [3]"))
    r = winnow("flow", cfg, "--out", run, check=0)
    st = _steps(r.stdout)
    assert st["train and prune"] == st["export the integer network"] == "skipped"
    assert st["generate the PE array"] == st["simulate on the RTL"] == st["cycles: sparse vs dense vs floor"] == "ran"
    assert json.loads((run / "gen" / "params.json").read_text())["requant"] == 2
    sim = json.loads((run / "sim" / "report.json").read_text())
    assert sim["all_bit_exact"] and sim["layers"][0]["rtl_cycles"] == sim["layers"][0]["model_cycles"]


@pytestmark_flow
def test_flow_force_reruns_a_step(flow_run, tmp_path):
    d, run = flow_run[0], _copy_run(flow_run, tmp_path)
    r = winnow("flow", d / "flow.toml", "--out", run, "--force", "cycles", check=0)
    st = _steps(r.stdout)
    assert st["cycles: sparse vs dense vs floor"] == "ran" and st["train and prune"] == "skipped"
    r = winnow("flow", d / "flow.toml", "--out", run, "--force", "nosuchstep")
    assert r.returncode == 2 and "no such step" in r.stderr


# ---------------------------------------------------------------------------- subcommands
@pytestmark_flow
def test_export_rebuilds_the_training_time_network_byte_for_byte(flow_run, tmp_path):
    d, _ = flow_run
    winnow("export", d / "run" / "train", "--out", tmp_path, check=0)
    trained = d / "run" / "train" / "network"
    files = sorted(p.name for p in trained.iterdir())
    assert files == sorted(p.name for p in (tmp_path / "network").iterdir())
    for f in files:
        assert (trained / f).read_bytes() == (tmp_path / "network" / f).read_bytes(), f


@pytestmark_flow
def test_sim_subcommand_runs_a_network_layer_on_the_flows_build(flow_run, tmp_path):
    d, _ = flow_run
    run = d / "run"
    r = winnow("sim", "--network", run / "export" / "network", "--layer", 2, "--image", 5,
               "--params", run / "gen" / "params.json", "--build-dir", run / "cache" / "sim-verilator",
               "--out", tmp_path, check=0)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["all_bit_exact"] and [l["name"] for l in rep["layers"]] == ["5"]
    assert "bit-exact and cycle-exact under verilator" in r.stdout
    assert "conv #2 (layer 5): " in r.stdout  # --layer 2 is printed as the conv it chose (issue 17)


@pytestmark_flow
def test_sim_memory_runs_the_network_through_external_memory_layer_after_layer(flow_run, tmp_path):
    """Issue 12: the first two convolutions through the streaming array's AxiRam, the second fed what the
    RTL wrote for the first (max pooling of the host between them where the net has it)."""
    d, _ = flow_run
    net = d / "run" / "export" / "network"
    small = ["--pes", 2, "--lanes", 2, "--otu-lanes", 2, "--k-max", 4, "--h-max", 6, "--w-max", 6, "--pad-max", 0,
             "--c-block", 4]
    r = winnow("sim", "--network", net, "--layer", 0, "--layer", 1, "--image", 3, "--memory", *small,
               "--out", tmp_path / "sim", check=0)
    rep = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert rep["chained"] and rep["all_bit_exact"] and len(rep["layers"]) == 2
    assert rep["through_memory"] and rep["network"] == str(net) and rep["array"]["pes"] == 2 and rep["array"]["tiled"]
    for row in rep["layers"]:
        assert row["rtl_cycles"] == row["model_cycles"] and row["runs"] > 1  # several passes per layer
        b = row["breakdown"]
        assert b["compute"] == row["compute_cycles"] < row["rtl_cycles"]
    assert "through external memory (AxiRam)" in r.stdout
    winnow("cycles", "--network", net, "--memory", *small, "--json", tmp_path / "c.json", check=0)
    doc = json.loads((tmp_path / "c.json").read_text())
    for row in doc["layers"]:
        assert row["dense"]["cycles"] > row["sparse"]["cycles"] >= row["floor"]
        assert row["bound"] in ("compute", "memory") and row["floor"] == max(row["compute_floor"], row["memory_floor"])
    # the first two layers' streaming cycles are what the simulation measured
    assert [row["sparse"]["cycles"] for row in doc["layers"][:2]] == [row["rtl_cycles"] for row in rep["layers"]]


def test_sim_subcommand_random_layer_under_icarus_with_waves(tmp_path):
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    winnow("sim", "--random", "2,3,5,4", "--density", 0.5, "--m", 2, "--c-max", 4, "--pes", 1, "--lanes", 1,
           "--otu-lanes", 1, "--k-max", 4, "--h-max", 6, "--w-max", 6, "--sim", "icarus", "--waves",
           "--out", tmp_path, check=0)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["all_bit_exact"] and rep["layers"][0]["rtl_cycles"] == rep["layers"][0]["model_cycles"]
    assert rep["waves"] and all(Path(w).stat().st_size > 0 for w in rep["waves"])
    # the report says what ran: the layer's shape, density and seed, and the array
    assert rep["random"] == {"C": 2, "K": 3, "H": 5, "W": 4, "density": 0.5, "seed": 0} and not rep["through_memory"]
    assert rep["preset"] is None and rep["array"]["k_max"] == 4 and rep["array"]["datapath"]["m"] == 2


def test_sim_subcommand_serial_array_under_icarus(tmp_path):
    """The position-serial organisation (the iCEBreaker's) simulated as RTL through cocotb: bit-exact,
    cycles as the model predicts, and the params.json says serial."""
    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    winnow("sim", "--random", "3,2,5,6", "--density", 0.4, "--m", 2, "--c-max", 4, "--pes", 1, "--lanes", 1,
           "--otu-lanes", 1, "--requant", 1, "--k-max", 4, "--h-max", 6, "--w-max", 6, "--serial",
           "--sim", "icarus", "--out", tmp_path, check=0)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["all_bit_exact"] and rep["layers"][0]["rtl_cycles"] == rep["layers"][0]["model_cycles"]
    assert json.loads((tmp_path / "build-icarus" / "params.json").read_text())["serial"] is True


def test_gen_writes_verilog_and_a_params_json_that_rebuilds_the_array(tmp_path):
    from winnow.hw.config import AccelConfig

    winnow("gen", "--m", 2, "--pes", 4, "--clusters", 2, "--lanes", 2, "--k-block", 4, "--k-max", 8, "--c-max", 8,
           "--h-max", 9, "--w-max", 9, "--otu-lanes", 2, "--out", tmp_path, check=0)
    assert "module winnow_array" in (tmp_path / "winnow_array.v").read_text()
    assert "s_axis_load_tdata" in (tmp_path / "winnow_array_axis.v").read_text()
    cfg = AccelConfig.from_dict(json.loads((tmp_path / "params.json").read_text()))
    assert (cfg.pes, cfg.clusters, cfg.lanes, cfg.k_block, cfg.otu_lanes, cfg.m) == (4, 2, 2, 4, 2, 2)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["memory_bits"] == cfg.memory_bits


def test_cycles_subcommand_json_adds_up(tmp_path):
    from winnow.hw.config import AccelConfig
    from winnow.hw.cycle_model import packed_cycles
    from winnow.hw.packer import pack_layer
    from winnow.model.files.layer_file import read_layer

    out = tmp_path / "c.json"
    r = winnow("cycles", "--network", TRAINED, "--pes", 8, "--clusters", 2, "--lanes", 2, "--json", out, check=0)
    doc = json.loads(out.read_text())
    assert "| **network** |" in r.stdout
    files = sorted(TRAINED.glob("*.wnl"))
    assert [l["name"] for l in doc["layers"]] == ["0", "2", "5", "7"]
    for f, row in zip(files, doc["layers"]):
        layer = read_layer(f)
        cfg = AccelConfig(datapath=layer.config, pes=8, clusters=2, lanes=2, otu_lanes=2, k_max=32, h_max=28, w_max=28)
        assert row["sparse"]["cycles"] == packed_cycles(pack_layer(layer, cfg)).cycles
        assert row["sparse"]["floor"] <= row["sparse"]["cycles"] < row["dense_cycles"]
    assert doc["network"]["sparse"] == sum(r["sparse"]["cycles"] for r in doc["layers"])
    assert doc["network"]["speedup"] == pytest.approx(doc["network"]["dense"] / doc["network"]["sparse"])


@pytestmark_flow
def test_report_subcommand_rerenders_a_run(flow_run, tmp_path):
    d, _ = flow_run
    winnow("report", d / "run", "--out", tmp_path, "--title", "again", check=0)
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# again") and "plots/cycles.png" in md
    assert (tmp_path / "plots" / "position_density.png").stat().st_size > 1000


# ---------------------------------------------------------------------------- help and bad input
SUBCOMMANDS = ("train", "export", "gen", "sim", "cycles", "build", "report", "flow")


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_complete_help(cmd):
    r = winnow(cmd, "--help", check=0)
    assert r.stdout.startswith("usage: winnow " + cmd)
    body = r.stdout.split("\n\n", 2)[1]
    assert len(body) > 60  # a real description, not just the usage line


def test_top_level_help_lists_every_subcommand():
    r = winnow("--help", check=0)
    for cmd in SUBCOMMANDS:
        assert re.search(rf"^\s+{cmd}\s+\S", r.stdout, re.M), cmd


def test_the_help_example_runs_as_printed():
    """The example ``winnow --help`` ends with names a configuration that exists and is valid (issue 17)."""
    from winnow.cli import EXAMPLE
    from winnow.flowconfig import load_flow_config

    r = winnow("--help", check=0)
    assert EXAMPLE in " ".join(r.stdout.split())
    args = EXAMPLE.split()
    assert args[:2] == ["winnow", "flow"] and (ROOT / args[2]).is_file()
    load_flow_config(ROOT / args[2])
    assert f"$(VENV)/bin/{EXAMPLE}" in (ROOT / "Makefile").read_text()  # what make demo runs


def _toml(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, words", [
    ("[train]\ndensty = 0.3\n", ["[train]", "densty", "known keys", "density"]),
    ("[train]\ndensity = \"high\"\n", ["[train].density", "expected a number", "str"]),
    ("[train]\nm = 0\n", ["[train]", "m must be >= 1"]),
    ("[train]\ndensity = 1.5\n", ["density"]),
    ("[train]\nmethod = \"lottery\"\n", ["method must be one of", "magnitude"]),
    ("[trian]\n", ["unknown section", "[trian]", "[train]"]),
    ("[sim]\nsimulator = \"xsim\"\n", ["[sim].simulator", "verilator, icarus"]),
    ("[sim]\nlayers = \"some\"\n", ["[sim].layers", "all"]),
    ("[array]\npes = 2.5\n", ["[array].pes", "an integer"]),
    ("[array]\nserial = 1\n", ["[array].serial", "true or false"]),
    ("[array]\npes = 4\nserial = true\n", ["[array]", "one PE per cluster"]),
    ("[board]\nspeed = 1\n", ["[board]", "speed"]),
    ("[board]\n", ["[board].name", "missing"]),
    ("[board]\nname = \"de10nano\"\n", ["[board].name", "de10nano", "ulx3s"]),
    ("[array]\nrequant = 5\n", ["[array]", "requant = 5", "m² = 16"]),
    ("[array]\nlanes = 4\notu_lanes = 3\n", ["[array]", "otu_lanes = 3 must divide lanes = 4"]),
    ("[train]\ndataset = \"imagenet\"\n", ["[train].dataset", "imagenet", "mnist5k"]),
    ("[train]\nbatch_size = 0\n", ["[train]", "batch_size must be an integer >= 1"]),
    ("[train]\nlr = -1.0\n", ["[train]", "lr must be a positive finite number"]),
    ("[train]\nwidth = -3\n", ["[train]", "width must be an integer in [1, 1024]"]),
    ("[train]\nkep_keep = 0\n", ["[train]", "kep_keep must be an integer in [1, 9]"]),
    ("[sim]\nimage = -1\n", ["[sim].image", ">= 0"]),
    ("[sim]\nlayers = []\n", ["[sim].layers", "non-empty"]),
    ("[array]\nstream_depth = 1000000000\n", ["limit of 256 Mibit", "streams"]),
    ("[train\n", ["not valid TOML"]),
    ("train = 3\n", ["'train' must be a table"]),
    # issue 17: keys with no bound, bad seeds, [sim] choices checked before training, hostile TOML
    ("[train]\nseed = -1\n", ["[train]", "seed must be an integer in [0, 4294967295]"]),
    ("[train]\nseed = 99999999999999999\n", ["[train]", "seed must be an integer"]),
    ("[train]\niterative_steps = 1000000000\nschedule = \"iterative\"\n", ["iterative_steps", "at most 100"]),
    ("[train]\nmethod = \"kep\"\nkep_lambda = nan\n", ["kep_lambda must be >= 0 and finite"]),
    ("[train]\nmethod = \"kep\"\nkep_lambda = inf\n", ["kep_lambda must be >= 0 and finite"]),
    ("[train]\nlr = 1e30\n", ["lr must be a positive finite number (at most 10)"]),
    ("[train]\ndense_epochs = 1000000\n", ["dense_epochs", "at most 1000"]),
    ("[train]\nsweep = [" + ", ".join(["0.5"] * 17) + "]\n", ["[train].sweep", "at most 16"]),
    ("[sim]\nlayers = [7]\n", ["[sim].layers", "conv 7 does not exist", "4 convolutions (0 … 3)"]),
    ("[array]\nk_max = 4096\n", ["[array]", "about", "min", "GB of memory", "lower the limits"]),
    ("a = " + "[" * 2000 + "]" * 2000 + "\n", ["not valid TOML", "nested too deeply"]),
    ("[train]\nseed = " + "9" * 5000 + "\n", ["not valid TOML", "more than 4300 digits"]),
])
def test_bad_configuration_is_one_clear_line(tmp_path, text, words):
    r = winnow("flow", _toml(tmp_path, text), "--out", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert not (tmp_path / "out" / "train").exists()


@pytest.mark.parametrize("args, words", [
    (("flow", "no/such.toml", "--out", "x"), ["no such configuration file"]),
    (("gen", "--pes", "0", "--out", "{tmp}/g"), ["pes must be an integer"]),
    (("gen", "--pes", "4", "--clusters", "3", "--out", "{tmp}/g"), ["must divide pes"]),
    (("gen", "--params", "{tmp}/none.json", "--out", "{tmp}/g"), ["no such params.json"]),
    (("gen", "--preset", "de10", "--out", "{tmp}/g"), ["unknown preset", "ulx3s"]),
    (("sim", "--random", "1,2,3"), ["C,K,H,W"]),
    (("sim",), ["give layer files"]),
    (("sim", "--network", str(TRAINED), "--layer", "9", "--out", "{tmp}/s"), ["--layer 9", "4 convolutions",
                                                                               "#2 = 5"]),
    (("sim", "--network", str(TRAINED), "--image", "5000", "--out", "{tmp}/s"), ["image 5000", "test split"]),
    (("gen", "--preset", "ulx3s", "--params", "{tmp}/p.json", "--out", "{tmp}/g"), ["--params or --preset"]),
    (("report", str(TRAINED), "--board-report", str(TRAINED / "network.json")), ["not a board build report"]),
    (("cycles",), ["give layer files or --network"]),
    (("cycles", "--network", str(TRAINED), "--h-max", "20"), ["H = 28", "h_max = 20"]),
    (("cycles", "--network", "{tmp}"), ["no such network manifest"]),
    (("export", "{tmp}", "--out", "{tmp}/e"), ["no checkpoint.pt"]),
    (("report", "{tmp}"), ["no step reports"]),
    (("sim", str(TRAINED / "00_0.wnl"), "--m", "2"), ["--m", "apply to --random only"]),
    (("sim", "--random", "1,1,8,8", "--network", str(TRAINED)), ["one source of layers", "--network and --random"]),
    (("sim", "--random", "1,1,8,8", "--density", "nan"), ["density in [0, 1]", "nan"]),
    (("cycles", str(TRAINED / "00_0.wnl"), "--m", "2"), ["unrecognized arguments: --m"]),
    (("gen", "--params", "{tmp}", "--out", "{tmp}/g"), ["a directory, not a params.json"]),
    (("gen", "--k-max", "4096", "--h-max", "4096", "--w-max", "4096", "--out", "{tmp}/g"), ["limit of 256 Mibit"]),
    # issue 17: limits before allocation, ambiguity, hostile files given as arguments
    (("gen", "--k-max", "4096", "--out", "{tmp}/g"), ["about 10 min", "GB of memory", "--allow-slow"]),
    (("sim", "--random", "32,32,4000,4000", "--out", "{tmp}/s"), ["H = 4000", "h_max = 28"]),
    (("sim", "--random", "100000,1,8,8", "--out", "{tmp}/s"), ["C = 100000", "c_max = 32"]),
    (("sim", "--random", "32,32,4000,4000", "--tiled", "--pad-max", "0", "--out", "{tmp}/s"),
     ["512,000,000 activations", "more than a simulation takes"]),
    (("sim", "--random", "1,1,8,8", "--seed", "-1", "--out", "{tmp}/s"), ["seed in [0, 2^32)"]),
    (("cycles", str(TRAINED / "00_0.wnl"), "--network", str(TRAINED)), ["layer files or --network, not both"]),
    (("gen", "--params", "/dev/zero", "--out", "{tmp}/g"), ["/dev/zero: a device, not a params.json"]),
    (("cycles", "/dev/zero"), ["/dev/zero: a device, not a layer file"]),
    (("report", str(TRAINED), "--board-report", "/dev/zero"), ["a device, not a board report"]),
    (("flow", "/dev/zero", "--out", "{tmp}/f"), ["a device, not a configuration file"]),
])
def test_bad_arguments_are_one_clear_line(tmp_path, args, words):
    r = winnow(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_layer_file_for_another_datapath_is_refused(tmp_path):
    r = winnow("cycles", *sorted(TRAINED.glob("*.wnl"))[:1], "--preset", "ulx3s")
    assert r.returncode == 2 and "the array is built for" in r.stderr and "Traceback" not in r.stderr


def test_the_streaming_preset_generates_the_memory_port_and_reports_its_block_ram(tmp_path):
    """`winnow gen --preset ulx3s` is the streaming array (--memory implied) and names its block RAMs against the
    part's; an on-chip preset generates no memory port."""
    r = winnow("gen", "--preset", "ulx3s", "--out", tmp_path / "s", check=0)
    assert "on-chip memory 1.47 Mbit: 188 of the LFE5U-85F's 208 block RAMs (90%" in r.stdout
    assert (tmp_path / "s" / "winnow_stream.v").exists() and (tmp_path / "s" / "stream.json").exists()
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert rep["board_memory"]["block_rams"] == 188 and rep["board_memory"]["fits"] and "stream" in rep
    r = winnow("gen", "--preset", "ulx3s-onchip", "--out", tmp_path / "o", check=0)
    assert not (tmp_path / "o" / "winnow_stream.v").exists() and "of the LFE5U-85F's 208 block RAMs" in r.stdout


def test_board_memory_warns_when_the_block_rams_do_not_fit():
    from winnow.boards.presets import preset
    from winnow.steps import board_memory

    lines = []
    big = preset("ulx3s").changed(k_max=256)  # 256-row accumulators per tile: 8× the preset's accumulator RAM
    doc = board_memory(big, "ulx3s", progress=lines.append)
    assert not doc["fits"] and doc["block_rams"] > 208 and lines[0].startswith("warning:") and "will not fit" in lines[0]


def test_preset_fields_can_be_changed_but_not_its_datapath(tmp_path):
    from winnow.boards.presets import PRESETS
    from winnow.hw.config import AccelConfig

    winnow("gen", "--preset", "ulx3s-onchip", "--pes", 8, "--lanes", 2, "--out", tmp_path, check=0)
    cfg = AccelConfig.from_dict(json.loads((tmp_path / "params.json").read_text()))
    base = PRESETS["ulx3s-onchip"]
    assert (base.pes, base.lanes) != (8, 2)
    assert (cfg.pes, cfg.lanes, cfg.requant, cfg.k_max, cfg.datapath.to_dict()) == (
        8, 2, base.requant, base.k_max, base.datapath.to_dict())
    r = winnow("gen", "--preset", "ulx3s", "--m", 4, "--out", tmp_path)
    assert r.returncode == 2 and "--m: the preset fixes the datapath" in r.stderr
    r = winnow("gen", "--preset", "ulx3s", "--requant", 3, "--out", tmp_path)
    assert r.returncode == 2 and "requant = 3 must be a positive divisor of m² = 4" in r.stderr


def test_a_corrupt_layer_file_names_the_field(tmp_path):
    data = bytearray((TRAINED / "01_2.wnl").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "bad.wnl").write_bytes(bytes(data))
    r = winnow("cycles", tmp_path / "bad.wnl")
    assert r.returncode == 2 and "bad.wnl" in r.stderr and "sha256" in r.stderr.lower()
    np.testing.assert_equal(r.stdout, "")


def test_build_names_the_known_boards_and_presets(tmp_path):
    r = winnow("build", "de10nano", "--out", tmp_path)
    assert r.returncode == 2 and "de10nano" in r.stderr and "ulx3s" in r.stderr and "Traceback" not in r.stderr
    r = winnow("build", "ulx3s", "--preset", "huge", "--out", tmp_path)
    assert r.returncode == 2 and "unknown preset 'huge'" in r.stderr


def test_build_refuses_a_configuration_too_big_for_the_part_naming_the_resource(tmp_path):
    r = winnow("build", "icebreaker", "--pes", 4, "--lanes", 4, "--out", tmp_path / "ice")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "too big for icebreaker" in r.stderr and "DSP" in r.stderr and "the part has 8" in r.stderr
    assert not (tmp_path / "ice" / "report.json").exists()


def test_a_failed_export_leaves_no_output_directory(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    r = winnow("export", tmp_path, "--out", tmp_path / "e")
    assert r.returncode == 2 and "checkpoint.pt" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------------------- errors in-process
@pytest.mark.parametrize("bug", [RuntimeError("a bug in the cycle model"),
                                 ValueError("operands could not be broadcast together"),  # numpy's kind
                                 FileNotFoundError(2, "No such file or directory", "/tmp/internal.tmp")])
def test_a_bug_keeps_its_traceback(monkeypatch, capsys, bug):
    from winnow import cli, steps

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(steps, "cycles", broken)
    with pytest.raises(type(bug)) as caught:
        cli.main(["cycles", "--network", str(TRAINED)])
    assert caught.value is bug
    assert "error:" not in capsys.readouterr().err


def test_a_winnow_error_is_one_line_and_exit_2_and_an_interrupt_exit_130(monkeypatch, capsys):
    from winnow import cli, steps
    from winnow.boards.errors import ToolMissingError

    def refused(*args, **kwargs):
        raise ToolMissingError("yosys not found")

    monkeypatch.setattr(steps, "cycles", refused)
    assert cli.main(["cycles", "--network", str(TRAINED)]) == 2
    assert capsys.readouterr().err == "error: yosys not found\n"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "cycles", interrupted)
    assert cli.main(["cycles", "--network", str(TRAINED)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_unusable_user_paths_are_one_line_naming_the_path(tmp_path, capsys):
    from winnow import cli

    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["gen", "--out", afile / "g"], [f"{afile / 'g'}: cannot create the output directory", "Not a directory"]),
        (["gen", "--out", afile], [f"{afile}: not a directory"]),
        (["cycles", "--network", TRAINED, "--json", afile / "c.json"], [f"{afile}: not a directory"]),
        (["report", TRAINED, "--board-report", tmp_path], [f"{tmp_path}: cannot read it", "Is a directory"]),
        (["report", TRAINED, "--board-report", tmp_path / "none.json"], ["none.json: no such board build report"]),
        (["train", tmp_path, "--out", tmp_path / "t"], [f"{tmp_path}: cannot read the configuration file"]),
        (["flow", tmp_path, "--out", tmp_path / "new" / "run"], [f"{tmp_path}: cannot read the configuration"]),
        (["sim", "--random", "1,2,3", "--out", tmp_path / "s" / "t"], ["C,K,H,W"]),
    ]
    for args, words in cases:
        assert cli.main([str(x) for x in args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        for w in words:
            assert w in err, (w, err)
    # the output directories a failed command created (parents included) are gone again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_gen_memory_writes_the_streaming_array_and_its_descriptor_layout(tmp_path):
    from winnow.hw.config import AccelConfig
    from winnow.hw.stream_abi import StreamConfig, pass_layout

    winnow("gen", "--memory", "--m", 2, "--c-max", 16, "--pes", 2, "--lanes", 2, "--k-max", 4, "--h-max", 8,
           "--w-max", 6, "--c-block", 4, "--out", tmp_path, check=0)
    cfg = AccelConfig.read_params(tmp_path / "params.json")
    assert cfg.tiled and cfg.pad_max == 0 and cfg.c_block == 4  # --memory implies tiled, whose windows carry padding
    text = (tmp_path / "winnow_stream.v").read_text()
    assert "module winnow_stream(" in text and "m_axi_arvalid" in text and "m_axi_wdata" in text
    doc = json.loads((tmp_path / "stream.json").read_text())
    layout = pass_layout(cfg, StreamConfig())
    assert doc["descriptor"] == {n: {"offset": f.offset, "bits": f.width} for n, f in layout}
