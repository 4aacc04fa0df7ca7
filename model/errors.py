"""Exceptions raised for bad configurations and bad data.

Both derive from ``ValueError`` so callers that only know the standard library still
catch them; the command-line entry points catch ``WinnowError`` and print its message
instead of a traceback.
"""


class WinnowError(Exception):
    """Base class of every error Winnow raises on purpose."""


class ConfigError(WinnowError, ValueError):
    """A configuration that cannot work: names the parameter and the limit."""


class DataError(WinnowError, ValueError):
    """Input data of the wrong kind, shape or range: names the argument and the rule."""
