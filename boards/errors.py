"""Errors of the board builds, all :class:`winnow.model.errors.WinnowError` subclasses."""

from __future__ import annotations

from winnow.model.errors import ConfigError, WinnowError


class BoardError(WinnowError):
    """A board build that cannot run or did not succeed."""


class UnknownBoardError(BoardError, ConfigError):
    pass


class ResourceError(BoardError, ConfigError):
    """The configuration needs more of a resource than the part has."""


class ToolMissingError(BoardError):
    pass


class ToolFailedError(BoardError):
    pass
