"""AccelConfig: validation names the rule; params.json carries the derived numbers."""

import json

import pytest

from winnow.hw.abi import entry_layout, quant_layout, register_map
from winnow.hw.config import AccelConfig
from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError


def test_defaults_derive_from_the_datapath():
    dp = DatapathConfig(m=4, r=3, c_max=32)
    cfg = AccelConfig(datapath=dp, pes=4, lanes=8, k_max=16)
    assert cfg.n == 6 and cfg.positions == 36 and cfg.multipliers == 32
    assert cfg.widths is dp.widths
    # a dense layer at the limits fits: ⌈36/4⌉ positions of 16·32 weights on one PE, plus one
    # end-of-block marker per block (one block here)
    assert cfg.stream_depth == 9 * 16 * 32 + 1
    assert cfg.k_block == 16 and cfg.k_blocks_max == 1 and cfg.acc_depth == 16


@pytest.mark.parametrize("kw, words", [
    ({"pes": 0}, "pes"),
    ({"pes": 37}, "Winograd positions"),
    ({"lanes": 0}, "lanes"),
    ({"k_max": 0}, "k_max"),
    ({"mode": "fast"}, "mode"),
    ({"stream_depth": 0}, "stream_depth"),
    ({"mode": "dense", "stream_depth": 10}, "dense mode needs stream_depth"),
    ({"datapath": DatapathConfig(dims=3, m=2, r=3)}, "dims = 2"),
    ({"pes": 6, "clusters": 4}, "must divide pes"),
    ({"pes": 40, "clusters": 1}, "raise clusters"),
    ({"lanes": 4, "otu_lanes": 3}, "must divide lanes"),
    ({"clusters": 2, "k_block": 3}, "multiple of clusters"),
    ({"k_max": 8, "k_block": 16}, "exceeds k_max"),
    ({"k_block": 0}, "k_block"),
    ({"requant": 3}, "divisor of m² = 16"),
    ({"pes": 4, "clusters": 2, "serial": True}, "one PE per cluster"),
    ({"serial": "yes"}, "serial must be true or false"),
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


def test_register_map_has_one_owner_per_cluster_and_position():
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=4, clusters=2, lanes=2, k_max=4)
    names = [n for n, _, _ in register_map(cfg)]
    assert len(names) == len(set(names))
    assert sum(n.startswith("owner") for n in names) == 2 * 16


def test_params_json_rebuilds_the_configuration(tmp_path):
    cfg = AccelConfig(datapath=DatapathConfig(m=4, r=3, c_max=16), pes=8, clusters=2, lanes=2, k_max=12,
                      k_block=4, otu_lanes=2, h_max=9, w_max=7)
    d = json.loads(cfg.write_params(tmp_path).read_text())
    assert AccelConfig.from_dict(d).to_dict() == cfg.to_dict()
    d["derived"]["x_depth"] += 1
    with pytest.raises(ConfigError, match="does not match"):
        AccelConfig.from_dict(d)
    with pytest.raises(ConfigError, match="schema"):
        AccelConfig.from_dict({"pes": 4})


def test_memory_inventory_adds_up():
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=4, clusters=2, lanes=2, k_max=8, k_block=4,
                      otu_lanes=2, h_max=9, w_max=9)
    mems = cfg.memories()
    w = cfg.widths
    # two V-buffer copies (one per cluster) of 16 positions, 2 halves of c_max words, L lanes each
    assert mems["v_buffer"]["bits"] == 2 * 16 * 2 * 8 * 2 * w.v_bits
    # accumulators: 2 halves × 2 clusters × 16 positions, k_block/2 rows of L lanes
    assert mems["accumulators"]["bits"] == 2 * 2 * 16 * 2 * 2 * w.acc_bits
    # the rest by hand: input n² = 16 banks × (3·3 tile positions of the padded 11×11 input) · 8 channels
    # × 8 bits; streams 4 × stream_depth × entry bits; quant k_max = 8 × quant bits; output otu_lanes·m² = 8
    # banks × K·⌈25 tiles / 2 lanes⌉ = 8·13 words × 8 bits
    rest = 16 * 72 * 8 + 4 * cfg.stream_depth * entry_layout(cfg).size + 8 * quant_layout(cfg.datapath).size + 8 * 104 * 8
    assert cfg.memory_bits == mems["v_buffer"]["bits"] + mems["accumulators"]["bits"] + rest


def test_hw_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, winnow.hw.config, winnow.hw.packer, winnow.hw.cycle_model, winnow.hw.array, winnow.hw.generate, winnow.sim.layers, winnow.sim.cocotb_run; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_configuration_too_large_to_elaborate_is_refused_by_the_generator_only():
    from winnow.hw.array import WinogradArray
    from winnow.hw.config import MAX_MEMORY_BITS

    big = AccelConfig(datapath=DatapathConfig(m=4, r=3, c_max=512), pes=16, lanes=4, k_max=512, h_max=224, w_max=224)
    assert big.memory_bits > MAX_MEMORY_BITS  # the cycle model still takes it (VGG-16 tables)
    with pytest.raises(ConfigError, match=r"Mibit, above the generator's limit of 256 Mibit; the largest is"):
        WinogradArray(big)


def test_serial_memories_are_one_per_cluster_and_round_trip(tmp_path):
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=8), pes=2, clusters=2, lanes=2, k_max=8, k_block=4,
                      otu_lanes=2, h_max=9, w_max=9, serial=True)
    mems = cfg.memories()
    w = cfg.widths
    # by hand: one input memory of n² = 16 bank regions of 2^⌈log2 x_depth⌉ = 128 words (x_depth = 8·3·3 = 72);
    # one V' memory per cluster: 16 positions × 2 halves × 8 channels; two accumulator halves per cluster of
    # 16 positions × k_block/2 = 2 rows
    assert (mems["input"]["count"], mems["input"]["depth"]) == (1, 16 * 128)
    assert mems["v_buffer"] == {"count": 2, "depth": 16 * 16, "width": 2 * w.v_bits, "bits": 2 * 256 * 2 * w.v_bits}
    assert (mems["accumulators"]["count"], mems["accumulators"]["depth"]) == (4, 16 * 2)
    d = json.loads(cfg.write_params(tmp_path).read_text())
    assert d["serial"] is True
    assert AccelConfig.from_dict(d) == cfg
    d["serial"] = 1
    with pytest.raises(ConfigError, match="serial must be true or false"):
        AccelConfig.from_dict(d)


def test_cli_flow_generator_and_preset_derive_the_same_defaults():
    """The derived defaults (otu_lanes, k_block, requant, stream_depth) live once, on AccelConfig (winnow gen, the flow, presets)."""
    from winnow.boards.presets import PRESET_FIELDS, PRESETS
    from winnow.cli import _resolve_array, parser
    from winnow.flowconfig import parse_flow_config
    from winnow.steps import array_config

    dp = DatapathConfig(m=2, r=3, c_max=8)
    given = {"pes": 2, "lanes": 6, "k_max": 12, "h_max": 16, "w_max": 16}
    flow = array_config(dp, parse_flow_config("[array]\n" + "\n".join(f"{k} = {v}" for k, v in given.items()))
                        .array_fields())
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in given.items()]
    cli = _resolve_array(parser().parse_args(["gen", "--m=2", "--c-max=8", *opts, "--out=x"]))
    # by hand: gcd(6, 4) = 2 output-unit lanes, k_block = k_max, m² = 4 requantizers, a dense layer's
    # stream: 16 positions / 2 PEs × 12 rows × 8 channels + one end-of-block mark
    assert (flow.otu_lanes, flow.k_block, flow.requant) == (2, 12, 4)
    assert flow.stream_depth == 8 * 12 * 8 + 1
    assert cli == flow
    # a preset changed on the command line equals the preset's own fields changed, resolved afresh
    dp_p, fields = PRESET_FIELDS["orangecrab"]
    assert PRESETS["orangecrab"] == AccelConfig.resolved(dp_p, **fields)
    changed = _resolve_array(parser().parse_args(["gen", "--preset=orangecrab", "--lanes=3", "--k-max=8", "--out=x"]))
    assert changed == AccelConfig.resolved(dp_p, **{**fields, "lanes": 3, "k_max": 8})
    assert (changed.otu_lanes, changed.k_block) == (1, 8)  # 3 is a multiple of the preset's one OTU lane
    assert changed.stream_depth == changed.dense_stream_length != PRESETS["orangecrab"].stream_depth
    widened = _resolve_array(parser().parse_args(["gen", "--preset=ulx3s", "--lanes=6", "--otu-lanes=3", "--out=x"]))
    assert widened.otu_lanes == 3  # given: kept
