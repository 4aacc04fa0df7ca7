"""The network an exploration sizes the array for: its convolutions' shapes and non-zeros.

Two sources:

* an **exported network** directory (``network/network.json`` and its ``.wnl`` layer
  files, read and checked by :func:`winnow.model.files.export.read_network`): the exact
  non-zeros of every row U_p[k, :] for the tile the layers were exported with;
* a **shape table** (``shapes:vgg16``, ``shapes:cifar-vgg``, ``shapes:smallvgg``, at a
  density ``@0.3``): layer shapes only, the masks uniform random as in the VGG-16 cycle
  tables of docs/hardware.md (each row U_p[k, c-block] holds Binomial(|c-block|, d)
  non-zeros, seeded by the layer, tile and C block).

For a tile other than the exported one the layer files do not say which Winograd
weights would be zero (pruning happens in one tile's domain), so the non-zeros are
drawn as for a shape table at the layer's measured density; every evaluated point
records whether its counts are ``exact`` or ``estimated``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from winnow.model.errors import ConfigError, WinnowError
from winnow.model.integer.datapath import DatapathConfig

#: VGG-16 conv layers: (name, C, K, H=W), padding 1.
VGG16 = [
    ("conv1_1", 3, 64, 224), ("conv1_2", 64, 64, 224),
    ("conv2_1", 64, 128, 112), ("conv2_2", 128, 128, 112),
    ("conv3_1", 128, 256, 56), ("conv3_2", 256, 256, 56), ("conv3_3", 256, 256, 56),
    ("conv4_1", 256, 512, 28), ("conv4_2", 512, 512, 28), ("conv4_3", 512, 512, 28),
    ("conv5_1", 512, 512, 14), ("conv5_2", 512, 512, 14), ("conv5_3", 512, 512, 14),
]  # fmt: skip
#: CIFAR-10 VGG conv layers: conv 3→64→64 | pool | 128, 128 | pool | 256 × 4 on 32×32 inputs.
CIFAR_VGG = [
    ("conv1", 3, 64, 32), ("conv2", 64, 64, 32), ("conv3", 64, 128, 16), ("conv4", 128, 128, 16),
    ("conv5", 128, 256, 8), ("conv6", 256, 256, 8), ("conv7", 256, 256, 8), ("conv8", 256, 256, 8),
]  # fmt: skip
#: SmallVGG (winnow.model.data.nets, width 16) on 28×28 MNIST: the demo's network.
SMALL_VGG = [("conv1", 1, 16, 28), ("conv2", 16, 16, 28), ("conv3", 16, 32, 14), ("conv4", 32, 32, 14)]
SHAPE_TABLES = {"vgg16": ("VGG-16", VGG16), "cifar-vgg": ("CIFAR-10 VGG", CIFAR_VGG),
                "smallvgg": ("SmallVGG", SMALL_VGG)}


@dataclass(frozen=True)
class ConvShape:
    """One convolution: C → K on an H × W input with ``padding``, F(m, r) weights at ``density``."""

    name: str
    C: int
    K: int
    size: tuple
    padding: tuple
    r: int
    density: float
    #: tile m of the layer file (None: a shape table, no file)
    m: int | None = None
    #: the file's CSR (row_ptr (P, K + 1), col_idx) when the layer came from one
    row_ptr: np.ndarray | None = field(default=None, repr=False, compare=False)
    col_idx: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "C": self.C, "K": self.K, "size": list(self.size), "padding": list(self.padding),
                "density": round(self.density, 6), "tile": None if self.m is None else f"F({self.m},{self.r})"}


@dataclass(frozen=True)
class Network:
    """The convolutions of a network and a digest of what they are (the cache key's part)."""

    name: str
    layers: tuple
    digest: str
    source: str

    def exact(self, m: int) -> bool:
        """Whether the counts for tile ``m`` are the files' own (every layer exported with F(m, r))."""
        return all(layer.m == m for layer in self.layers)

    def counts(self, index: int, m: int, c_block: int) -> np.ndarray:
        """Non-zeros of each row U_p[k, :] per C block: (positions, K, ⌈C/c_block⌉) for tile ``m``."""
        return _counts(self, index, m, c_block)

    def limits(self) -> dict:
        """The largest C, K, H, W and padding over the layers (a whole-layer array's limits)."""
        return {"c_max": max(x.C for x in self.layers), "k_max": max(x.K for x in self.layers),
                "h_max": max(x.size[0] for x in self.layers), "w_max": max(x.size[1] for x in self.layers),
                "pad_max": max(max(x.padding) for x in self.layers)}

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "digest": self.digest,
                "layers": [x.to_dict() for x in self.layers]}


def _seed(*parts) -> int:
    return zlib.crc32(json.dumps(parts).encode())


@lru_cache(maxsize=256)
def _counts(net: Network, index: int, m: int, c_block: int) -> np.ndarray:
    layer = net.layers[index]
    positions = (m + layer.r - 1) ** 2
    nb = -(-layer.C // c_block)
    if layer.m == m and layer.row_ptr is not None:  # exact: bin the stored column indices by C block
        per_row = np.diff(layer.row_ptr, axis=1).ravel()  # (P·K,)
        row = np.repeat(np.arange(per_row.size), per_row)
        blk = layer.col_idx.astype(np.int64) // c_block
        out = np.bincount(row * nb + blk, minlength=per_row.size * nb)
        return out.reshape(positions, layer.K, nb)
    rng = np.random.default_rng(_seed(net.digest, index, m, c_block))
    sizes = np.array([min(c_block, layer.C - i) for i in range(0, layer.C, c_block)])
    return rng.binomial(np.broadcast_to(sizes, (positions, layer.K, nb)), layer.density)


def from_shapes(spec: str) -> Network:
    """``shapes:NAME[@DENSITY]`` → the built-in shape table at that Winograd-domain density (default 0.3)."""
    body = spec.split(":", 1)[1]
    name, _, dens = body.partition("@")
    if name not in SHAPE_TABLES:
        raise ConfigError(f"unknown shape table {name!r}; known: {', '.join(SHAPE_TABLES)}")
    try:
        d = float(dens) if dens else 0.3
    except ValueError:
        d = float("nan")
    if not 0.0 < d <= 1.0:
        raise ConfigError(f"{spec}: the density after '@' must be in (0, 1]; got {dens!r}")
    title, table = SHAPE_TABLES[name]
    layers = tuple(ConvShape(n, C, K, (H, H), (1, 1), 3, d) for n, C, K, H in table)
    digest = hashlib.sha256(json.dumps([name, d, table]).encode()).hexdigest()
    return Network(name=f"{title} (density {d:g})", layers=layers, digest=digest, source=spec)


def from_directory(path) -> Network:
    """An exported network (a directory with ``network.json``, or a flow's output directory)."""
    from winnow.model.files.export import read_network

    path = Path(path)
    for cand in (path, path / "network", path / "export" / "network", path / "train" / "network"):
        if (cand / "network.json").is_file():
            path = cand
            break
    else:
        raise WinnowError(f"{path}: no network.json here (give an exported network directory, a flow's output "
                          f"directory, or shapes:{'|'.join(SHAPE_TABLES)})")
    files = read_network(path)  # manifest, files and checksums validated
    if not files.convs:
        raise WinnowError(f"{path}: the network has no convolution to size an array for")
    layers = []
    for name, lay in files.convs:
        dp: DatapathConfig = lay.config
        if dp.dims != 2:
            raise ConfigError(f"{path}: layer {name} is {dp.dims}-D; the PE array runs 2-D convolutions only")
        layers.append(ConvShape(name, lay.in_channels, lay.out_channels, tuple(lay.size), tuple(lay.padding), dp.r,
                                lay.density, m=dp.m, row_ptr=lay.row_ptr, col_idx=lay.col_idx))
    digest = json.loads((path / "network.json").read_text(encoding="utf-8")).get("manifest_sha256") or ""
    return Network(name=path.resolve().parent.name or str(path), layers=tuple(layers), digest=digest,
                   source=str(path))


def load_network(spec) -> Network:
    """:func:`from_shapes` for ``shapes:…``, else :func:`from_directory`."""
    if str(spec).startswith("shapes:"):
        return from_shapes(str(spec))
    return from_directory(spec)
