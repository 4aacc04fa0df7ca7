"""The array's schedule: steps over tile groups and output-channel blocks, and the phases that run them.

A layer with T output tiles runs G = ⌈T/L⌉ tile groups (tile t = g·L + l on lane l)
and B = ⌈K/k_block⌉ output-channel blocks. A *step* is one (group, block) pair, in
the order g outer, block inner::

    step s = g·B + b

Three units form a pipeline over the steps, one *phase* per step plus two to drain.
Phase t launches, in one cycle, the units that have work, and ends when all are idle:

* the input unit transforms group g(t) into V-buffer half g(t) mod 2, only when
  step t starts a new group (b = 0): the group's V' serves all of its blocks;
* the PEs run step t − 1: they walk their block-b(t−1) stream segments over the
  V' of half g(t−1) mod 2 and write accumulator half (t−1) mod 2;
* the output unit finishes step t − 2: rows of block b(t−2) from accumulator half
  (t−2) mod 2, for the tiles of group g(t−2).

The halves never collide: the input unit writes the half of group g(t) while the PEs
read the half of g(t−1) ≠ g(t) (a new group); the PEs and the output unit use
consecutive steps, hence different accumulator halves.

This module is the software twin of :class:`winnow.hw.sequencer.Sequencer` and the base of
:mod:`winnow.hw.cycle_model`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One (tile group, output-channel block) step."""

    index: int
    group: int
    block: int

    @property
    def v_half(self) -> int:
        """V-buffer half holding this step's group."""
        return self.group % 2

    @property
    def acc_half(self) -> int:
        """Accumulator half this step's PE work writes and its output work reads."""
        return self.index % 2


@dataclass(frozen=True)
class Phase:
    """The units launched in one phase (``None``: idle in this phase)."""

    index: int
    itu: Step | None
    pe: Step | None
    otu: Step | None


def steps(groups: int, blocks: int) -> list[Step]:
    """Every step of a layer with ``groups`` tile groups and ``blocks`` output-channel blocks."""
    return [Step(g * blocks + b, g, b) for g in range(groups) for b in range(blocks)]


def phases(groups: int, blocks: int) -> list[Phase]:
    """The G·B + 2 phases of a run (an empty layer, G = 0, has none)."""
    st = steps(groups, blocks)
    n = len(st)
    if n == 0:
        return []
    out = []
    for t in range(n + 2):
        itu = st[t] if t < n and st[t].block == 0 else None
        pe = st[t - 1] if 1 <= t <= n else None
        otu = st[t - 2] if t >= 2 else None
        out.append(Phase(t, itu, pe, otu))
    return out
