"""AccelConfig: validation names the rule; params.json carries the derived numbers."""

import json

import pytest

from hw.config import AccelConfig, register_map
from model.datapath import DatapathConfig
from model.errors import ConfigError


def test_defaults_derive_from_the_datapath():
    dp = DatapathConfig(m=4, r=3, c_max=32)
    cfg = AccelConfig(datapath=dp, pes=4, lanes=8, k_max=16)
    assert cfg.n == 6 and cfg.positions == 36 and cfg.multipliers == 32
    assert cfg.widths is dp.widths
    # a dense layer at the limits fits: ⌈36/4⌉ positions of 16·32 weights on one PE
    assert cfg.stream_depth == 9 * 16 * 32


@pytest.mark.parametrize("kw, words", [
    ({"pes": 0}, "pes"),
    ({"pes": 37}, "Winograd positions"),
    ({"lanes": 0}, "lanes"),
    ({"k_max": 0}, "k_max"),
    ({"mode": "fast"}, "mode"),
    ({"stream_depth": 0}, "stream_depth"),
    ({"mode": "dense", "stream_depth": 10}, "dense mode needs stream_depth"),
    ({"datapath": DatapathConfig(dims=3, m=2, r=3)}, "dims = 2"),
])
def test_bad_configurations_name_the_rule(kw, words):
    with pytest.raises(ConfigError, match=words):
        AccelConfig(**{"datapath": DatapathConfig(m=4, r=3), **kw})


def test_widths_too_large_fail_in_the_datapath():
    # the datapath refuses widths above 64 bits, so the array can never be built with them
    with pytest.raises(ConfigError, match="needs"):
        AccelConfig(datapath=DatapathConfig(m=8, r=3))


def test_params_json_round_trip(tmp_path):
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=2, lanes=2, k_max=4, h_max=9, w_max=7)
    path = cfg.write_params(tmp_path)
    d = json.loads(path.read_text())
    assert d["pes"] == 2 and d["lanes"] == 2 and d["datapath"]["m"] == 2
    assert d["datapath"]["widths"] == cfg.widths.summary()
    assert d["derived"]["x_banks"] == 16 and d["derived"]["out_banks"] == 4
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind


def test_register_map_has_one_slot_per_pe_and_position():
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=3, lanes=2, k_max=4)
    names = [n for n, _, _ in register_map(cfg)]
    assert len(names) == len(set(names))
    assert sum(n.startswith("len") for n in names) == 3
    assert sum(n.startswith("owner") for n in names) == 16


def test_hw_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, hw.config, hw.packer, hw.cycle_model, hw.array, hw.generate, sim.layers, sim.cocotb_run; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
