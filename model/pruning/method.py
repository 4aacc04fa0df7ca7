"""What a pruning method is: its own options and the function that prunes (docs/pytorch.md, "Adding a pruning method").

A method is one module that defines a frozen dataclass of its options and a
``run(ctx)`` function, and one line in :mod:`winnow.model.pruning.registry` that
registers a :class:`PruningMethod` under its name. The pipeline
(:func:`winnow.model.training.experiment.prune_model`) calls ``run`` with a
:class:`winnow.model.training.experiment.PruneContext`: the experiment configuration
(``ctx.cfg``, the method's options as ``ctx.options``), the trained dense model (to be
copied, never changed), the data, and seeded training (``ctx.train``). ``run`` returns
the pruned model with Winograd layers and the :class:`winnow.model.pruning.winograd.Pruner`
whose masks hold through quantization-aware fine-tuning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class PruningMethod:
    """A registered pruning method.

    Parameters
    ----------
    config : type
        A frozen dataclass of the method's own options, every field with a default;
        its ``__post_init__`` checks them and raises
        :class:`winnow.model.errors.ConfigError` naming the option by its key.
    run : callable
        ``run(ctx) -> (model, pruner)`` (module docstring).
    description : str
        One line, with the paper it follows.
    winograd_relu : bool
        Whether it takes ``winograd_relu=True`` (methods that prune the spatial network
        first keep its structure, and refuse it).
    keeps_structure : bool
        Whether the pruned network has the default network's structure (zeros, no removed
        filters), so a checkpoint can be loaded back into
        :func:`winnow.model.training.experiment.trained_skeleton`.
    option_prefix : str or None
        The options' flat keys (TOML ``[train]`` keys, ``winnow prune`` options) are
        ``<prefix>_<field>`` (a trailing ``_`` dropped: ``lambda_`` → ``kep_lambda``);
        ``None``: the prefix is the registered name; ``""``: the bare field names.
    """

    config: type
    run: Callable
    description: str
    winograd_relu: bool = True
    keeps_structure: bool = True
    option_prefix: str | None = None

    def __post_init__(self):
        if not (dataclasses.is_dataclass(self.config) and isinstance(self.config, type)
                and self.config.__dataclass_params__.frozen):
            raise TypeError(f"a pruning method's config must be a frozen dataclass; got {self.config!r}")
        if any(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(self.config)):
            raise TypeError(f"every option of {self.config.__name__} needs a default")

    def option_keys(self, name: str) -> dict[str, str]:
        """{flat key: field name} of the options, for the method registered as ``name``."""
        prefix = name if self.option_prefix is None else self.option_prefix
        return {(f"{prefix}_" if prefix else "") + f.name.rstrip("_"): f.name for f in dataclasses.fields(self.config)}
