"""The resource model: its calibration records come from the measured builds, DSPs are structural, block RAMs
map to the part's shapes, and the docs quote its measured error."""

import json
from pathlib import Path

import pytest

from winnow.explore import resources as R
from winnow.hw.config import AccelConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_calibration_records_are_the_measured_builds_with_their_provenance():
    recs = R.read_calibration()
    boards = json.loads((ROOT / "bench" / "results" / "boards.json").read_text())
    from_boards = [r for r in recs if r["provenance"]["source"] == "bench/results/boards.json"]
    assert from_boards == R.records_from_boards_json(boards)
    assert all(r["provenance"].get("source") and r["status"] in ("built", "placed") for r in recs)
    for r in recs:  # every record's configuration reads back
        AccelConfig.from_dict(r["config"])


def test_dsps_are_one_per_lane_and_two_per_requantizer_on_every_measured_build():
    for r in R.read_calibration():
        cfg = AccelConfig.from_dict(r["config"])
        assert R.features(cfg, r["family"])["dsp"] == r["measured"]["DSP"], r["id"]


@pytest.mark.parametrize("depth,width,family,blocks", [
    (1568, 8, "ecp5", 1),    # 2048 × 9
    (4097, 24, "ecp5", 9),   # 3 × 2048 deep × 3 × 9 wide, or 9 × 512 × 36
    (100, 72, "ecp5", 2),    # 512 × 36, twice
    (2048, 8, "ice40", 4),   # 4 × 2048 × 2 (or 4 × 512 × 8)
    (256, 16, "ice40", 1),
])
def test_block_ram_count_of_one_memory(depth, width, family, blocks):
    assert R.bram_blocks(depth, width, family) == blocks


def test_fit_recovers_coefficients_from_records_made_with_them(tmp_path):
    base = R.read_calibration()
    ecp5 = [r for r in base if r["family"] == "ecp5"]
    fake = []
    for r in ecp5:  # measured = 3·mac_bits + 5·port_bits + 7·rmw_bits exactly, and so on
        f = R.features(AccelConfig.from_dict(r["config"]), "ecp5")
        fake.append({**r, "measured": {"LUT": 3 * f["mac_bits"] + 5 * f["port_bits"] + 7 * f["rmw_bits"],
                                       "FF": 2 * f["port_bits"],
                                       "DSP": f["dsp"], "BRAM": 0.5 * f["bram_blocks"],
                                       "LUTRAM": f["lutram_cells"]}})
    m = R.fit(fake)
    assert any(R.features(AccelConfig.from_dict(r["config"]), "ecp5")["rmw_bits"] for r in ecp5)  # tiled builds
    assert m.coefficients["ecp5"]["LUT"] == pytest.approx([3, 5, 7], rel=1e-6)
    assert m.coefficients["ecp5"]["BRAM"] == pytest.approx([0.5], rel=1e-6)
    # estimates are whole counts: within rounding of the made-up figures
    assert all(abs(e) < 0.02 for row in R.errors(m, fake) for k, e in row["error"].items() if k != "fmax_mhz")


def test_docs_quote_the_measured_error_of_the_model():
    from bench.explore_run import render, resource_errors

    doc = {"resources": resource_errors()}
    assert render(doc) in (ROOT / "docs" / "explore.md").read_text(encoding="utf-8")


def test_docs_show_the_fronts_rendered_from_the_recorded_json():
    from bench.explore_run import render

    doc = json.loads((ROOT / "bench" / "results" / "explore.json").read_text(encoding="utf-8"))
    names = [n["name"] for n in doc["networks"]]
    assert names == ["SmallVGG", "CIFAR-10 VGG", "VGG-16", "VGG-16 at 90 % of the part"]
    assert render({"networks": doc["networks"]}).rstrip() in (ROOT / "docs" / "explore.md").read_text(encoding="utf-8")
