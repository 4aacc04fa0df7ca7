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


class ModelImportError(WinnowError, ValueError):
    """A model that ``winnow import`` cannot bring in: names the file, the node or module, and the rule."""


class ModelParseError(ModelImportError):
    """The model file does not parse (not ONNX, a Python file that fails to import, a factory that fails)."""


class UnsupportedOperationError(ModelImportError):
    """An operation Winnow cannot run: names the node, its op type and the nearest supported alternative."""


class DynamicShapeError(ModelImportError):
    """A shape that is only known at run time (a symbolic dimension, a shape computed in the graph)."""


class CheckpointMismatchError(ModelImportError):
    """A checkpoint whose parameters do not match the factory's model: names the first differences."""


class InputShapeError(ModelImportError):
    """An input shape the model cannot take (wrong channels, too small, the model's own shape differs)."""
