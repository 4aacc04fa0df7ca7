"""Reading a JSON file whose problems are named errors: the path (or what it is) and why."""

from __future__ import annotations

from winnow.model.errors import WinnowError
from winnow.model.files.bounded import read_json_bounded


def read_json(path, error: type[Exception] = WinnowError, *, where=None, missing: str | None = None,
              what: str = "step report"):
    """The parsed contents of ``path``, read with a bound (:mod:`winnow.model.files.bounded`).

    A file that is not UTF-8 JSON (or nests too deeply, holds integers of thousands of
    digits, NaN or duplicate keys) raises ``error("{where}: not valid JSON (…)")``; a
    missing file ``error("{where}: {missing}")`` (default "no such {what}"); a directory,
    FIFO, device or a file above the size limit of a ``what`` is refused before it is read;
    one that cannot be read (no permission) ``error("{where}: cannot read it (…)")``.
    ``where`` defaults to the path.
    """
    return read_json_bounded(path, error, what=what, where=where, missing=missing)
