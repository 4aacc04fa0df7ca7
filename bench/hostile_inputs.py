"""A few hundred hostile inputs through every reader and the ``winnow`` command (issue 17).

Each input ends in one of three ways: a *named error* (a ``WinnowError``; through the
command: exit status 2 and one line ``error: …``), an *exact* acceptance (the input
was harmless and reads back as exactly what it states: a header edit whose checksum
was forged, ``1e-05`` spelt ``1E-05``), or *anything else* — another exception, a
traceback, a hang (each call has a time limit), an acceptance that is not exact. The
last count must be 0. Inputs: bit flips, truncations, hostile values (huge and negative
integers, integers of thousands of digits, NaN, deep nesting, wrong types) in every
field of a layer file (checksum intact and forged), a network manifest, params.json, a
flow configuration, a flow state, step and board reports, host-link responses,
checkpoints; FIFOs, ``/dev/zero``, directories and an 8 GB sparse file given as files;
arguments that would allocate gigabytes; a flow into a directory another flow holds.

    python -m bench.hostile_inputs [--seed 17] [--cli-limit N] [--out bench/results/hostile_inputs.json]

The counts are rendered into docs/cli.md ("What Winnow checks in what it reads").
``tests/test_fuzz_readers.py`` uses the value helpers below (hypothesis drives them there).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ROOT / "tests" / "data" / "trained_f43"
OUT = ROOT / "bench" / "results" / "hostile_inputs.json"
SCHEMA = "winnow-hostile-inputs/1"


# ---------------------------------------------------------------------------------------- hostile values
class Raw:
    """JSON text put into a document verbatim (what json.dumps cannot write: deep nesting, 5,000 digits, NaN)."""

    def __init__(self, text: str, label: str):
        self.text, self.label = text, label

    def __repr__(self) -> str:
        return self.label


def hostile_values(rng: random.Random) -> list:
    """One of each kind of value that has broken readers, and a few random ones."""
    d = rng.randint(65, 3000)
    return [0, -1, 2**31, 2**63, -(2**63) - 1, 10**300, rng.randint(-(10**30), 10**30), 1e308, -1e308, 1e-320,
            -0.0, 0.5, True, None, "", "x" * rng.randint(1, 50), [], [rng.randint(-5, 5)], {"a": 1},
            Raw("[" * d + "]" * d, f"<{d} nested lists>"), Raw("9" * 5000, "<an integer of 5000 digits>"),
            Raw("NaN", "NaN"), Raw("1e999", "1e999")]


def json_paths(doc, prefix=()) -> list[tuple]:
    """Every path (tuple of keys and indices) into a JSON document, the document itself excepted."""
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return []
    out = []
    for k, v in items:
        out.append(prefix + (k,))
        out += json_paths(v, prefix + (k,))
    return out


def set_path(doc, path, value):
    """A copy of ``doc`` with the value at ``path`` replaced."""
    doc = copy.deepcopy(doc)
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return doc


def plain(doc):
    """``doc`` with each :class:`Raw` replaced by what it parses to (to compute the checksum a forger would
    write); Raw text no reader accepts (5,000 digits, deep nesting) becomes a string: the checksum is moot there."""
    if isinstance(doc, Raw):
        try:
            return json.loads(doc.text, parse_constant=lambda c: c)
        except (ValueError, RecursionError):
            return doc.label
    if isinstance(doc, dict):
        return {k: plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [plain(v) for v in doc]
    return doc


def forged(digest, doc) -> str:
    """The checksum a forger would write for ``doc`` (NaN and overlarge numbers have none: any string)."""
    try:
        return digest(plain(doc))
    except ValueError:
        return "0" * 64


def dump(doc) -> str:
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


def toml_value(v) -> str:
    """``v`` in TOML (None, which TOML lacks, as an empty string)."""
    if isinstance(v, Raw):
        return {"NaN": "nan", "1e999": "1e999"}.get(v.text, v.text)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'


def layer_parts(data: bytes):
    """(header dict, blob bytes) of a layer file's bytes."""
    (hlen,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12:12 + hlen]), data[12 + hlen:]


def layer_bytes(header: dict, body: bytes, seal: bool) -> bytes:
    """A layer file of ``header`` and ``body``; ``seal``: with the header checksum forged."""
    from winnow.model.files.layer_file import MAGIC, header_digest

    if seal:
        header = {**header, "header_sha256": forged(header_digest, header)}
    head = dump(header).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + body


# ---------------------------------------------------------------------------------------- outcomes
class _Hang(BaseException):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def alarm(*_):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Tally:
    """Counts per reader: tried, named errors, exact acceptances, anything else (with the first few described)."""

    def __init__(self):
        self.by_reader: dict[str, dict] = {}
        self.others: list[str] = []

    def _row(self, reader: str) -> dict:
        return self.by_reader.setdefault(reader, {"tried": 0, "named_errors": 0, "accepted": 0, "other": 0})

    def add(self, reader: str, label: str, outcome: str, detail: str = "") -> None:
        row = self._row(reader)
        row["tried"] += 1
        row[{"named": "named_errors", "exact": "accepted"}.get(outcome, "other")] += 1
        if outcome not in ("named", "exact") and len(self.others) < 50:
            self.others.append(f"{reader}: {label}: {detail}"[:400])

    def call(self, reader: str, label: str, fn, check=None, limit: float = 20.0) -> None:
        """Run ``fn()``: a WinnowError is named; a value is exact if ``check(value)`` holds (default: any)."""
        from winnow.model.errors import WinnowError

        try:
            with _time_limit(limit):
                value = fn()
        except WinnowError:
            self.add(reader, label, "named")
        except _Hang:
            self.add(reader, label, "other", f"no answer within {limit} s")
        except Exception as exc:  # noqa: BLE001 - what this benchmark counts
            self.add(reader, label, "other", f"{type(exc).__name__}: {exc}")
        else:
            ok = check is None or check(value)
            self.add(reader, label, "exact" if ok else "other", "" if ok else "accepted, but not as written")

    def totals(self) -> dict:
        keys = ("tried", "named_errors", "accepted", "other")
        return {k: sum(r[k] for r in self.by_reader.values()) for k in keys}


# ---------------------------------------------------------------------------------------- the readers
def _special_files(d: Path) -> dict[str, Path]:
    """A FIFO, /dev/zero, a directory, an empty file, an 8 GB sparse file."""
    fifo = d / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    big = d / "big"
    with open(big, "wb") as fh:
        fh.truncate(8 << 30)  # sparse: no disk used
    (d / "empty").write_bytes(b"")
    (d / "dir").mkdir(exist_ok=True)
    return {"a FIFO": fifo, "/dev/zero": Path("/dev/zero"), "a directory": d / "dir", "an empty file": d / "empty",
            "an 8 GB sparse file": big}


def layer_files(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.model.files.layer_file import decode_layer, encode_layer, read_layer

    good = (TRAINED / "01_2.wnl").read_bytes()
    ref = encode_layer(decode_layer(good))
    header, body = layer_parts(good)
    path = d / "x.wnl"

    def run(label, data, exact=lambda layer: encode_layer(layer) == ref):
        path.write_bytes(data)
        t.call("layer file", label, lambda: read_layer(path), exact)

    for _ in range(n):
        pos, bit = rng.randrange(len(good)), rng.randrange(8)
        data = bytearray(good)
        data[pos] ^= 1 << bit
        run(f"bit {bit} of byte {pos} flipped", bytes(data))
    for _ in range(n // 3):
        cut = rng.randrange(len(good))
        run(f"truncated to {cut} bytes", good[:cut])
    paths = [p for p in json_paths(header) if p[0] != "header_sha256"]
    for _ in range(n):
        p, v, seal = rng.choice(paths), rng.choice(hostile_values(rng)), rng.random() < 0.7
        edited = set_path(header, p, v)

        def as_written(layer, edited=edited):
            again, _ = layer_parts(encode_layer(layer))
            return {k: x for k, x in again.items() if k != "header_sha256"} == \
                   {k: x for k, x in edited.items() if k != "header_sha256"}

        run(f"{'.'.join(map(str, p))} = {v!r:.40}{' (checksum forged)' if seal else ''}",
            layer_bytes(edited, body, seal), as_written)
    for key, edit in (("relu", lambda h: h["activation"].update(relu=False)),
                      ("winograd_relu", lambda h: h["activation"].update(winograd_relu=True)),
                      ("padding", lambda h: h["geometry"].update(padding=[0, 0])),
                      ("size", lambda h: h["geometry"].update(size=[14, 14])),
                      ("in_scale", lambda h: h["activation"].update(in_scale=0.5))):
        h = copy.deepcopy(header)
        edit(h)
        run(f"{key} edited, checksum kept (issue 17's case)", layer_bytes(h, body, seal=False))
    old = copy.deepcopy(header)
    old["format_version"] = 1
    old.pop("header_sha256")
    run("a version 1 file", layer_bytes(old, body, seal=False))
    for label, f in _special_files(d).items():
        t.call("layer file", label, lambda f=f: read_layer(f))


def manifests(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.model.files.export import load_network, manifest_digest

    net = d / "net"
    shutil.copytree(TRAINED, net)
    good = json.loads((TRAINED / "network.json").read_text())
    paths = [p for p in json_paths(good) if p[0] != "manifest_sha256"]
    for _ in range(n):
        p, v, seal = rng.choice(paths), rng.choice(hostile_values(rng)), rng.random() < 0.5
        doc = set_path(good, p, v)
        if seal:
            doc["manifest_sha256"] = forged(manifest_digest, doc)
        (net / "network.json").write_text(dump(doc))
        t.call("network manifest", f"{'.'.join(map(str, p))} = {v!r:.40}", lambda: load_network(net),
               lambda got, doc=doc: [type(op).__name__ for op in got.ops] != [] and got.act_bits == doc["act_bits"])
    text = (TRAINED / "network.json").read_bytes()
    for _ in range(n // 3):
        data = bytearray(text)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (net / "network.json").write_bytes(bytes(data))
        t.call("network manifest", "a bit flipped", lambda: load_network(net))
    (net / "network.json").write_bytes(text)
    victim = net / "03_5.wnl"
    saved = victim.read_bytes()
    for label, f in _special_files(d).items():
        _remove(victim)
        if f.is_dir():
            victim.mkdir()
        else:
            victim.symlink_to(f)
        t.call("network manifest", f"a layer file that is {label}", lambda: load_network(net))
    _remove(victim)
    victim.write_bytes(saved)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def params_files(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.hw.config import AccelConfig
    from winnow.model.integer.datapath import DatapathConfig

    good = AccelConfig.resolved(DatapathConfig(m=2, r=3, c_max=8), pes=2, lanes=2, k_max=8, h_max=8,
                                w_max=8).to_dict()
    paths = json_paths(good)
    f = d / "params.json"
    for _ in range(n):
        p, v = rng.choice(paths), rng.choice(hostile_values(rng))
        doc = set_path(good, p, v)
        f.write_text(dump(doc))
        t.call("params.json", f"{'.'.join(map(str, p))} = {v!r:.40}", lambda: AccelConfig.read_params(f),
               lambda cfg, doc=doc: cfg.to_dict() == plain(doc) or cfg.to_dict() == good)
    for label, sf in _special_files(d).items():
        t.call("params.json", label, lambda sf=sf: AccelConfig.read_params(sf))


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
TOML_KEYS = [("train", k) for k in ("dataset", "m", "density", "dense_epochs", "sweep", "seed", "iterative_steps",
                                    "kep_lambda", "lr", "batch_size", "width")] + \
            [("array", k) for k in ("pes", "lanes", "k_max", "h_max", "stream_depth", "serial")] + \
            [("sim", k) for k in ("layers", "image", "simulator")]


def toml_with(section: str, key: str, value) -> str:
    """The small flow configuration above with ``[section].key = value``."""
    lines = [ln for ln in _TOML.splitlines() if not (ln.startswith(f"{key} = "))]
    text = "\n".join(lines) + "\n"
    return text.replace(f"[{section}]\n", f"[{section}]\n{key} = {toml_value(value)}\n", 1)


def configurations(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.flowconfig import FlowConfig, load_flow_config

    f = d / "flow.toml"
    for _ in range(n):
        (sec, key), v = rng.choice(TOML_KEYS), rng.choice(hostile_values(rng) + [float("nan"), float("inf")])
        f.write_text(toml_with(sec, key, v))
        t.call("configuration (TOML)", f"[{sec}].{key} = {v!r:.40}", lambda: load_flow_config(f),
               lambda cfg: isinstance(cfg, FlowConfig))
    raw = _TOML.encode()
    for _ in range(n // 3):
        pos = rng.randrange(len(raw))
        f.write_bytes(raw[:pos] + bytes([rng.randrange(256)]) + raw[pos + 1:])
        t.call("configuration (TOML)", f"byte {pos} changed", lambda: load_flow_config(f),
               lambda cfg: isinstance(cfg, FlowConfig))
    for label, sf in _special_files(d).items():
        t.call("configuration (TOML)", label, lambda sf=sf: load_flow_config(sf))


def flow_states(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.flow import Flow, Step

    root = d / "run"
    root.mkdir(exist_ok=True)
    flow = Flow(root, [Step("one", "one", lambda ctx: {})], progress=lambda line: None)
    for _ in range(n):
        v = rng.choice(hostile_values(rng))
        doc = rng.choice([v, {"schema": "winnow-flow/1", "steps": {"one": v}}, {"schema": "winnow-flow/1", "steps": v}])
        (root / "flow.json").write_text(dump(doc))
        t.call("flow state", f"{doc!r:.60}", flow._state, lambda s: isinstance(s.get("steps"), dict))
    for label, sf in _special_files(d).items():
        (root / "flow.json").unlink(missing_ok=True)
        (root / "flow.json").symlink_to(sf)
        t.call("flow state", label, flow._state)
    (root / "flow.json").unlink()


def reports(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.model.files.json_file import read_json
    from winnow.report import check_board_report, write_report

    board = {"board": "ulx3s", "device": "LFE5U-85F", "fmax_mhz": 61.2,
             "resources": {"LUT": {"used": 100, "available": 1000}, "DSP": {"used": 16, "available": 156}}}
    f = d / "board.json"
    for _ in range(n):
        p, v = rng.choice(json_paths(board)), rng.choice(hostile_values(rng))
        f.write_text(dump(set_path(board, p, v)))
        t.call("board report", f"{'.'.join(map(str, p))} = {v!r:.40}",
               lambda: check_board_report(read_json(f, what="board report"), f))
    for label, sf in _special_files(d).items():
        t.call("board report", label, lambda sf=sf: read_json(sf, what="board report"))
    run = d / "steps"
    sim = {"step": "sim", "simulator": "verilator", "image": 0, "label": 3, "all_bit_exact": True,
           "layers": [{"name": "0", "outputs": 64, "bit_exact": True, "rtl_cycles": 10, "model_cycles": 10}]}
    (run / "sim").mkdir(parents=True, exist_ok=True)
    for _ in range(n):
        p, v = rng.choice(json_paths(sim)), rng.choice(hostile_values(rng))
        (run / "sim" / "report.json").write_text(dump(set_path(sim, p, v)))
        t.call("step report", f"sim.{'.'.join(map(str, p))} = {v!r:.40}", lambda: write_report(run, run / "report"))
    (run / "sim" / "report.json").unlink()
    (run / "sim" / "report.json").symlink_to("/dev/zero")
    t.call("step report", "/dev/zero", lambda: write_report(run, run / "report"))


class _Stream:
    """A transport answering given bytes in chunks; its clock moves only while it is silent."""

    byte_time = 0.0

    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk, self.clock = bytearray(data), chunk, 0.0

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


def host_link(t: Tally, rng: random.Random, n: int) -> None:
    from winnow.boards import protocol as P
    from winnow.boards.host import HostDriver

    info = P.LinkInfo(version=P.VERSION, load_bits=66, bank_bits=2, addr_bits=6, data_bits=8, config_id=7)
    for _ in range(n):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        if rng.random() < 0.5:
            data = bytes([P.INFO]) + info.to_bytes() + data
        drv = HostDriver(_Stream(data, rng.randint(1, 12)), timeout=0.01)
        cmd = rng.choice(["info", "status", "read_range", "load", "start"])
        calls = {"info": drv.info, "status": drv.status, "read_range": lambda: drv.read_range(1, 2, 3),
                 "load": lambda: drv.load([1, 2, 3]), "start": drv.start}
        t.call("host-link responses", f"{cmd} answered {data.hex()[:40]}", calls[cmd])


def checkpoints(t: Tally, rng: random.Random, d: Path, n: int) -> None:
    from winnow.model.data.nets import SmallVGG
    from winnow.model.nn.checkpoint import read_meta, save_checkpoint

    good = save_checkpoint(SmallVGG(1, 10, 4, 8), d / "good.pt", meta={"seed": 0}).read_bytes()
    f = d / "x.pt"
    for _ in range(n):
        cut = rng.randrange(len(good))
        f.write_bytes(good[:cut])
        t.call("checkpoint", f"truncated to {cut} bytes", lambda: read_meta(f))
    for label, sf in _special_files(d).items():
        t.call("checkpoint", label, lambda sf=sf: read_meta(sf))


# ---------------------------------------------------------------------------------------- the command
def _winnow(args, cwd: Path, timeout: float = 120.0):
    exe = Path(sys.executable).with_name("winnow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "winnow.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def command(t: Tally, rng: random.Random, d: Path, limit: int) -> None:
    """The hostile inputs of the issue through the ``winnow`` command: exit 2 and one line, nothing else."""
    from winnow.model.files.layer_file import decode_layer

    if limit <= 0:
        return

    special = _special_files(d / "cli")
    header, body = layer_parts((TRAINED / "00_0.wnl").read_bytes())
    bad_wnl = []
    for key, edit in (("relu", lambda h: h["activation"].update(relu=False)),
                      ("size", lambda h: h["geometry"].update(size=[14, 14])),
                      ("deep", lambda h: h.update(name=Raw("[" * 5000 + "]" * 5000, "deep")))):
        h = copy.deepcopy(header)
        edit(h)
        p = d / "cli" / f"{key}.wnl"
        p.write_bytes(layer_bytes(h, body, seal=False))
        bad_wnl.append(p)
    deep = d / "cli" / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    digits = d / "cli" / "digits.json"
    digits.write_text('{"schema": ' + "9" * 5000 + "}")
    cases = [["cycles", f] for f in bad_wnl + list(special.values())]
    cases += [["gen", "--params", f, "--out", d / "cli" / "g"] for f in [deep, digits, *special.values()]]
    cases += [["flow", f, "--out", d / "cli" / "f"] for label, f in [("deep", deep), *special.items()]
              if label != "an empty file"]  # an empty configuration is every default: a valid flow
    cases += [["report", TRAINED, "--board-report", f] for f in [deep, digits, special["a FIFO"], special["/dev/zero"]]]
    tomls = []
    for sec, key, v in (("train", "seed", -1), ("train", "seed", Raw("9" * 5000, "digits")),
                        ("train", "iterative_steps", 1000000000), ("train", "kep_lambda", float("nan")),
                        ("train", "lr", 1e30), ("sim", "layers", [9]),
                        ("array", "k_max", 4096), ("train", "sweep", [0.5] * 20)):
        p = d / "cli" / f"{sec}_{key}_{len(tomls)}.toml"
        text = toml_with(sec, key, v)
        if key == "k_max":  # the case: the default 4×4 array for 28×28 MNIST (an 8×8 one is small)
            text = "[array]\nk_max = 4096\n"
        if key == "kep_lambda":
            text = text.replace('dataset = "digits"', 'dataset = "digits"\nmethod = "kep"')
        p.write_text(text)
        tomls.append(p)
    cases += [["flow", p, "--out", d / "cli" / "f"] for p in tomls]
    cases += [["sim", "--random", r, "--out", d / "cli" / "s"] for r in
              ("32,32,4000,4000", "100000,1,8,8", "1,1,8,99999999999999999999", "-1,2,3,4")]
    cases += [["sim", "--random", "1,1,8,8", "--seed", "-1", "--out", d / "cli" / "s"],
              ["sim", "--random", "32,32,4000,4000", "--tiled", "--pad-max", "0", "--out", d / "cli" / "s"],
              ["gen", "--k-max", "4096", "--out", d / "cli" / "g"],
              ["cycles", TRAINED / "00_0.wnl", "--network", TRAINED],
              ["sim", "--network", TRAINED, "--layer", "9", "--out", d / "cli" / "s"]]
    locked = d / "cli" / "locked"
    locked.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from winnow.flow import FlowLock; "
                               "FlowLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)",
                               str(locked)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    holder.stdout.readline()
    (d / "cli" / "ok.toml").write_text(_TOML)
    cases.append(["flow", d / "cli" / "ok.toml", "--out", locked])
    rng.shuffle(cases)
    try:
        for args in cases[:limit]:
            label = " ".join(str(a).replace(str(d), "TMP") for a in args)[:120]
            t0 = time.time()
            try:
                r = _winnow(args, ROOT)
            except subprocess.TimeoutExpired:
                t.add("winnow command", label, "other", "no answer within 120 s")
                continue
            one_line = r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
            if r.returncode == 2 and one_line:
                t.add("winnow command", label, "named")
            else:
                t.add("winnow command", label, "other",
                      f"exit {r.returncode} after {time.time() - t0:.1f} s: {r.stderr.strip()[-200:]}")
    finally:
        holder.kill()
        holder.wait()
    decode_layer((TRAINED / "00_0.wnl").read_bytes())  # the good file itself still reads


# ---------------------------------------------------------------------------------------- main
def run(seed: int = 17, n: int = 40, cli_limit: int = 1000, progress=print) -> dict:
    """Every reader, then the command; returns the results document."""
    rng = random.Random(seed)
    t = Tally()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="winnow-hostile-") as tmp:
        d = Path(tmp)
        (d / "cli").mkdir()
        for name, step in (("layer files", lambda: layer_files(t, rng, d, n)),
                           ("network manifests", lambda: manifests(t, rng, d, n)),
                           ("params.json", lambda: params_files(t, rng, d, n)),
                           ("configurations", lambda: configurations(t, rng, d, n)),
                           ("flow states", lambda: flow_states(t, rng, d, n // 2)),
                           ("board and step reports", lambda: reports(t, rng, d, n // 2)),
                           ("host-link responses", lambda: host_link(t, rng, n)),
                           ("checkpoints", lambda: checkpoints(t, rng, d, n // 4)),
                           ("the winnow command", lambda: command(t, rng, d, cli_limit))):
            t1 = time.time()
            progress(f"[{name}] …")
            step()
            progress(f"[{name}] {time.time() - t1:.1f} s")
    return {"schema": SCHEMA, "seed": seed, **t.totals(), "by_reader": t.by_reader, "others": t.others,
            "seconds": round(time.time() - t0, 1)}


def summary(doc: dict) -> dict:
    """What docs/cli.md shows: the counts, without timings."""
    return {k: doc[k] for k in ("tried", "named_errors", "accepted", "other", "by_reader")}


DOCS = ROOT / "docs" / "cli.md"
BEGIN, END = "<!-- hostile-inputs:begin -->", "<!-- hostile-inputs:end -->"


def docs_block(doc: dict) -> str:
    """The counts as JSON text, one line per reader (what docs/cli.md holds between its markers)."""
    s = summary(doc)
    rows = [f'  {json.dumps(name)}: {json.dumps(row)}' for name, row in s["by_reader"].items()]
    head = ", ".join(f"{json.dumps(k)}: {json.dumps(s[k])}" for k in ("tried", "named_errors", "accepted", "other"))
    return "```json\n{" + head + ', "by_reader": {\n' + ",\n".join(rows) + "\n}}\n```"


def render_docs(doc: dict, path: Path = DOCS) -> None:
    """Write :func:`docs_block` of ``doc`` between the markers of docs/cli.md."""
    from winnow.model.files.atomic import atomic_write_text

    text = path.read_text(encoding="utf-8")
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    atomic_write_text(path, text[:a] + "\n" + docs_block(doc) + "\n" + text[b:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hostile_inputs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--per-reader", type=int, default=40, help="mutations per kind and reader (default 40)")
    ap.add_argument("--cli-limit", type=int, default=1000, help="most command runs (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--no-docs", action="store_true", help="do not render the counts into docs/cli.md")
    a = ap.parse_args(argv)
    doc = run(a.seed, a.per_reader, a.cli_limit)
    from winnow.model.files.atomic import atomic_write_json

    atomic_write_json(a.out, doc)
    if not a.no_docs:
        render_docs(doc)
    print(docs_block(doc))
    for line in doc["others"]:
        print("OTHER:", line)
    print(f"wrote {a.out}{'' if a.no_docs else ' and docs/cli.md'} ({doc['seconds']} s)")
    return 0 if doc["other"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
