"""The pruning methods by name: one registry line per method (docs/pytorch.md, "Adding a pruning method").

Each entry is a :class:`winnow.model.pruning.method.PruningMethod` (its options'
dataclass, its ``run``, what it accepts); the pipeline, ``winnow prune``, the flow's
``[train]`` validation and the benchmarks find methods here and nowhere else.
"""

from __future__ import annotations

from winnow.model.pruning import filter, kep, magnitude, spatial_winograd
from winnow.model.pruning.method import PruningMethod
from winnow.model.training.registry import Registry

METHODS: Registry[PruningMethod] = Registry("pruning method")

METHODS.register("importance_magnitude", magnitude.METHOD)
METHODS.register("liu_pool", magnitude.LIU_POOL)
METHODS.register("spatial_winograd", spatial_winograd.METHOD)
METHODS.register("filter_l1", filter.L1)
METHODS.register("filter_distribution_fit", filter.DISTRIBUTION_FIT)
METHODS.register("kep", kep.METHOD)
#: The name importance_magnitude had before liu_pool existed: configuration files and checkpoints that say
#: ``method = "magnitude"`` keep working (and mean |U|·F, as they did).
METHODS.alias("magnitude", "importance_magnitude")
