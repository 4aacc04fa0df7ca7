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


class ToolTimeoutError(ToolFailedError):
    """A tool ran past the build's time limit and was stopped.

    ``utilisation``: what nextpnr's log shows placed when it was a place-and-route step that
    got past placement (resource → (used, available)), else ``{}``; ``step`` the tool."""

    def __init__(self, message: str, step: str = "", utilisation: dict | None = None):
        super().__init__(message)
        self.step, self.utilisation = step, dict(utilisation or {})
