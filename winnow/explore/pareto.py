"""Pareto fronts: the points no other point beats in every objective.

An objective is a key of the point's record and a sense: ``("fps", "max")``, ``("LUT", "min")``.
Point a *dominates* b when a is at least as good in every objective and better in one.
"""

from __future__ import annotations

#: The front of ``winnow explore``: throughput against LUTs, DSPs, block RAMs and the memory port it needs
#: (flip-flops follow the LUTs: ECP5 slices pair them, and no measured build was short of them).
OBJECTIVES = (("fps", "max"), ("LUT", "min"), ("DSP", "min"), ("BRAM", "min"), ("bandwidth", "min"))


def _vector(rec: dict, objectives) -> tuple:
    return tuple(rec[k] if sense == "min" else -rec[k] for k, sense in objectives)


def dominates(a: dict, b: dict, objectives=OBJECTIVES) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and strictly better in one."""
    va, vb = _vector(a, objectives), _vector(b, objectives)
    return all(x <= y for x, y in zip(va, vb)) and any(x < y for x, y in zip(va, vb))


def front(records: list[dict], objectives=OBJECTIVES) -> list[int]:
    """Indices of the non-dominated records (equal records: the first one), best throughput first."""
    vecs = [_vector(r, objectives) for r in records]
    order = sorted(range(len(records)), key=lambda i: vecs[i])  # lexicographic: a dominator sorts before
    kept: list[int] = []
    seen = set()
    for i in order:
        v = vecs[i]
        if v in seen:
            continue
        if not any(all(x <= y for x, y in zip(vecs[j], v)) for j in kept):
            kept.append(i)
            seen.add(v)
    return kept
