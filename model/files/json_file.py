"""Reading a JSON file whose problems are named errors: the path (or what it is) and why."""

from __future__ import annotations

import json
from pathlib import Path

from winnow.model.errors import WinnowError


def read_json(path, error: type[Exception] = WinnowError, *, where=None, missing: str | None = None):
    """The parsed contents of ``path``.

    A file that is not UTF-8 JSON raises ``error("{where}: not valid JSON (…)")``; a missing
    file raises ``error("{where}: {missing}")`` when ``missing`` is given (else the
    FileNotFoundError itself), one that cannot be read (a directory, no permission)
    ``error("{where}: cannot read it (…)")``. ``where`` defaults to the path.
    """
    where = path if where is None else where
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is None:
            raise
        raise error(f"{where}: {missing}") from None
    except OSError as exc:  # a directory, no permission: the path's problem, named
        raise error(f"{where}: cannot read it ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{where}: not valid JSON ({exc})") from None
