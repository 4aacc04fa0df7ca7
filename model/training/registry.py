"""One small name → entry registry, shared by every "choose by name" part of the model side.

The pipeline looks pruning methods (:data:`winnow.model.pruning.registry.METHODS`) and
data sets (:data:`winnow.model.data.datasets.DATASETS`) up by name through it, so the
command line, the flow's TOML validation and the benchmarks list and check names in one
place, and adding an entry is one ``register`` call. The class is generic on purpose:
it is also the seam for *model frontends* (ways to obtain the network to prune other
than :func:`winnow.model.data.nets.model_for`; not implemented yet): a frontend registry
would be ``Registry("model frontend")`` with the same lookup and error messages.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from winnow.model.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, each with a one-line description, in registration order.

    Parameters
    ----------
    kind : str
        What an entry is ("pruning method", "data set"): names it in error messages.
    error : type
        The :class:`winnow.model.errors.WinnowError` subclass raised for an unknown name.
    """

    def __init__(self, kind: str, error: type = ConfigError):
        self.kind, self.error = kind, error
        self._entries: dict[str, tuple[T, str]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T, description: str | None = None) -> T:
        """Add ``entry`` under ``name`` (its ``description`` attribute if no description is given).

        Raises ``ConfigError`` if the name is taken or not an identifier (names become
        command-line values and TOML keys).
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"a {self.kind} name must be an identifier (letters, digits, _); got {name!r}")
        if name in self._entries or name in self._aliases:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = (entry, description if description is not None else getattr(entry, "description", ""))
        return entry

    def alias(self, name: str, target: str) -> None:
        """Accept ``name`` as another spelling of the registered ``target`` (an old name kept for the
        configuration files and checkpoints that use it); :meth:`canonical` maps it back.

        Aliases are found by :meth:`get` and ``in`` but are not listed by :meth:`names`,
        :meth:`items` or iteration.
        """
        self.get(target)
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"a {self.kind} name must be an identifier (letters, digits, _); got {name!r}")
        if name in self._entries or name in self._aliases:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._aliases[name] = target

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` (itself, or the target of an alias); unknown names raise ``error``."""
        name = self._aliases.get(name, name)
        self.get(name)
        return name

    def aliases(self) -> dict[str, str]:
        """{alias: registered name}."""
        return dict(self._aliases)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a temporary entry)."""
        self.get(name)
        del self._entries[name]
        self._aliases = {a: t for a, t in self._aliases.items() if t != name}

    def get(self, name: str) -> T:
        """The entry of ``name`` (or of the name it is an alias of); an unknown name raises ``error`` listing
        the known ones."""
        name = self._aliases.get(name, name) if isinstance(name, str) else name
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}")
        return self._entries[name][0]

    def description(self, name: str) -> str:
        return self._entries[self.canonical(name)][1]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, entry) for name, (entry, _) in self._entries.items()]

    def __contains__(self, name) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
