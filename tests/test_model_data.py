"""Data loaders: embedded sets, the CIFAR-10 pickle format, the generated 3-D set, training reproducibility."""

import pickle

import numpy as np
import pytest
import torch

from winnow.model.data.datasets import CIFAR_FILES, cifar10, digits, load_dataset, shapes3d
from winnow.model.errors import DataError
from winnow.model.data.nets import SmallC3D, SmallVGG, model_for
from winnow.model.training.train import TrainConfig, accuracy, train


def write_cifar(tmp_path, n=6, corrupt=None):
    rng = np.random.default_rng(0)
    for f in CIFAR_FILES:
        if f == corrupt:
            (tmp_path / f).write_bytes(b"not a pickle")
            continue
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n)),
                 b"batch_label": f.encode()}
        with open(tmp_path / f, "wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_reads_the_standard_pickle_format(tmp_path):
    write_cifar(tmp_path)
    s = cifar10(tmp_path)
    assert s.x_train.shape == (30, 3, 32, 32) and s.x_test.shape == (6, 3, 32, 32)
    assert float(s.x_train.max()) <= 1.0 and s.classes == 10
    with open(tmp_path / "data_batch_1", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    # channel-major rows: the first 1024 bytes are the red plane
    assert np.allclose(s.x_train[0, 0].numpy().reshape(-1), raw[b"data"][0, :1024] / 255.0)


def test_cifar10_errors_name_the_files(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected the python-pickle batches data_batch_1"):
        cifar10(tmp_path / "nope")
    write_cifar(tmp_path)
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DataError, match="lacks test_batch"):
        cifar10(tmp_path)
    write_cifar(tmp_path, corrupt="data_batch_3")
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR-10 python-pickle batch"):
        cifar10(tmp_path)
    with pytest.raises(DataError, match="cifar10 needs directory="):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet")


def test_digits_and_shapes3d_are_seeded_and_balanced():
    a, b = digits(seed=3), digits(seed=3)
    assert torch.equal(a.y_test, b.y_test) and a.input_shape == (1, 8, 8)
    s = shapes3d(n=80, seed=1)
    assert s.input_shape == (1, 16, 16, 16)
    assert torch.bincount(s.y_train).tolist() == [16] * 4
    assert torch.equal(s.x_test, shapes3d(n=80, seed=1).x_test)
    assert not torch.equal(s.x_test, shapes3d(n=80, seed=2).x_test)


def test_default_models_and_reproducible_training():
    d = digits()
    net_a = model_for(d.name, d.input_shape, d.classes, width=8)
    assert isinstance(net_a, SmallVGG)
    assert isinstance(model_for("s", (1, 16, 16, 16), 4), SmallC3D)
    net_b = model_for(d.name, d.input_shape, d.classes, width=8)
    net_b.load_state_dict(net_a.state_dict())
    cfg = TrainConfig(epochs=6, seed=5)
    ha = train(net_a, d, cfg, progress=False)
    hb = train(net_b, d, cfg, progress=False)
    assert ha == hb
    assert accuracy(net_a, d.x_test, d.y_test) > 0.5  # it learns real digits
