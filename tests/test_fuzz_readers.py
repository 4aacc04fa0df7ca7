"""Fuzz every reader (issue 17): random byte flips, truncations, deep nesting, huge numbers and wrong types.

Each property asserts "a named error (a WinnowError) or an exact round trip": a hostile
input may be refused, by name, or read back as exactly what was written; any other
exception (RecursionError, ValueError, KeyError, MemoryError, …) fails the test. The
examples are bounded (the "ci" profile of tests/conftest.py: derandomized, 40 examples
unless a test says fewer) so that the whole file runs in well under a minute.
"""

from __future__ import annotations

import copy
import json
import math
import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winnow.model.errors import WinnowError

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "tests" / "data" / "trained_f43"

# ------------------------------------------------------------------------------------------ hostile values
class Raw:
    """JSON text put into a document verbatim (what json.dumps cannot write: deep nesting, 5,000 digits, NaN)."""

    def __init__(self, text: str, label: str):
        self.text, self.label = text, label

    def __repr__(self) -> str:
        return self.label


#: numbers and shapes that break readers: huge and negative integers, floats at and past the edges,
#: wrong kinds, deep nesting
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



def _paths(doc, prefix=()):
    """Every path (tuple of keys/indices) into a JSON document, the document itself excepted."""
    out = []
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return out
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _set(doc, path, value):
    doc = copy.deepcopy(doc)
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return doc


def examples(n: int):
    """``n`` examples under the "ci" profile; ten times as many when exploring (HYPOTHESIS_PROFILE=explore)."""
    return settings(max_examples=n * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1))


def _plain(doc):
    """``doc`` with each :class:`Raw` replaced by what it parses to (for computing a checksum to forge); Raw
    text no reader accepts (5,000 digits, deep nesting) becomes a string: the forged checksum is moot there."""
    if isinstance(doc, Raw):
        try:
            return json.loads(doc.text, parse_constant=lambda c: c)
        except (ValueError, RecursionError):
            return doc.label
    if isinstance(doc, dict):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    return doc


def _dump(doc) -> str:
    """JSON text of ``doc``, every :class:`Raw` value spliced in as its text."""
    raws: list[Raw] = []

    def mark(v):
        if isinstance(v, Raw):
            raws.append(v)
            return f"@@RAW{len(raws) - 1}@@"
        raise TypeError(type(v).__name__)

    text = json.dumps(doc, default=mark, allow_nan=False)
    for i, r in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', r.text)
    return text


def _safe_digest(digest, doc) -> str:
    """The checksum a forger would write for ``doc`` (NaN and overlarge numbers have none: any string)."""
    try:
        return digest(_plain(doc))
    except ValueError:
        return "0" * 64


def named_or(fn, *args, **kwargs):
    """``fn(*args)``'s value, or None when it raised a WinnowError; anything else propagates (a failure)."""
    try:
        return fn(*args, **kwargs)
    except WinnowError as exc:
        assert str(exc), "a named error has a message"
        return None


# ------------------------------------------------------------------------------------------ layer files
from winnow.model.files.layer_file import MAGIC, SparseLayer, decode_layer, encode_layer, header_digest  # noqa: E402

GOOD_WNL = (TRAINED / "00_0.wnl").read_bytes()
GOOD_LAYER = decode_layer(GOOD_WNL)


def _same_layer(a: SparseLayer, b: SparseLayer) -> bool:
    return encode_layer(a) == encode_layer(b)


def _split(data: bytes):
    (hlen,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12:12 + hlen]), data[12 + hlen:]


def _seal(header: dict, body: bytes) -> bytes:
    header = {**header, "header_sha256": _safe_digest(header_digest, header)}
    head = _dump(header).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + body


@given(pos=st.integers(0, len(GOOD_WNL) - 1), bit=st.integers(0, 7))
@examples(150)
def test_layer_file_bit_flips(pos, bit):
    data = bytearray(GOOD_WNL)
    data[pos] ^= 1 << bit
    back = named_or(decode_layer, bytes(data))
    assert back is None or _same_layer(back, GOOD_LAYER)  # e.g. 1e-05 → 1E-05 in the header: the same file


@given(cut=st.integers(0, len(GOOD_WNL) - 1), tail=st.binary(max_size=8))
def test_layer_file_truncations_and_appendages(cut, tail):
    assert named_or(decode_layer, GOOD_WNL[:cut]) is None
    if tail:
        assert named_or(decode_layer, GOOD_WNL + tail) is None


_HEADER, _BODY = _split(GOOD_WNL)
_HEADER_PATHS = [p for p in _paths(_HEADER) if p[0] != "header_sha256"]


@given(path=st.sampled_from(_HEADER_PATHS), value=HOSTILE)
@examples(200)
def test_layer_file_header_fields_with_hostile_values(path, value):
    """Every header field set to a hostile value, the checksum forged: refused by name, or read back as
    exactly the edited header says (a forger who recomputes the checksum gets what the file states)."""
    edited = _set(_HEADER, path, value)
    back = named_or(decode_layer, _seal(edited, _BODY))
    if back is not None:
        drop = ("header_sha256",)
        again = _split(encode_layer(back))[0]
        assert {k: v for k, v in again.items() if k not in drop} == {k: v for k, v in edited.items() if k not in drop}


@given(junk=st.binary(max_size=64), hlen=st.integers(0, 2**32 - 1))
def test_layer_file_random_bytes(junk, hlen):
    assert named_or(decode_layer, MAGIC + struct.pack("<I", hlen) + junk) is None


# ------------------------------------------------------------------------------------------ network manifest
from winnow.model.files.export import manifest_digest, read_network  # noqa: E402

_MANIFEST = json.loads((TRAINED / "network.json").read_text())
_MANIFEST_PATHS = [p for p in _paths(_MANIFEST) if p[0] != "manifest_sha256"]


@pytest.fixture(scope="module")
def network_dir():
    with tempfile.TemporaryDirectory() as d:
        for f in TRAINED.iterdir():
            (Path(d) / f.name).write_bytes(f.read_bytes())
        yield Path(d)


def _read_manifest(d: Path, text: str):
    (d / "network.json").write_text(text)
    return named_or(read_network, d)


@given(path=st.sampled_from(_MANIFEST_PATHS), value=HOSTILE, reseal=st.booleans())
@examples(60)
def test_network_manifest_fields_with_hostile_values(network_dir, path, value, reseal):
    doc = _set(_MANIFEST, path, value)
    if reseal:
        doc["manifest_sha256"] = _safe_digest(manifest_digest, doc)
    back = _read_manifest(network_dir, _dump(doc))
    if back is not None:  # accepted: it must be the exported network, bit for bit
        assert [encode_layer(layer) for _, layer in back.convs] == \
               [(TRAINED / op["file"]).read_bytes() for op in _MANIFEST["ops"] if op["op"] == "conv"]


@given(pos=st.integers(0, 3000), bit=st.integers(0, 7))
@examples(40)
def test_network_manifest_bit_flips(network_dir, pos, bit):
    data = bytearray((TRAINED / "network.json").read_bytes())
    data[pos % len(data)] ^= 1 << bit
    (network_dir / "network.json").write_bytes(bytes(data))
    back = named_or(read_network, network_dir)
    assert back is None or len(back.convs) == 4


# ------------------------------------------------------------------------------------------ JSON and TOML text
from winnow.model.files.bounded import MAX_JSON_DEPTH, nesting_depth, parse_json  # noqa: E402


@given(text=st.one_of(st.text(max_size=200), st.integers(1, 5000).map(lambda d: "[" * d + "]" * d),
                      st.integers(1, 5000).map(lambda d: '{"a":' * d + "1" + "}" * d),
                      st.integers(1, 6000).map(lambda d: "1" * d), st.sampled_from(["NaN", "-Infinity", "1e999",
                                                                                      '{"a": 1, "a": 2}'])))
def test_json_text(text):
    doc = named_or(parse_json, text)
    if doc is not None:
        assert nesting_depth(doc) <= MAX_JSON_DEPTH and json.loads(json.dumps(doc)) == doc


from winnow.flowconfig import FlowConfig, parse_flow_config  # noqa: E402

_TOML = """[train]
dataset = "digits"
m = 2
density = 0.3
dense_epochs = 1
sweep = [0.6]

[array]
pes = 2
lanes = 2
k_max = 32
h_max = 8
w_max = 8

[sim]
layers = [0, 1]
image = 3
"""


def _toml_value(v) -> str:
    if isinstance(v, Raw):
        return {"NaN": "nan", "-Infinity": "-inf", "1e999": "1e999"}.get(v.text, v.text)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if v != v else
                                                                             ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '""'  # None: TOML has no null


_TOML_KEYS = [(sec, line.split(" = ")[0]) for sec, body in
              ((s.split("]")[0], s.split("]\n", 1)[1]) for s in _TOML.split("[")[1:]) for line in body.splitlines()
              if " = " in line] + [("train", "seed"), ("train", "iterative_steps"), ("train", "kep_lambda"),
                                   ("train", "lr"), ("array", "stream_depth"), ("sim", "waves")]


@given(key=st.sampled_from(_TOML_KEYS), value=st.one_of(HOSTILE, st.sampled_from([float("nan"), float("inf")])))
@examples(80)
def test_toml_keys_with_hostile_values(key, value):
    sec, k = key
    lines = _TOML.replace(f"\n{k} = ", f"\n{k}_was = ") if f"[{sec}]" in _TOML else _TOML
    text = lines.replace(f"[{sec}]\n", f"[{sec}]\n{k} = {_toml_value(value)}\n", 1)
    text = "\n".join(ln for ln in text.splitlines() if "_was = " not in ln) + "\n"
    cfg = named_or(parse_flow_config, text)
    assert cfg is None or isinstance(cfg, FlowConfig)


@given(pos=st.integers(0, len(_TOML) - 1), byte=st.integers(0, 255))
def test_toml_byte_changes(pos, byte):
    text = (_TOML.encode()[:pos] + bytes([byte]) + _TOML.encode()[pos + 1:]).decode("utf-8", errors="replace")
    cfg = named_or(parse_flow_config, text)
    assert cfg is None or isinstance(cfg, FlowConfig)


# ------------------------------------------------------------------------------------------ params.json
from winnow.hw.config import AccelConfig  # noqa: E402
from winnow.model.integer.datapath import DatapathConfig  # noqa: E402

_PARAMS = AccelConfig.resolved(DatapathConfig(m=2, r=3, c_max=8), pes=2, lanes=2, k_max=8, h_max=8, w_max=8).to_dict()
_PARAMS_PATHS = _paths(_PARAMS)


@given(path=st.sampled_from(_PARAMS_PATHS), value=HOSTILE)
@examples(150)
def test_params_json_fields_with_hostile_values(path, value):
    from winnow.model.errors import ConfigError

    try:
        cfg = AccelConfig.from_dict(_set(_PARAMS, path, value))
    except ConfigError:
        return
    assert cfg.to_dict() == _set(_PARAMS, path, value) or cfg.to_dict() == _PARAMS


@given(data=st.binary(max_size=300))
def test_params_json_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.getbasetemp() / "params.json"
    p.write_bytes(data)
    assert named_or(AccelConfig.read_params, p) is None


# ------------------------------------------------------------------------------------------ flow state, reports
from winnow.flow import Flow, Step  # noqa: E402
from winnow.report import check_board_report, write_report, _utilization  # noqa: E402


@given(doc=st.one_of(HOSTILE, st.fixed_dictionaries({"schema": st.just("winnow-flow/1"),
                                                      "steps": st.dictionaries(st.text(max_size=4), HOSTILE,
                                                                               max_size=3)})))
@examples(60)
def test_flow_state(tmp_path_factory, doc):
    root = tmp_path_factory.mktemp("flow")
    (root / "flow.json").write_text(_dump(doc))
    flow = Flow(root, [Step("one", "one", lambda ctx: {})], progress=lambda line: None)
    state = named_or(flow._state)
    assert state is None or isinstance(state["steps"], dict)


_BOARD = {"board": "ulx3s", "device": "LFE5U-85F", "fmax_mhz": 61.2,
          "resources": {"LUT": {"used": 100, "available": 1000}, "DSP": {"used": 16, "available": 156}}}


@given(path=st.sampled_from(_paths(_BOARD)), value=HOSTILE)
def test_board_reports(path, value):
    doc = named_or(check_board_report, _set(_BOARD, path, value), "report.json")
    if doc is not None:  # accepted: the report renders its figures from it
        assert all(math.isfinite(u) and u >= 0 for u in _utilization(doc).values())


def _fake_run(root: Path) -> dict:
    """Minimal step reports of a run (the keys write_report renders), written into ``root``."""
    reps = {
        "gen": {"step": "gen", "tile": "F(2,3)", "memory_bits": 1000, "verilog": "winnow_array.v",
                "axis_wrapper": "winnow_array_axis.v",
                "array": {"pes": 2, "lanes": 2, "multipliers": 4, "clusters": 1, "otu_lanes": 2, "k_block": 8,
                          "c_max": 8, "k_max": 8, "h_max": 8, "w_max": 8}},
        "sim": {"step": "sim", "simulator": "verilator", "image": 0, "label": 3, "all_bit_exact": True,
                "layers": [{"name": "0", "outputs": 64, "bit_exact": True, "rtl_cycles": 10, "model_cycles": 10}]},
    }
    for name, rep in reps.items():
        (root / name).mkdir(exist_ok=True)
        (root / name / "report.json").write_text(json.dumps(rep))
    return reps


@given(step=st.sampled_from(["gen", "sim"]), data=st.data())
@examples(40)
def test_step_reports_with_hostile_values(tmp_path_factory, step, data):
    root = tmp_path_factory.mktemp("run")
    reps = _fake_run(root)
    path = data.draw(st.sampled_from(_paths(reps[step])))
    value = data.draw(HOSTILE)
    (root / step / "report.json").write_text(_dump(_set(reps[step], path, value)))
    rep = named_or(write_report, root, root / "report")
    assert rep is None or (root / "report" / "summary.md").is_file()


# ------------------------------------------------------------------------------------------ host link
from winnow.boards import protocol as P  # noqa: E402
from winnow.boards.host import HostDriver  # noqa: E402


class _Stream:
    """A transport that answers whatever bytes it was given, in chunks; time passes only when it is silent."""

    byte_time = 0.0

    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk, self.clock = bytearray(data), max(1, chunk), 0.0

    def write(self, data):
        pass

    def read(self, n, timeout):
        if not self.data:
            self.clock += timeout
            return b""
        out = bytes(self.data[:min(n, self.chunk)])
        del self.data[:len(out)]
        return out

    def now(self):
        return self.clock


_INFO = P.LinkInfo(version=P.VERSION, load_bits=66, bank_bits=2, addr_bits=6, data_bits=8, config_id=7)


@given(prefix=st.booleans(), data=st.binary(max_size=80), chunk=st.integers(1, 16),
       command=st.sampled_from(["info", "status", "read_range", "read", "load", "start"]))
@examples(120)
def test_host_link_responses(prefix, data, chunk, command):
    """Any bytes a board (or a line fault) may send are a named HostLinkError or DataError, or a decoded answer."""
    stream = (bytes([P.INFO]) + _INFO.to_bytes() if prefix else b"") + data
    drv = HostDriver(_Stream(stream, chunk), timeout=0.01)
    calls = {"info": lambda: drv.info(), "status": lambda: drv.status(),
             "read_range": lambda: drv.read_range(1, 2, 3), "read": lambda: drv.read([(0, 1), (3, 63)]),
             "load": lambda: drv.load([1, 2, 3]), "start": lambda: drv.start()}
    got = named_or(calls[command])
    if command == "read_range" and got is not None:
        assert len(got) == 3 and all(0 <= v < 256 for v in got)


# ------------------------------------------------------------------------------------------ checkpoints, .npy
@given(data=st.binary(max_size=200))
@examples(20)
def test_checkpoint_random_bytes(tmp_path_factory, data):
    from winnow.model.nn.checkpoint import read_meta

    p = tmp_path_factory.getbasetemp() / "checkpoint.pt"
    p.write_bytes(data)
    assert named_or(read_meta, p) is None


def test_every_reader_refuses_a_fifo_and_a_device_without_hanging(tmp_path):
    """The readers above, given a FIFO (reading one would wait forever) or /dev/zero (endless)."""
    import os

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
    readers = [read_layer, load_flow_config, AccelConfig.read_params, read_json, read_meta]
    for reader in readers:
        for path in (fifo, Path("/dev/zero")):
            with pytest.raises(WinnowError, match="FIFO|device"):
                reader(path)
    with pytest.raises(WinnowError, match="FIFO"):
        load_network(net)
