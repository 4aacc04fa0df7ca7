"""Exact cycles of the streaming array (:mod:`winnow.hw.stream_array`) on an unthrottled ``AxiRam``.

The controller's phases follow one another (no overlap between passes or phases), so a
run's cycles are a sum over its passes. Cycle 0 is the cycle ``start`` is high. For pass
i starting at cycle t (t = 0 for the first; the previous pass's ``NEXT`` cycle after):

* ``DESC``: the descriptor read is accepted at a = t + 1; its last word arrives at
  e = a + R(desc) (R: :func:`winnow.hw.memory_timing.read_timing` of the one command,
  from its acceptance: n + 3 for n words in one burst);
* ``CHECK`` at e + 1; the load words' read is accepted at e + 2 and its last word
  (written into the load port in the same cycle) arrives at f = e + 2 + R(loads);
* ``X``: the first row's read is accepted at f + 1, its first word arrives R₀ cycles
  later (4), enters the row FIFO and is readable the cycle after; from then on the
  unpacker writes one pixel per cycle, C_b·rows·cols pixels, never starved (the FIFO
  holds later rows before their turn: the unthrottled memory delivers a word per cycle,
  the unpacker uses at most one per cycle, and a row is requested as soon as its words fit);
* ``RUN``: the array starts at s = f + 1 + R₀ + 1 + pixels and its ``done`` is seen at
  s + N + 1 (N: the array's cycles, :func:`winnow.hw.cycle_model.packed_cycles`);
* ``OUT`` (finishing passes) from o = s + N + 2: pixel p is read at o + p, word w is
  complete at o + nb·(w + 1) (the last at o + pixels), and write command c (``out_chunk``
  words) is accepted at max(its last word's cycle, the previous command's ``done``) + 1;
  its ``done`` comes :func:`~winnow.hw.memory_timing.write_timing` cycles later (n + 5);
* ``NEXT`` at u = the last ``done`` + 1 (or s + N + 2 without outputs); the next pass's
  t is u.

After the last pass ``done`` is seen at u + 2 and the ``cycles`` port reads u + 1.
With a throttled memory (pauses) the run only takes longer; the array's own cycles
(``compute_cycles``) stay exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from winnow.hw.cycle_model import packed_cycles
from winnow.hw.memory_image import LayerImage
from winnow.hw.memory_timing import read_timing, write_timing
from winnow.hw.stream_abi import MAX_LOADS, desc_words


@dataclass(frozen=True)
class StreamCycles:
    """A streaming run's cycles: the total (the ``cycles`` port) and where they went."""

    cycles: int
    compute: int  #: the array's own cycles (RUN), summed over the passes
    desc: int
    loads: int
    window: int
    output: int
    control: int  #: the controller's own cycles between phases
    passes: int
    bytes_read: int
    bytes_written: int

    @property
    def memory(self) -> int:
        """Cycles spent moving data (descriptors, load words, windows, outputs)."""
        return self.desc + self.loads + self.window + self.output

    def to_dict(self) -> dict:
        return {**asdict(self), "memory": self.memory}


def _kw(image: LayerImage) -> dict:
    s = image.stream
    return dict(data_bits=s.data_bits, max_burst=s.max_burst, max_outstanding=s.max_outstanding,
                addr_bits=s.addr_bits, max_beats=MAX_LOADS)


def _read(image: LayerImage, addr: int, words: int) -> tuple[int, int]:
    """(first word's cycle, last word's cycle) of one read command, from its acceptance."""
    t = read_timing([(addr, words)], **_kw(image))
    return t.beats[0], t.done[0]


def _write(image: LayerImage, addr: int, words: int) -> int:
    """The ``done`` cycle of one write command, from its acceptance."""
    return write_timing([(addr, words)], **_kw(image)).done[0]


def stream_cycles(image: LayerImage, array_cycles=None) -> StreamCycles:
    """The exact cycles of running ``image`` on the streaming array (module docstring).

    ``array_cycles``: the array's cycles per pass (default: the cycle model's).
    """
    cfg, s = image.config, image.stream
    nb = s.word_bytes
    D = desc_words(cfg, s)
    m2 = cfg.m * cfg.m
    if array_cycles is None:
        array_cycles = [packed_cycles(r.packed).cycles for r in image.runs]
    t = 0
    tot = dict(desc=0, loads=0, window=0, output=0, compute=0)
    read_bytes = written = 0
    for i, (d, N, slot) in enumerate(zip(image.descriptors, array_cycles, image.out_slots)):
        _, rd = _read(image, image.desc_addr + i * D * nb, D)
        e = t + 1 + rd
        _, rl = _read(image, d["loads_addr"], d["loads"])
        f = e + 2 + rl
        b0, _ = _read(image, d["x_addr"], d["x_beats"])
        pixels = d["x_c"] * d["x_rows"] * d["x_cols"]
        s_run = f + 1 + b0 + 1 + pixels
        u = s_run + N + 2
        tot["desc"] += rd
        tot["loads"] += rl
        tot["window"] += b0 + 1 + pixels
        tot["compute"] += N
        read_bytes += (D + d["loads"] + d["x_c"] * d["x_rows"] * d["x_beats"]) * nb
        if slot is not None:
            addr, words = slot
            o = u
            npx = d["out_k"] * d["out_tiles"] * m2
            done = None
            for c0 in range(0, words, s.out_chunk):
                n = min(s.out_chunk, words - c0)
                last_word = c0 + n - 1
                ready = o + (npx if last_word == words - 1 else nb * (last_word + 1))
                issue = max(ready, done if done is not None else ready) + 1
                done = issue + _write(image, addr + c0 * nb, n)
            tot["output"] += done + 1 - o
            written += words * nb
            u = done + 1
        t = u
    cycles = t + 1
    return StreamCycles(cycles=cycles, compute=tot["compute"], desc=tot["desc"], loads=tot["loads"],
                        window=tot["window"], output=tot["output"],
                        control=cycles - sum(tot.values()), passes=image.passes,
                        bytes_read=read_bytes, bytes_written=written)
