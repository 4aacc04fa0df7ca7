"""The hardware ABI: docs/hardware.md holds its rendered tables; packed words equal the layouts' own constants."""

import re
from pathlib import Path

import numpy as np
import pytest

from winnow.hw import abi
from winnow.hw.config import AccelConfig
from winnow.hw.packer import pack_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.sim.layers import random_input, random_layer

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware.md"


def test_docs_hold_the_rendered_abi_tables():
    text = DOC.read_text(encoding="utf-8")
    mo = re.search(r"<!-- abi:begin[^\n]*-->\n(.*?)<!-- abi:end -->", text, re.S)
    assert mo, "docs/hardware.md lacks the abi:begin/abi:end block"
    assert mo.group(1) == abi.markdown_tables()


def test_select_codes_are_two_bits_in_load_order():
    assert [(s.name, s.value) for s in abi.Sel] == [("REG", 0), ("X", 1), ("STREAM", 2), ("QUANT", 3)]
    assert abi.load_layout(AccelConfig())["sel"].width == 2


@pytest.mark.parametrize("arr", [dict(pes=3, lanes=2), dict(pes=2, clusters=2, lanes=2, k_block=2, serial=True)])
def test_packed_words_equal_the_layouts_constants(arr):
    """The packer's NumPy packing gives the bits Amaranth's own ``layout.const`` gives (what the RTL views read)."""
    dp = DatapathConfig(m=2, r=3, c_max=4)
    cfg = AccelConfig(datapath=dp, k_max=4, h_max=8, w_max=8, **arr)
    layer = random_layer(dp, C=3, K=3, H=6, W=5, density=0.6, padding=1, seed=2, extreme=True)
    packed = pack_layer(layer, cfg)
    el = abi.entry_layout(cfg)
    for j in range(cfg.pes):
        for (p, k, c, v, last, eob), word in zip(packed.streams[j], packed.stream_words(j)):
            kk = (k % cfg.k_block) // cfg.clusters if k >= 0 else 0
            want = el.const({"p": p, "k": kk, "c": c, "value": v, "last": last, "eob": eob}).as_value().value
            assert word == want
    ql = abi.quant_layout(dp)
    for (b, mlt, sh), word in zip(packed.quant, packed.quant_words()):
        assert word == ql.const({"bias": b, "mult": mlt, "shift": sh}).as_value().value
    ll = abi.load_layout(cfg)
    x = random_input(layer, seed=3)
    words = packed.load_port_words(x)
    tuples = packed.load_words(x)
    assert len(words) == len(tuples) and {t[0] for t in tuples} == set(abi.Sel)
    for (sel, bank, addr, data), word in zip(tuples, words):
        assert word == ll.const({"sel": sel, "bank": bank, "addr": addr, "data": data}).as_value().value


def test_address_functions_place_pixels_and_outputs_by_hand():
    cfg = AccelConfig(datapath=DatapathConfig(m=2, r=3, c_max=4), pes=1, lanes=4, otu_lanes=2, k_max=4,
                      h_max=9, w_max=9)
    # n = 4, x_rows = x_cols = ⌈9/4⌉ = 3: pixel (c=1, h=5, w=6) in bank (1, 2), row 1, column 1
    assert abi.x_bank(cfg, 5, 6) == 1 * 4 + 2
    assert abi.x_addr(cfg, 1, 5, 6) == (1 * 3 + 1) * 3 + 1
    # m = 2, the largest output 9×9 (pad_max = 1): 25 tiles, out_tiles = ⌈25/2⌉ = 13; tile 5's output
    # (3, 2) of channel 2: bank (5 mod 2, 3 mod 2, 2 mod 2), address 2·13 + ⌊5/2⌋
    assert cfg.out_tiles == 13
    assert abi.out_bank(cfg, 5, 3, 2) == 1 * 4 + 1 * 2 + 0
    assert abi.out_addr(cfg, 2, 5) == 2 * 13 + 2
    h, w = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    banks = abi.x_bank(cfg, h, w)
    assert all(len(set(banks[i:i + 4, j:j + 4].ravel())) == 16 for i in range(6) for j in range(6))
