"""The timing model of the AXI4 master engines (hw/memory_timing.py) on its own: its stated formulas and properties.

Whether the model equals the RTL is tests/test_sim_axi_master.py's question; here:
* unthrottled, a command of n words ends in cycle n + 3 (read) / n + 5 (write) whenever
  every D − 1 consecutive bursts carry ≥ 2 (read) / ≥ 3 (write) beats, and later otherwise;
* an R throttle of one cycle in k delivers a single burst's words k cycles apart from the
  first unpaused cycle ≥ 4;
* pauses never make a command finish earlier, and a command never finishes before its
  predecessor (any patterns, any command lists); a channel paused in every cycle is refused.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from winnow.hw.axi_master import split_bursts
from winnow.hw.memory_timing import RamTiming, read_timing, write_timing
from winnow.model.errors import DataError


def _streams(beats, outstanding: int, need: int) -> bool:
    """Bursts j − D + 1 … j − 1 carry at least ``need`` beats, for every burst j ≥ D (D = ``outstanding``)."""
    return all(sum(beats[j - outstanding + 1:j]) >= need for j in range(outstanding, len(beats)))


@pytest.mark.parametrize("outstanding, max_burst", [(1, 16), (2, 1), (2, 2), (2, 4), (3, 1), (3, 2), (4, 1), (4, 16)])
def test_unthrottled_commands_end_at_n_plus_3_or_5_when_the_slots_keep_up(outstanding, max_burst):
    for addr in (0x10000, 0x11000 - 8, 0x11000 - 40):
        for n in (1, 2, 3, 5, 16, 17, 100, 513, 600):
            beats = [b for _a, b in split_bursts(addr, n, 64, max_burst)]
            kw = dict(data_bits=64, max_burst=max_burst, max_outstanding=outstanding)
            read, write = read_timing([(addr, n)], **kw).done[0], write_timing([(addr, n)], **kw).done[0]
            assert read == n + 3 if _streams(beats, outstanding, 2) else read > n + 3, (addr, n)
            assert write == n + 5 if _streams(beats, outstanding, 3) else write > n + 5, (addr, n)


@pytest.mark.parametrize("k, phase", [(2, 0), (2, 1), (3, 0), (3, 2), (5, 4)])
def test_one_r_beat_in_k_cycles(k, phase):
    pattern = tuple(0 if i == phase else 1 for i in range(k))
    n = 16
    t = read_timing([(0x2000, n)], max_burst=16, ram=RamTiming(r=pattern))
    first = next(c for c in range(4, 4 + k) if c % k == phase)
    assert t.beats == [first + i * k for i in range(n)]
    assert t.done == [first + (n - 1) * k]


patterns = st.lists(st.integers(0, 1), min_size=1, max_size=6).map(tuple)
commands = st.lists(st.tuples(st.integers(0, 40).map(lambda p: p * 4096), st.integers(0, 511).map(lambda w: w * 8),
                              st.integers(1, 300)).map(lambda c: (c[0] + c[1], c[2])), min_size=1, max_size=5)


@given(cmds=commands, ar=patterns, r=patterns, aw=patterns, w=patterns, b=patterns,
       outstanding=st.integers(1, 5), max_burst=st.sampled_from([1, 3, 16, 256]))
def test_pauses_never_make_anything_earlier(cmds, ar, r, aw, w, b, outstanding, max_burst):
    if any(all(p) for p in (ar, r, aw, w, b)):
        with pytest.raises(DataError, match="never answers"):
            RamTiming(ar=ar, r=r, aw=aw, w=w, b=b)
        return
    kw = dict(data_bits=64, max_burst=max_burst, max_outstanding=outstanding)
    for timing, ram in ((read_timing, RamTiming(ar=ar, r=r)), (write_timing, RamTiming(aw=aw, w=w, b=b))):
        fast, slow = timing(cmds, **kw), timing(cmds, ram=ram, **kw)
        assert all(s >= f for s, f in zip(slow.done, fast.done))
        assert all(s >= f for s, f in zip(slow.beats, fast.beats))
        assert slow.done == sorted(slow.done) and len(set(slow.beats)) == len(slow.beats)


@pytest.mark.parametrize("timing", [read_timing, write_timing])
@pytest.mark.parametrize("cmd, rule", [((0x1000, 0), "1 … 1000 words"), ((0x1004, 2), "multiple of 8"),
                                       ((0x1000, 1001), "1 … 1000 words")])
def test_the_model_refuses_commands_the_engines_drop(timing, cmd, rule):
    with pytest.raises(DataError, match=rule):
        timing([(0x2000, 4), cmd], max_beats=1000)
