"""The AXI4 master engines' Verilog under cocotb with cocotbext-axi's ``AxiRam`` on ``m_axi``.

* timing: for command lists of 1 … 600 beats, at, near and across 4 KiB boundaries, bursts of
  one beat, back-to-back commands, unthrottled and with deterministic pauses on R, B, W, AR
  and AW, every command's completion cycle, every address handshake and every data beat
  equal :mod:`winnow.hw.memory_timing` (Verilator, two engine shapes; Icarus);
* in every run: the data read equal the RAM's contents and the RAM's contents the data
  written, bit for bit; every observed ARLEN/AWLEN obeys the burst rules; at most
  ``max_outstanding`` bursts unfinished, and more than one at a time;
* random pauses on every RAM channel and on the consumer / producer: data still exact,
  every completion no earlier than the unthrottled model;
* SLVERR / DECERR from an address range, for reads and writes: ``error``, the response and
  the failing burst's address, every command still completes;
* a memory that never answers (R, AR, B, W, AW): ``timeout`` with the address;
* bad commands reaching the engine: ``bad_cmd`` with the address, no burst, the next command fine.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from winnow.hw.memory_timing import RamTiming, read_timing, write_timing
from winnow.sim.axi_run import burst_violations, run_axi
from winnow.sim.cocotb_run import simulator_available

BUILD = Path(__file__).resolve().parents[1] / "build" / "sim"
#: The main shape: 64-bit words (512 a page), bursts ≤ 16, 4 outstanding, commands ≤ 1000 words.
MAIN = dict(data_bits=64, max_burst=16, max_beats=1000, max_outstanding=4, timeout=64)
#: A second shape: 32-bit words (1024 a page), AXI's longest bursts, 2 outstanding.
WIDE = dict(data_bits=32, max_burst=256, max_beats=1000, max_outstanding=2, timeout=64)
#: Deterministic throttles (1 = paused that cycle, cycled from cycle 0), per channel.
THROTTLES = {"none": {}, "r1in3": {"r": (0, 1, 1)}, "r1in2": {"r": (1, 0)}, "b1in2": {"b": (0, 1)},
             "w2in3": {"w": (0, 0, 1)}, "ar1in2": {"ar": (0, 1)}, "aw1in3": {"aw": (1, 0, 1)},
             "w_b": {"w": (1, 0), "b": (1, 1, 0)}}
SHARES_BUILD = pytest.mark.xdist_group("axi_master_sim")


def _skip_without(simulator: str):
    reason = simulator_available(simulator)
    if reason:
        pytest.skip(reason)


# ---------------------------------------------------------------------------- command lists
def _lists(nb: int, seed: int) -> dict[str, list[tuple[int, int]]]:
    """Named command lists; the commands of one list never overlap (write data stays where it landed)."""
    rng = random.Random(seed)
    page = 4096
    lists = {
        "sizes": [(0x10000 + 2 * page * i, n) for i, n in enumerate([1, 2, 15, 16, 17, 100, 511, 512, 513, 600])],
        "near_4k": [(0x40000 + 2 * page * i + page - k * nb, n)
                    for i, (k, n) in enumerate([(1, 1), (1, 2), (5, 16), (5, 17), (3, 600), (16, 16), (40, 300)])],
        "ones": [(0x60000 + nb * 3 * i, 1) for i in range(24)],
        "short_mix": [(0x70000 + 2 * page * i + rng.randrange(0, page, nb), rng.choice([1, 2, 3, 5]))
                      for i in range(12)],
    }
    for r in range(3):  # random back-to-back lists
        lists[f"random{r}"] = [(0x80000 + 0x10000 * r + 2 * page * i + rng.choice([0, page - nb, rng.randrange(0, page, nb)]),
                                rng.choice([1, rng.randint(1, 40), rng.randint(1, 300)])) for i in range(rng.randint(2, 5))]
    return lists


#: Which throttles each list runs under in the main shape (the short lists: all of them).
PLAN = {"sizes": ["none", "r1in2"], "near_4k": ["none", "r1in3", "ar1in2", "b1in2", "w_b", "aw1in3"],
        "random0": ["none", "r1in3", "w2in3"], "random1": ["none", "r1in2", "b1in2"],
        "random2": ["none", "ar1in2", "aw1in3"]}


def _case(name: str, kind: str, cmds, nb: int, seed: int, **extra) -> dict:
    rng = random.Random(seed)
    case = {"name": name, "max_cycles": 40 * sum(n for _, n in cmds) + 500, **extra}
    if kind == "read":
        case.update(reads=cmds, fill=[[a, n * nb, seed * 100 + i] for i, (a, n) in enumerate(cmds)])
    else:
        case.update(writes=cmds, wdata=[rng.getrandbits(8 * nb) for _ in range(sum(n for _, n in cmds))])
    return case


def _timing_cases(params: dict, lists: dict, throttles: dict, plan: dict | None = None) -> list[dict]:
    """A read and a write case of every list under every throttle that touches its channels.

    ``plan`` (list name → throttle names) narrows the throttles of a list: the long lists get
    a few, to keep the run short (a simulated cycle costs ~0.15 ms of cocotb and AxiRam).
    """
    nb = params["data_bits"] // 8
    channels = {"read": {"ar", "r"}, "write": {"aw", "w", "b"}}
    cases = []
    for i, (lname, cmds) in enumerate(lists.items()):
        for tname in (plan or {}).get(lname, throttles):
            pauses = throttles[tname]
            for kind, chans in channels.items():
                if pauses and not set(pauses) & chans:
                    continue  # this throttle does not touch this kind's channels
                cases.append(_case(f"{kind}-{lname}-{tname}", kind, cmds, nb, seed=i,
                                   pause={ch: {"cycle": list(p)} for ch, p in pauses.items() if ch in chans}))
    return cases


# ---------------------------------------------------------------------------- checks
def _words(case, res, params) -> list[str]:
    """Data integrity: reads against the RAM's contents, the RAM's contents against the words written."""
    problems = []
    if case.get("reads"):
        if res["rd_words"] != res["ram"]["reads"]:
            problems.append("read data differ from the RAM's contents")
        if len(res["rd_words"]) != len(case["reads"]):
            problems.append(f"{len(res['rd_words'])} of {len(case['reads'])} read commands delivered")
    if case.get("writes"):
        if [w for cmd in res["ram"]["writes"] for w in cmd] != case["wdata"]:
            problems.append("the RAM's contents differ from the words written")
    return problems


def _finish_cycles(case, res, params) -> tuple[list[int], list[int]]:
    """Observed address handshakes and finish cycles (last R beat / B) of every burst."""
    kind = "reads" if case.get("reads") else "writes"
    addr = [c for c, _a, _len in res["ar" if kind == "reads" else "aw"]]
    if kind == "writes":
        return addr, res["b_cycles"]
    ends, n = [], 0
    for _c, _a, alen in res["ar"]:
        n += alen + 1
        ends.append(res["beat_cycles"][n - 1] if n <= len(res["beat_cycles"]) else None)
    return addr, ends


def _structure(case, res, params) -> list[str]:
    """Burst rules on the observed ARLEN/AWLEN, and the outstanding limit."""
    kind = "reads" if case.get("reads") else "writes"
    bursts = [(a, alen) for _c, a, alen in res["ar" if kind == "reads" else "aw"]]
    problems = burst_violations(case[kind], bursts, params["data_bits"], params["max_burst"])
    addr, ends = _finish_cycles(case, res, params)
    d = params["max_outstanding"]
    for j in range(d, len(addr)):
        if ends[j - d] is None or not ends[j - d] < addr[j]:
            problems.append(f"burst {j} issued in cycle {addr[j]} with {d} bursts unfinished")
    return problems


def _model(case, params, ram: RamTiming | None = None):
    ram = RamTiming(**{ch: tuple(v["cycle"]) for ch, v in case.get("pause", {}).items()}) if ram is None else ram
    shape = {k: params[k] for k in ("data_bits", "max_burst", "max_outstanding")}
    if case.get("reads"):
        return read_timing(case["reads"], ram=ram, **shape)
    return write_timing(case["writes"], ram=ram, **shape)


def _timing(case, res, params) -> list[str]:
    """Model == RTL: every completion, every address handshake, every beat (and every B)."""
    m = _model(case, params)
    if case.get("reads"):
        got = {"last word": res["last_cycles"], "AR": [c for c, *_ in res["ar"]], "R beat": res["beat_cycles"]}
    else:
        got = {"done": res["done_cycles"], "AW": [c for c, *_ in res["aw"]], "W beat": res["w_cycles"],
               "B": res["b_cycles"]}
    want = dict(zip(got, (m.done, m.addr, m.beats, m.resp)))
    problems = []
    for what, g in got.items():
        w = want[what]
        if g != w:
            k = next((i for i, (x, y) in enumerate(zip(g, w)) if x != y), min(len(g), len(w)))
            problems.append(f"{what} #{k}: RTL {g[k:k + 3]}, model {w[k:k + 3]} ({len(g)} vs {len(w)} events)")
    return problems


def _report(cases, results, *checks, params) -> None:
    failures = []
    for case, res in zip(cases, results):
        assert res["name"] == case["name"]
        problems = [p for check in checks for p in check(case, res, params)]
        if problems:
            failures.append(f"{case['name']}: " + "; ".join(problems[:4]))
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------- timing: model == RTL
@SHARES_BUILD
def test_verilator_cycles_equal_the_model_main_shape():
    _skip_without("verilator")
    cases = _timing_cases(MAIN, _lists(8, seed=1), THROTTLES, PLAN)
    results = run_axi(MAIN, cases, "verilator", build_dir=BUILD / "axi_verilator_main")
    _report(cases, results, _words, _structure, _timing, params=MAIN)
    addr, ends = _finish_cycles(cases[0], results[0], MAIN)  # "sizes", unthrottled reads
    assert any(addr[j + 1] < ends[j] for j in range(len(addr) - 1)), "no address issued before the previous data"


def test_icarus_cycles_equal_the_model_wide_shape():
    """The second shape under Icarus: its build takes a second where Verilator's takes 10 … 30."""
    _skip_without("icarus")
    lists = _lists(4, seed=2)
    plan = {"sizes": ["none"], "near_4k": ["none", "r1in3", "b1in2", "w2in3"], "ones": ["none", "r1in3", "w2in3"],
            "random0": ["none", "r1in2", "w_b"]}
    cases = _timing_cases(WIDE, {k: lists[k] for k in plan}, THROTTLES, plan)
    _report(cases, run_axi(WIDE, cases, "icarus", build_dir=BUILD / "axi_icarus_wide"),
            _words, _structure, _timing, params=WIDE)


def test_icarus_cycles_equal_the_model():
    _skip_without("icarus")
    lists = _lists(8, seed=3)
    cases = _timing_cases(MAIN, {k: lists[k] for k in ("near_4k", "ones")},
                          {k: THROTTLES[k] for k in ("none", "r1in2", "w_b")})
    _report(cases, run_axi(MAIN, cases, "icarus", build_dir=BUILD / "axi_icarus_main"),
            _words, _structure, _timing, params=MAIN)


# ---------------------------------------------------------------------------- random back-pressure
@SHARES_BUILD
def test_random_back_pressure_keeps_the_data_exact_and_costs_cycles():
    _skip_without("verilator")
    lists = _lists(8, seed=4)
    cases = []
    for i, (lname, cmds) in enumerate(lists.items()):
        if lname == "sizes":
            continue  # long: its bursts are in near_4k and the random lists too
        for kind in ("read", "write"):
            pause = {ch: {"random": p, "seed": 10 * i + k}
                     for k, (ch, p) in enumerate(zip(("ar", "r", "aw", "w", "b"), (0.3, 0.5, 0.4, 0.5, 0.6)))}
            side = {"consumer": {"random": 0.4, "seed": i}} if kind == "read" else {"producer": {"random": 0.4, "seed": i}}
            cases.append(_case(f"{kind}-{lname}-random", kind, cmds, 8, seed=i, pause=pause, **side))
    results = run_axi(MAIN, cases, "verilator", build_dir=BUILD / "axi_verilator_main")

    def slower(case, res, params):
        fast = _model(case, params, RamTiming()).done
        got = res["last_cycles"] if case.get("reads") else res["done_cycles"]
        return [f"command {i} done in cycle {g}, the unthrottled model says {f}"
                for i, (g, f) in enumerate(zip(got, fast)) if g < f] + ([] if len(got) == len(fast) else
                                                                        [f"{len(got)} of {len(fast)} commands done"])

    _report(cases, results, _words, _structure, slower, params=MAIN)
    stalls = sum(r["cycles"] for r in results) - sum(_model(c, MAIN, RamTiming()).done[-1] for c in cases)
    assert stalls > 1000, "the random pauses hardly slowed anything: are they applied?"


@SHARES_BUILD
def test_data_written_reads_back_bit_for_bit():
    _skip_without("verilator")
    cmds = _lists(8, seed=5)["near_4k"]
    case = _case("write-then-read", "write", cmds, 8, seed=5, reads=cmds, reads_after_writes=True,
                 pause={"r": {"random": 0.3, "seed": 1}, "w": {"random": 0.3, "seed": 2}})
    res, = run_axi(MAIN, [case], "verilator", build_dir=BUILD / "axi_verilator_main")
    assert len(res["done_cycles"]) == len(cmds) and len(res["rd_words"]) == len(cmds)
    assert [w for cmd in res["rd_words"] for w in cmd] == case["wdata"]
    assert res["rd_words"] == res["ram"]["reads"] == res["ram"]["writes"]
    assert min(res["rd_cmd_cycles"]) > max(res["done_cycles"])  # the reads did wait for the writes


# ---------------------------------------------------------------------------- faults
def _containing(bursts, addr: int, nb: int) -> int:
    """The address of the observed burst [(cycle, addr, len)] holding byte ``addr``."""
    hits = [a for _c, a, alen in bursts if a <= addr < a + (alen + 1) * nb]
    assert len(hits) == 1, f"{len(hits)} bursts hold 0x{addr:x}"
    return hits[0]


FAULTS = [  # (kind, failing word's address, response)
    ("read", 0x3000 + 20 * 8, 2), ("read", 0x1000 + 39 * 8, 3), ("write", 0x3000 + 33 * 8, 2), ("write", 0x1000, 3)]


@SHARES_BUILD
def test_error_responses_name_the_failing_burst_and_nothing_hangs():
    _skip_without("verilator")
    cmds = [(0x1000, 40), (0x3000, 40), (0x5000, 8)]
    cases = [_case(f"{kind}-{at:x}-{resp}", kind, cmds, 8, seed=i, faults=[[at, at + 8, resp]], watch_flags=True)
             for i, (kind, at, resp) in enumerate(FAULTS)]
    results = run_axi(MAIN, cases, "verilator", build_dir=BUILD / "axi_verilator_main")
    for (kind, at, resp), case, res in zip(FAULTS, cases, results):
        side = "rd" if kind == "read" else "wr"
        other = "wr" if side == "rd" else "rd"
        flags = res["flags"]
        bursts = res["ar" if kind == "read" else "aw"]
        assert (flags[f"{side}_error"], flags[f"{side}_error_resp"]) == (1, resp), case["name"]
        assert flags[f"{side}_error_addr"] == _containing(bursts, at, 8), case["name"]
        assert not (flags[f"{side}_timeout"] or flags[f"{side}_bad_cmd"] or flags[f"{other}_error"]), case["name"]
        assert not flags[f"{side}_busy"], f"{case['name']}: still busy"
        if kind == "read":  # every command delivered; every word but the failing one is the RAM's
            assert [len(w) for w in res["rd_words"]] == [n for _, n in cmds], case["name"]
            for (a, n), got, ram in zip(cmds, res["rd_words"], res["ram"]["reads"]):
                wrong = [a + 8 * i for i in range(n) if got[i] != ram[i]]
                assert wrong in ([], [at]), f"{case['name']}: words at {[hex(x) for x in wrong]} differ"
        else:  # every command done; the RAM failed to store the failing word only
            assert len(res["done_cycles"]) == len(cmds), case["name"]
            stored = [w for cmd in res["ram"]["writes"] for w in cmd]
            where = [a + 8 * i for a, n in cmds for i in range(n)]
            wrong = [x for x, g, w in zip(where, stored, case["wdata"]) if g != w]
            assert wrong == [at], f"{case['name']}: words at {[hex(x) for x in wrong]} differ"
        assert res["flag_cycle"][f"{side}_error"] <= (res["last_cycles"] or res["done_cycles"])[-1] + 2


DEAD = [("read", "r", "after the AR handshakes, no R"), ("read", "ar", "ARREADY never high"),
        ("write", "b", "no B after the data"), ("write", "w", "WREADY never high"), ("write", "aw", "AWREADY never high")]


@SHARES_BUILD
def test_a_memory_that_never_answers_ends_in_a_timeout():
    _skip_without("verilator")
    cmds = [(0x2000 - 8 * 20, 40), (0x5000, 4)]
    cases = [_case(f"dead-{kind}-{ch}", kind, cmds, 8, seed=i, pause={ch: {"always": 1}}, max_cycles=400,
                   watch_flags=True)
             for i, (kind, ch, _) in enumerate(DEAD)]
    results = run_axi(MAIN, cases, "verilator", build_dir=BUILD / "axi_verilator_main")
    limit = MAIN["timeout"]
    for (kind, ch, what), case, res in zip(DEAD, cases, results):
        side = "rd" if kind == "read" else "wr"
        flags = res["flags"]
        assert flags[f"{side}_timeout"] == 1, f"{what}: no timeout in {res['cycles']} cycles"
        assert flags[f"{side}_error_addr"] == cmds[0][0], f"{what}: 0x{flags[f'{side}_error_addr']:x}"
        assert not (flags[f"{side}_error"] or flags[f"{side}_bad_cmd"]), what
        handshakes = [c for key in ("ar", "aw") for c, *_ in res[key]] + res["beat_cycles"] + res["w_cycles"]
        quiet_since = max(handshakes, default=0)
        assert limit < res["flag_cycle"][f"{side}_timeout"] - quiet_since <= limit + 3, what
        assert not (res["last_cycles"] or res["done_cycles"]), what
        late = [c for key in ("ar", "aw") for c, *_ in res[key] if c > res["flag_cycle"][f"{side}_timeout"]]
        assert not late, f"{what}: addresses issued after the timeout, in cycles {late}"


@SHARES_BUILD
def test_bad_commands_are_flagged_and_dropped():
    _skip_without("verilator")
    good = (0x6000, 5)
    bad = [(0x1000, 0), (0x1004, 3), (0x2000, 1001), (0x3000, 1023)]
    cases = [_case(f"bad-{kind}", kind, bad + [good], 8, seed=i, max_cycles=200) for i, kind in enumerate(("read", "write"))]
    cases[1]["wdata"] = cases[1]["wdata"][-good[1]:]  # a dropped command takes no data
    results = run_axi(MAIN, cases, "verilator", build_dir=BUILD / "axi_verilator_main")
    for case, res in zip(cases, results):
        side, key = ("rd", "ar") if case.get("reads") else ("wr", "aw")
        assert res["flags"][f"{side}_bad_cmd"] == 1 and res["flags"][f"{side}_error_addr"] == bad[0][0]
        assert [(a, alen + 1) for _c, a, alen in res[key]] == [good], "a dropped command made a burst"
        assert not res["flags"][f"{side}_busy"]
    rd, wr = results
    assert rd["rd_words"][-1] == rd["ram"]["reads"][-1] and len(rd["rd_words"]) == 1
    assert wr["ram"]["writes"][-1] == cases[1]["wdata"] and len(wr["done_cycles"]) == 1
