"""The Pareto front keeps exactly the points no other point dominates (constructed points)."""

import itertools
import random

from winnow.explore.pareto import dominates, front

OBJ = (("fps", "max"), ("LUT", "min"), ("DSP", "min"))


def _p(fps, lut, dsp):
    return {"fps": fps, "LUT": lut, "DSP": dsp}


def test_dominance_on_constructed_points():
    a, b = _p(100, 1000, 10), _p(90, 1000, 10)
    assert dominates(a, b, OBJ) and not dominates(b, a, OBJ)  # faster for the same resources
    assert not dominates(a, a, OBJ)  # equal: neither dominates
    c = _p(120, 2000, 10)  # faster but bigger: a trade-off
    assert not dominates(a, c, OBJ) and not dominates(c, a, OBJ)
    assert dominates(_p(100, 999, 10), a, OBJ)  # one LUT fewer is enough


def test_front_of_a_hand_made_set():
    pts = [_p(100, 1000, 10),  # 0: on the front
           _p(90, 1000, 10),   # 1: dominated by 0
           _p(120, 2000, 10),  # 2: on the front (faster, bigger)
           _p(100, 1000, 10),  # 3: equal to 0: only the first is kept
           _p(50, 500, 20),    # 4: on the front (fewest LUTs)
           _p(50, 600, 20),    # 5: dominated by 4 and by 0
           _p(10, 5000, 1)]    # 6: on the front (fewest DSPs)
    assert sorted(front(pts, OBJ)) == [0, 2, 4, 6]


def test_front_agrees_with_the_definition_on_random_points():
    rng = random.Random(7)
    pts = [_p(rng.randint(1, 30), rng.randint(1, 30), rng.randint(1, 5)) for _ in range(300)]
    kept = set(front(pts, OBJ))
    for i, p in enumerate(pts):
        beaten = any(dominates(q, p, OBJ) for q in pts)
        duplicate_of_earlier = any(pts[j] == p for j in range(i))
        assert (i in kept) == (not beaten and not duplicate_of_earlier), (i, p)
    for i, j in itertools.combinations(kept, 2):  # nothing on the front beats anything else on it
        assert not dominates(pts[i], pts[j], OBJ) and not dominates(pts[j], pts[i], OBJ)
