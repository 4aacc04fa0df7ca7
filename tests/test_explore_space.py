"""The search space: axes, the configuration of a point, what is refused, and the part's limits."""

import pytest

from winnow.boards.errors import UnknownBoardError
from winnow.explore import space
from winnow.explore.space import EmptySpaceError, SearchSpace, array_config, parse_axis
from winnow.explore.target import parse_target
from winnow.model.errors import ConfigError

LIMITS = {"c_max": 32, "k_max": 32, "h_max": 28, "w_max": 28, "pad_max": 1}
POINT = {"m": 4, "pes": 8, "lanes": 4, "clusters": 2, "otu_lanes": 2, "requant": "m", "org": "banked",
         "k_block": 16}


def test_a_banked_point_takes_the_networks_limits():
    cfg = array_config(POINT, LIMITS)
    assert (cfg.m, cfg.pes, cfg.lanes, cfg.clusters, cfg.otu_lanes) == (4, 8, 4, 2, 2)
    assert cfg.requant == 4 and cfg.k_block == 16 and not cfg.tiled
    assert (cfg.k_max, cfg.c_max, cfg.h_max, cfg.w_max, cfg.pad_max) == (32, 32, 28, 28, 1)


def test_a_tiled_point_is_a_window_of_patch_tiles_and_a_c_block():
    p = {**POINT, "org": "tiled", "patch": 4, "c_block": 16, "requant": "m2"}
    cfg = array_config(p, LIMITS)
    assert cfg.tiled and cfg.h_max == cfg.w_max == 4 * 4 + 2 and cfg.pad_max == 0
    assert cfg.c_block == 16 and cfg.k_max == 16 and cfg.requant == 16


def test_points_the_array_refuses_are_config_errors():
    with pytest.raises(ConfigError, match="clusters = 3 must divide pes = 8"):
        array_config({**POINT, "clusters": 3}, LIMITS)
    with pytest.raises(ConfigError, match="not below the network's largest K"):
        array_config({**POINT, "k_block": 32}, LIMITS)
    with pytest.raises(ConfigError, match="exceeds the network's largest C"):
        array_config({**POINT, "org": "tiled", "patch": 2, "c_block": 64}, LIMITS)


def test_the_space_enumerates_each_array_once_and_refuses_an_empty_axis():
    sp = SearchSpace(m=(2,), pes=(2, 4), lanes=(1,), clusters=(1,), otu_lanes=(1,), requant=("1",),
                     k_block=(None, 16), org=("banked", "tiled"), patch=(2, 4), c_block=(16,), stream=(1.0,),
                     bandwidth=(1.0,))
    arrays = list(sp.arrays())
    # banked: 2 P × 2 k_block; tiled: 2 P × 1 k_block (None is not a block) × 2 patches
    assert len(arrays) == 2 * 2 + 2 * 1 * 2
    assert len({tuple(sorted((k, str(v)) for k, v in a.items())) for a in arrays}) == len(arrays)
    with pytest.raises(EmptySpaceError, match="axis pes has no value"):
        SearchSpace(pes=())
    with pytest.raises(EmptySpaceError, match="empty"):
        parse_axis("pes", " , ")
    assert parse_axis("k_block", "all,16") == (None, 16) and parse_axis("bandwidth", "0.5,2") == (0.5, 2.0)
    with pytest.raises(ConfigError, match="--lanes: 'x' is not an integer"):
        parse_axis("lanes", "4,x")
    with pytest.raises(ConfigError, match="org: 'ring' is not one of"):
        SearchSpace(org=("ring",))


def test_targets_known_boards_tighter_limits_and_parts():
    t = parse_target("ulx3s")
    assert t.board == "ulx3s" and t.capacity["LUT"] == 83640 and t.capacity["LUTRAM"] == 10455
    assert parse_target("ulx3s:LUT=40000").capacity["LUT"] == 40000
    p = parse_target("ice40:LUT=7680,FF=7680,DSP=8,BRAM=32", max_util=0.8)
    assert p.board is None and p.family == "ice40" and p.limit("LUT") == pytest.approx(0.8 * 7680)
    with pytest.raises(UnknownBoardError, match="unknown board 'de10'"):
        parse_target("de10")
    with pytest.raises(ConfigError, match="missing FF, DSP, BRAM"):
        parse_target("ecp5:LUT=1000")
    with pytest.raises(ConfigError, match="more than the LFE5U-85F has"):
        parse_target("ulx3s:DSP=500")
    with pytest.raises(ConfigError, match="expected RES=N"):
        parse_target("ulx3s:LUTS=5")
    with pytest.raises(ConfigError, match="--max-util"):
        parse_target("ulx3s", max_util=1.5)
    assert space.requant_value({"m": 6, "requant": "m2"}) == 36


def test_a_stream_fraction_shortens_the_pe_streams_and_a_network_that_needs_more_is_refused():
    from winnow.explore import evaluate, networks

    full = array_config(POINT, LIMITS)
    half = array_config({**POINT, "stream": 0.5}, LIMITS)
    assert half.stream_depth == -(-full.dense_stream_length // 2) and half.memory_bits < full.memory_bits
    net = networks.load_network("shapes:smallvgg@0.9")  # 90 % dense: streams of half the dense length overflow
    small = {**POINT, "m": 2, "pes": 2, "lanes": 1, "clusters": 1, "otu_lanes": 1, "k_block": None}
    assert evaluate.evaluate_cycles(small, net, (1.0,))["status"] == "ok"
    bad = evaluate.evaluate_cycles({**small, "stream": 0.5}, net, (1.0,))
    assert bad["status"] == "invalid" and "stream entries, beyond stream_depth" in bad["error"]
