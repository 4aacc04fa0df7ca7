"""Bad input anywhere in the foundation gets a WinnowError that names it (found in review)."""

import numpy as np
import pytest
import torch

from winnow.model.integer.datapath import DatapathConfig
from winnow.model.errors import ConfigError, DataError
from winnow.model.integer.reference import MaxPool, integer_conv, quantize_conv
from winnow.model.algebra.winograd_conv import winograd_conv


def layer():
    return quantize_conv(np.ones((2, 1, 3, 3)), None, 1.0, 1.0, DatapathConfig(m=2, r=3))


CASES = [
    ("integer torch tensors", lambda: winograd_conv(torch.ones(1, 1, 6, 6, dtype=torch.int64),
                                                    torch.ones(1, 1, 3, 3, dtype=torch.int64), m=2),
     DataError, "must be floating point"),
    ("mixed array kinds", lambda: winograd_conv(torch.zeros(1, 2, 5, 5), np.zeros((2, 2, 3, 3)), m=2),
     DataError, "must both be NumPy arrays or both torch tensors"),
    ("mixed dtypes", lambda: winograd_conv(torch.zeros(1, 2, 5, 5), torch.zeros(2, 2, 3, 3, dtype=torch.float64), m=2),
     DataError, "must have the same dtype"),
    ("a list", lambda: winograd_conv([[1.0]], np.zeros((2, 2, 3, 3)), m=2), DataError, "got list"),
    ("empty batch", lambda: winograd_conv(np.zeros((0, 2, 5, 5)), np.zeros((2, 2, 3, 3)), m=2), DataError, "N = 0"),
    ("no output channels", lambda: winograd_conv(np.zeros((1, 2, 5, 5)), np.zeros((0, 2, 3, 3)), m=2),
     DataError, "K = 0"),
    ("bias shape", lambda: winograd_conv(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), m=2, bias=np.zeros(3)),
     DataError, r"bias must have shape \(2,\)"),
    ("NaN bias", lambda: quantize_conv(np.ones((2, 1, 3, 3)), [np.nan, 0.0], 1.0, 1.0, DatapathConfig(m=2, r=3)),
     DataError, "bias holds NaN"),
    ("string scale", lambda: quantize_conv(np.ones((2, 1, 3, 3)), None, "1", 1.0, DatapathConfig(m=2, r=3)),
     ConfigError, "in_scale must be a number"),
    ("empty kernel", lambda: quantize_conv(np.ones((0, 1, 3, 3)), None, 1.0, 1.0, DatapathConfig(m=2, r=3)),
     DataError, "K >= 1 and C >= 1"),
    ("empty integer batch", lambda: integer_conv(np.zeros((0, 1, 6, 6), np.int64), layer()), DataError, "N = 0"),
    ("pool size", lambda: MaxPool(0), ConfigError, "pooling size must be an integer >= 1"),
    ("large 3-D tile", lambda: DatapathConfig(dims=3, m=16, r=3), ConfigError, r"grows the datapath to about \d+ bits"),
    ("points with large denominators", lambda: DatapathConfig(m=4, r=3, points=[0, 1, -1, 0.1, -0.5]),
     ConfigError, "pass '1/7' as a string"),
    ("NaN point", lambda: DatapathConfig(m=2, r=3, points=[float("nan"), 0, 1]), ConfigError, "only finite points"),
    ("bool point", lambda: DatapathConfig(m=2, r=3, points=[True, False, -1]), ConfigError, "is a bool"),
]


@pytest.mark.parametrize("what, fn, err, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named(what, fn, err, words):
    with pytest.raises(err, match=words):
        fn()


def test_user_points_work_end_to_end():
    """A user point set (with 1/3) through the float and the integer convolution."""
    pts = ["0", "1", "-1", "1/3", "-3"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    ref = winograd_conv(x, w, 1, m=2)
    y = winograd_conv(x, w, 1, m=4, points=pts)
    assert np.abs(y - ref).max() < 1e-9 * np.abs(ref).max()
    cfg = DatapathConfig(m=4, r=3, points=pts, c_max=2)
    assert [str(p) for p in cfg.alg.points] == pts
    lq = quantize_conv(w, None, 0.1, 0.1, cfg, padding=1)
    assert integer_conv(np.zeros((1, 2, 9, 9), dtype=np.int64), lq).shape == (1, 3, 9, 9)
