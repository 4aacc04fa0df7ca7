"""``winnow explore`` end to end on the trained SmallVGG fixture: front, preset, resume, builds, bad input."""

import json
import time
from pathlib import Path

import pytest

from winnow.cli import main
from winnow.explore import networks, resources, sweep
from winnow.explore.engine import Engine
from winnow.explore.space import SearchSpace
from winnow.explore.target import parse_target
from winnow.hw.config import AccelConfig

DEMO = str(Path(__file__).resolve().parent / "data" / "trained_f43")
#: A small space (a few hundred arrays): seconds, not the default's half a minute.
#: F(4,3) only: the fixture's own tile, so the chosen preset runs its layer files.
SMALL = ["--tiles", "4", "--pes", "2,4,8", "--lanes", "1,2,4", "--clusters", "1,2", "--otu-lanes", "1",
         "--requant", "1,m", "--k-block", "all,16", "--patch", "2,4", "--c-block", "16", "--max-util", "0.8", "--no-progress"]


def _run(capsys, *args):
    code = main(["explore", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "ex"
    assert main(["explore", DEMO, "--board", "ulx3s", "--out", str(out), *SMALL]) == 0
    return out


def test_explore_writes_the_front_the_report_and_a_preset_that_reads_back(explored, capsys):
    out = explored
    doc = json.loads((out / "points.json").read_text())
    fits = [r for r in doc["records"] if r["status"] == "fits"]
    assert doc["front"] and len(doc["front"]) <= len(fits)
    lim = {r: doc["target"]["capacity"][r] * 0.8 for r in ("LUT", "FF", "DSP", "BRAM")}
    for r in fits:  # every point that "fits" is within the usable 80 % of each resource
        assert all(r["estimate"][k] <= v for k, v in lim.items())
    best = max(r["fps"] for r in fits)
    assert doc["chosen"]["fps"] == best  # the chosen point is the fastest that fits
    cfg = AccelConfig.read_params(out / "chosen" / "params.json")
    assert (cfg.pes, cfg.lanes, cfg.m) == (doc["chosen"]["pes"], doc["chosen"]["lanes"], doc["chosen"]["m"])
    for f in ("summary.md", "front.md", "layers.md", "pareto.png"):
        assert (out / f).stat().st_size > 0
    assert "| layer | cycles | compute | memory | bound |" in (out / "layers.md").read_text()
    # the preset is usable by the other commands: winnow cycles runs the network on it, with the cycles the
    # exploration computed (the chosen point's compute cycles; a banked array's, as packed by winnow cycles)
    js = out.parent / "cycles.json"
    assert main(["cycles", "--network", DEMO, "--params", str(out / "chosen" / "params.json"), "--json", str(js)]) == 0
    if doc["chosen"]["org"] == "banked":
        got = [L["sparse"]["cycles"] for L in json.loads(js.read_text())["layers"]]
        assert got == [L["compute"] for L in doc["chosen"]["layers"]]


def test_an_interrupted_exploration_redoes_only_what_is_missing(explored, tmp_path, capsys):
    import shutil

    out = tmp_path / "ex"
    shutil.copytree(explored, out)
    code, stdout, _ = _run(capsys, DEMO, "--board", "ulx3s", "--out", str(out), *SMALL)
    assert code == 0 and "(0 evaluated, " in stdout  # a second run finds every evaluation in the cache
    cached = sorted((out / "cache" / "cycles").glob("*.json"))
    for f in cached[:5]:  # as if the run had stopped before these five arrived
        f.unlink()
    code, stdout, _ = _run(capsys, DEMO, "--board", "ulx3s", "--out", str(out), *SMALL)
    assert code == 0 and f"(5 evaluated, {len(cached) - 5} cached)" in stdout


def _fake_report(board, params, out_dir, lut):
    cfg = AccelConfig.from_dict(params)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return {"board": board, "family": "ecp5", "config_id": f"{cfg.pes:04x}{cfg.lanes:04x}", "config": params,
            "fmax_mhz": 50.0, "tools": {}, "seed": 1, "build_s": 0.1,
            "resources": {"LUT": {"used": lut}, "FF": {"used": 5000}, "DSP": {"used": cfg.multipliers + 2},
                          "BRAM": {"used": 40}, "LUTRAM": {"used": 1000}}}


def test_builds_in_the_sweep_are_recorded_a_failure_does_not_stop_it_and_the_model_is_refit(tmp_path):
    log = tmp_path / "builds.log"  # tasks are serialized to the engine's workers: count calls in a file

    def builder(board, params, out_dir):  # the one-lane array fails, as a real tool can
        with open(log, "a") as fh:
            fh.write(f"{params['pes']}x{params['lanes']}\n")
        if params["lanes"] == 1:
            raise RuntimeError("nextpnr crashed")
        return _fake_report(board, params, out_dir, lut=20000)

    net = networks.load_network(DEMO)
    sp = SearchSpace(m=(2,), pes=(2, 4, 8), lanes=(1, 2), clusters=(1,), otu_lanes=(1,), requant=("1",),
                     k_block=(None,), org=("banked",), bandwidth=(2.0,))
    with Engine(threads=1) as eng:
        doc = sweep.explore(net, parse_target("ulx3s"), sp, eng, tmp_path, build=2, builder=builder,
                            progress=lambda s: None, bars=False)
    # the two fastest: 8×2 and 8×1
    assert [(b["point"]["lanes"], b["status"]) for b in doc["builds"]] == [(2, "built"), (1, "failed")]
    assert "nextpnr crashed" in doc["builds"][1]["error"]
    assert doc["refit"]["records"] == len(resources.read_calibration()) + 1
    recs = resources.read_calibration(tmp_path / "calibration.json")
    assert recs[-1]["measured"]["LUT"] == 20000 and recs[-1]["provenance"]["source"] == "winnow explore --build"
    built = [r for r in doc["records"] if r.get("measured")]
    assert len(built) == 1 and built[0]["LUT"] == 20000 and built[0]["fmax_mhz"] == 50.0
    # builds are cached by content: a second run builds nothing that succeeded or failed
    with Engine(threads=1) as eng:
        sweep.explore(net, parse_target("ulx3s"), sp, eng, tmp_path, build=2, builder=builder,
                      progress=lambda s: None, bars=False)
    assert sorted(log.read_text().split()) == ["8x1", "8x2"]


def test_a_build_stopped_after_placement_calibrates_the_resources_without_fmax(tmp_path):
    """A build past its time limit with nextpnr's placement (the router that never converges) is `placed`:
    its measured LUT/FF/DSP/BRAM become a placed-only calibration record and the model is refit on it."""
    from winnow.boards.errors import ToolTimeoutError

    def builder(board, params, out_dir):
        raise ToolTimeoutError("nextpnr-ecp5 did not finish within the build's time limit", step="nextpnr-ecp5",
                               utilisation={"LUT": (30000, 83640), "FF": (6000, 83640), "DSP": (18, 156),
                                            "BRAM": (90, 208), "LUTRAM": (700, 10455)})

    net = networks.load_network(DEMO)
    sp = SearchSpace(m=(2,), pes=(4, 8), lanes=(2,), clusters=(1,), otu_lanes=(1,), requant=("1",),
                     k_block=(None,), org=("banked",), bandwidth=(2.0,))
    with Engine(threads=1) as eng:
        doc = sweep.explore(net, parse_target("ulx3s"), sp, eng, tmp_path, build=1, builder=builder,
                            progress=lambda s: None, bars=False)
    b = doc["builds"][0]
    assert b["status"] == "placed" and b["measured"] == {"LUT": 30000, "FF": 6000, "DSP": 18, "BRAM": 90,
                                                          "LUTRAM": 700}
    recs = resources.read_calibration(tmp_path / "calibration.json")
    assert recs[-1]["status"] == "placed" and recs[-1]["measured"]["LUT"] == 30000
    assert "fmax_mhz" not in recs[-1]["measured"] and "time limit" in recs[-1]["provenance"]["note"]
    assert doc["refit"]["records"] == len(resources.read_calibration()) + 1
    # the refit moved the LUT coefficients toward the placed figure (an adjustment that changes nothing fails)
    assert doc["refit"]["error_after_refit"]["LUT"]["mean_abs"] < doc["refit"]["error_before_refit"]["LUT"]["mean_abs"]


@pytest.mark.parametrize("args,message", [
    (["--board", "de10"], "error: unknown board 'de10'"),
    (["--board", "ulx3s:LUT=100"], "error: nothing fits ulx3s:LUT=100 at 80% of its resources"),
    (["--board", "ulx3s", "--pes", "3", "--clusters", "2"], "error: the search space holds no valid array"),
    (["--board", "ulx3s", "--lanes", ","], "error: --lanes: the search space is empty"),
    (["--board", "ecp5:LUT=5000,FF=5000,DSP=8,BRAM=10", "--build", "1"], "error: --build needs a board"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "ex"
    code, _, err = _run(capsys, DEMO, "--out", str(out), *SMALL, *args)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not out.exists()


def test_a_cluster_address_that_does_not_answer_is_an_error_within_seconds(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    code, _, err = _run(capsys, DEMO, "--board", "ulx3s", "--out", str(tmp_path / "ex"), "--cluster",
                        f"tcp://127.0.0.1:{port}", "--timeout", "1", *SMALL)
    assert code == 2 and "did not answer within 1 s" in err and time.perf_counter() - t0 < 15


def test_an_unknown_network_is_named(tmp_path, capsys):
    code, _, err = _run(capsys, str(tmp_path), "--board", "ulx3s", "--out", str(tmp_path / "ex"))
    assert code == 2 and "no network.json here" in err
    code, _, err = _run(capsys, "shapes:resnet", "--board", "ulx3s", "--out", str(tmp_path / "ex"))
    assert code == 2 and "unknown shape table 'resnet'" in err
