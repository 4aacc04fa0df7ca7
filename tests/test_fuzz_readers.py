"""Fuzz every reader (issue 17): random byte flips, truncations, deep nesting, huge numbers and wrong types.

Each property asserts "a named error (a WinnowError) or an exact round trip": a hostile
input may be refused, by name, or read back as exactly what it states; any other
exception (RecursionError, ValueError, OverflowError, KeyError, MemoryError, …) fails
the test. The examples are bounded (the "ci" profile of tests/conftest.py: derandomized;
:func:`examples` per test, ten times as many with HYPOTHESIS_PROFILE=explore) so the
file runs in about 10 s. The hostile values and file builders are the benchmark's
(``bench/hostile_inputs.py``, which pushes a few hundred inputs through the readers
and the ``winnow`` command).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hostile_inputs import (
    TOML_KEYS,
    Raw,
    _Stream,
    dump,
    forged,
    json_paths,
    layer_bytes,
    layer_parts,
    plain,
    set_path,
    toml_with,
)
from winnow.boards import protocol as P
from winnow.boards.host import HostDriver
from winnow.flow import Flow, Step
from winnow.flowconfig import FlowConfig, parse_flow_config
from winnow.hw.config import AccelConfig
from winnow.model.errors import ConfigError, WinnowError
from winnow.model.files.bounded import MAX_JSON_DEPTH, nesting_depth, parse_json
from winnow.model.files.export import manifest_digest, read_network
from winnow.model.files.layer_file import MAGIC, decode_layer, encode_layer
from winnow.model.integer.datapath import DatapathConfig
from winnow.report import _utilization, check_board_report, write_report

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "tests" / "data" / "trained_f43"

#: Numbers and shapes that break readers: huge and negative integers, floats at and past the edges, wrong
#: kinds, deep nesting, integers of thousands of digits, NaN.
HOSTILE = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 1, -(2**63) - 1, 10**300, -(10**300), 10**4000]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-320, 1e308, -1e308, 0.5]),
    st.booleans(), st.none(), st.text(max_size=20),
    st.lists(st.integers(-5, 5), max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=3),
    st.builds(lambda d: Raw("[" * d + "]" * d, f"<{d} nested lists>"), st.integers(1, 3000)),
    st.builds(lambda n: Raw("9" * n, f"<an integer of {n} digits>"), st.integers(4000, 6000)),
    st.sampled_from([Raw("NaN", "NaN"), Raw("-Infinity", "-Infinity"), Raw("1e999", "1e999")]),
)


def examples(n: int):
    """``n`` examples under the "ci" profile; ten times as many when exploring (HYPOTHESIS_PROFILE=explore)."""
    return settings(max_examples=n * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1))


def named_or(fn, *args, **kwargs):
    """``fn(*args)``'s value, or None when it raised a WinnowError; anything else propagates (a failure)."""
    try:
        return fn(*args, **kwargs)
    except WinnowError as exc:
        assert str(exc), "a named error has a message"
        return None


# ------------------------------------------------------------------------------------------ layer files
GOOD_WNL = (TRAINED / "00_0.wnl").read_bytes()
GOOD_BYTES = encode_layer(decode_layer(GOOD_WNL))
HEADER, BODY = layer_parts(GOOD_WNL)


@given(pos=st.integers(0, len(GOOD_WNL) - 1), bit=st.integers(0, 7))
@examples(150)
def test_layer_file_bit_flips(pos, bit):
    data = bytearray(GOOD_WNL)
    data[pos] ^= 1 << bit
    back = named_or(decode_layer, bytes(data))
    assert back is None or encode_layer(back) == GOOD_BYTES  # e.g. 1e-05 → 1E-05 in the header: the same file


@given(cut=st.integers(0, len(GOOD_WNL) - 1), tail=st.binary(max_size=8))
def test_layer_file_truncations_and_appendages(cut, tail):
    assert named_or(decode_layer, GOOD_WNL[:cut]) is None
    if tail:
        assert named_or(decode_layer, GOOD_WNL + tail) is None


@given(path=st.sampled_from([p for p in json_paths(HEADER) if p[0] != "header_sha256"]), value=HOSTILE)
@examples(200)
def test_layer_file_header_fields_with_hostile_values(path, value):
    """Every header field set to a hostile value, the checksum forged: refused by name, or read back as
    exactly the edited header says (a forger who recomputes the checksum gets what the file states)."""
    edited = set_path(HEADER, path, value)
    back = named_or(decode_layer, layer_bytes(edited, BODY, seal=True))
    if back is not None:
        again = layer_parts(encode_layer(back))[0]
        assert {k: v for k, v in again.items() if k != "header_sha256"} == \
               {k: v for k, v in plain(edited).items() if k != "header_sha256"}


@given(junk=st.binary(max_size=64), hlen=st.integers(0, 2**32 - 1))
def test_layer_file_random_bytes(junk, hlen):
    assert named_or(decode_layer, MAGIC + struct.pack("<I", hlen) + junk) is None


# ------------------------------------------------------------------------------------------ network manifest
MANIFEST = json.loads((TRAINED / "network.json").read_text())
CONV_FILES = [(TRAINED / op["file"]).read_bytes() for op in MANIFEST["ops"] if op["op"] == "conv"]


@pytest.fixture(scope="module")
def network_dir():
    with tempfile.TemporaryDirectory() as d:
        for f in TRAINED.iterdir():
            (Path(d) / f.name).write_bytes(f.read_bytes())
        yield Path(d)


@given(path=st.sampled_from([p for p in json_paths(MANIFEST) if p[0] != "manifest_sha256"]), value=HOSTILE,
       reseal=st.booleans())
@examples(60)
def test_network_manifest_fields_with_hostile_values(network_dir, path, value, reseal):
    doc = set_path(MANIFEST, path, value)
    if reseal:
        doc["manifest_sha256"] = forged(manifest_digest, doc)
    (network_dir / "network.json").write_text(dump(doc))
    back = named_or(read_network, network_dir)
    if back is not None:  # accepted: the exported network's layers, bit for bit
        assert [encode_layer(layer) for _, layer in back.convs] == CONV_FILES


@given(pos=st.integers(0, 3000), bit=st.integers(0, 7))
@examples(40)
def test_network_manifest_bit_flips(network_dir, pos, bit):
    data = bytearray((TRAINED / "network.json").read_bytes())
    data[pos % len(data)] ^= 1 << bit
    (network_dir / "network.json").write_bytes(bytes(data))
    back = named_or(read_network, network_dir)
    assert back is None or [encode_layer(layer) for _, layer in back.convs] == CONV_FILES


# ------------------------------------------------------------------------------------------ JSON and TOML text
@given(text=st.one_of(st.text(max_size=200), st.integers(1, 5000).map(lambda d: "[" * d + "]" * d),
                      st.integers(1, 5000).map(lambda d: '{"a":' * d + "1" + "}" * d),
                      st.integers(1, 6000).map(lambda d: "1" * d),
                      st.sampled_from(["NaN", "-Infinity", "1e999", '{"a": 1, "a": 2}'])))
def test_json_text(text):
    doc = named_or(parse_json, text)
    if doc is not None:
        assert nesting_depth(doc) <= MAX_JSON_DEPTH and json.loads(json.dumps(doc)) == doc


@given(key=st.sampled_from(TOML_KEYS), value=st.one_of(HOSTILE, st.sampled_from([float("nan"), float("inf")])))
@examples(80)
def test_toml_keys_with_hostile_values(key, value):
    cfg = named_or(parse_flow_config, toml_with(*key, value))
    assert cfg is None or isinstance(cfg, FlowConfig)


@given(pos=st.integers(0, 400), byte=st.integers(0, 255))
def test_toml_byte_changes(pos, byte):
    raw = toml_with("train", "seed", 1).encode()
    pos %= len(raw)
    text = (raw[:pos] + bytes([byte]) + raw[pos + 1:]).decode("utf-8", errors="replace")
    cfg = named_or(parse_flow_config, text)
    assert cfg is None or isinstance(cfg, FlowConfig)


# ------------------------------------------------------------------------------------------ params.json
PARAMS = AccelConfig.resolved(DatapathConfig(m=2, r=3, c_max=8), pes=2, lanes=2, k_max=8, h_max=8, w_max=8).to_dict()


@given(path=st.sampled_from(json_paths(PARAMS)), value=HOSTILE)
@examples(150)
def test_params_json_fields_with_hostile_values(path, value):
    doc = set_path(PARAMS, path, value)
    try:
        cfg = AccelConfig.from_dict(doc)
    except ConfigError:
        return
    assert cfg.to_dict() in (doc, PARAMS)  # exactly what it states (or a field that may be left out: serial)


@given(data=st.binary(max_size=300))
def test_params_json_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.getbasetemp() / "params.json"
    p.write_bytes(data)
    assert named_or(AccelConfig.read_params, p) is None


# ------------------------------------------------------------------------------------------ flow state, reports
@given(doc=st.one_of(HOSTILE, st.fixed_dictionaries({"schema": st.just("winnow-flow/1"),
                                                      "steps": st.dictionaries(st.text(max_size=4), HOSTILE,
                                                                               max_size=3)})))
@examples(60)
def test_flow_state(tmp_path_factory, doc):
    root = tmp_path_factory.mktemp("flow")
    (root / "flow.json").write_text(dump(doc))
    flow = Flow(root, [Step("one", "one", lambda ctx: {})], progress=lambda line: None)
    state = named_or(flow._state)
    assert state is None or isinstance(state["steps"], dict)


BOARD = {"board": "ulx3s", "device": "LFE5U-85F", "fmax_mhz": 61.2,
         "resources": {"LUT": {"used": 100, "available": 1000}, "DSP": {"used": 16, "available": 156}}}


@given(path=st.sampled_from(json_paths(BOARD)), value=HOSTILE)
def test_board_reports(path, value):
    doc = named_or(check_board_report, set_path(BOARD, path, value), "report.json")
    if doc is not None:  # accepted: the report renders its figures from it
        assert all(u >= 0 for u in _utilization(doc).values())


SIM_REPORT = {"step": "sim", "simulator": "verilator", "image": 0, "label": 3, "all_bit_exact": True,
              "layers": [{"name": "0", "outputs": 64, "bit_exact": True, "rtl_cycles": 10, "model_cycles": 10}]}


@given(path=st.sampled_from(json_paths(SIM_REPORT)), value=HOSTILE)
@examples(40)
def test_step_reports_with_hostile_values(tmp_path_factory, path, value):
    root = tmp_path_factory.mktemp("run")
    (root / "sim").mkdir()
    (root / "sim" / "report.json").write_text(dump(set_path(SIM_REPORT, path, value)))
    rep = named_or(write_report, root, root / "report")
    assert rep is None or (root / "report" / "summary.md").is_file()


# ------------------------------------------------------------------------------------------ host link
INFO = P.LinkInfo(version=P.VERSION, load_bits=66, bank_bits=2, addr_bits=6, data_bits=8, config_id=7)


@given(prefix=st.booleans(), data=st.binary(max_size=80), chunk=st.integers(1, 16),
       command=st.sampled_from(["info", "status", "read_range", "read", "load", "start"]))
@examples(120)
def test_host_link_responses(prefix, data, chunk, command):
    """Any bytes a board (or a line fault) may send are a named HostLinkError or DataError, or a decoded answer."""
    stream = (bytes([P.INFO]) + INFO.to_bytes() if prefix else b"") + data
    drv = HostDriver(_Stream(stream, chunk), timeout=0.01)
    calls = {"info": lambda: drv.info(), "status": lambda: drv.status(),
             "read_range": lambda: drv.read_range(1, 2, 3), "read": lambda: drv.read([(0, 1), (3, 63)]),
             "load": lambda: drv.load([1, 2, 3]), "start": lambda: drv.start()}
    got = named_or(calls[command])
    if command == "read_range" and got is not None:
        assert len(got) == 3 and all(0 <= v < 256 for v in got)


# ------------------------------------------------------------------------------------------ checkpoints
@given(data=st.binary(max_size=200))
@examples(20)
def test_checkpoint_random_bytes(tmp_path_factory, data):
    from winnow.model.nn.checkpoint import read_meta

    p = tmp_path_factory.getbasetemp() / "checkpoint.pt"
    p.write_bytes(data)
    assert named_or(read_meta, p) is None


def test_every_reader_refuses_a_fifo_and_a_device_without_hanging(tmp_path):
    """The readers above, given a FIFO (reading one would wait forever) or /dev/zero (endless)."""
    from winnow.flowconfig import load_flow_config
    from winnow.model.files.export import load_network
    from winnow.model.files.json_file import read_json
    from winnow.model.files.layer_file import read_layer
    from winnow.model.nn.checkpoint import read_meta

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    net = tmp_path / "net"
    net.mkdir()
    os.mkfifo(net / "network.json")
    for reader in (read_layer, load_flow_config, AccelConfig.read_params, read_json, read_meta):
        for path in (fifo, Path("/dev/zero")):
            with pytest.raises(WinnowError, match="FIFO|device"):
                reader(path)
    with pytest.raises(WinnowError, match="FIFO"):
        load_network(net)


def test_a_file_above_its_limit_is_refused_from_its_size(tmp_path):
    """An 8 GB (sparse) file is refused before a byte of it is read."""
    from winnow.model.files.layer_file import read_layer

    big = tmp_path / "big.wnl"
    with open(big, "wb") as fh:
        fh.truncate(8 << 30)
    with pytest.raises(WinnowError, match="8,589,934,592 bytes, above the .*-byte limit of a layer file"):
        read_layer(big)
