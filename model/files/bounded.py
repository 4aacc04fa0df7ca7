"""Bounded reading: every file Winnow reads goes through :func:`read_bounded`.

A path given where a file is expected may be anything: a FIFO or a device (reading
one hangs, or never ends: ``/dev/zero``), a directory, a file of gigabytes. The reader
refuses what is not a regular file *before* reading from it (it opens without blocking
and checks the open descriptor, so a FIFO swapped in after a check is refused too),
refuses a file larger than the limit of its kind (:data:`LIMITS`) from its size, and
reads at most ``limit + 1`` bytes, so a file that grows while it is read is refused
as well. Every refusal is ``error(...)`` naming the path and the reason.

:func:`parse_json` turns the problems of JSON text into the same named errors: invalid
text, nesting deeper than :data:`MAX_JSON_DEPTH` (Python's parser would raise
``RecursionError`` beyond about a thousand levels), integers of thousands of digits
(``ValueError`` from Python's int-conversion limit), ``NaN``/``Infinity`` and numbers
too large for a float, duplicate keys (which of two values would count?).
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys

from winnow.model.errors import WinnowError

MiB = 1 << 20

#: Largest file of each kind, in bytes (documented in docs/cli.md, "What Winnow checks in the files it reads").
LIMITS = {
    "layer file": 1024 * MiB,  # a VGG-16 512×512 layer at F(6,3) and density 1 is ~170 MB
    "network manifest": 16 * MiB,
    "linear weights": 512 * MiB,
    "params.json": 4 * MiB,
    "flow state": 4 * MiB,
    "step report": 64 * MiB,
    "configuration file": 4 * MiB,
    "board report": 64 * MiB,
    "tool output": 512 * MiB,  # yosys netlists, nextpnr reports and logs
    "checkpoint": 2048 * MiB,
    "data batch": 512 * MiB,  # a CIFAR-10 python-pickle batch is ~31 MB
    "calibration file": 16 * MiB,  # the resource model's measured builds (winnow.explore.resources)
    "exploration cache": 64 * MiB,  # one evaluated or built point of winnow explore
}

#: Deepest nesting of arrays and objects accepted in a JSON (or TOML) document.
MAX_JSON_DEPTH = 64


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded(path, limit: int | None = None, error: type[Exception] = WinnowError, *, what: str = "file",
                 where=None, missing: str | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (default :data:`LIMITS` [``what``]).

    Raises ``error("{where}: …")`` for a missing file (``missing`` says what was expected,
    default "no such {what}"), a directory, FIFO, device or socket, a file above the limit,
    or one that cannot be read; ``where`` defaults to the path.
    """
    where = path if where is None else where
    limit = LIMITS[what] if limit is None else limit
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{where}: {missing or f'no such {what}'}") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, no permission on the directory
        raise error(f"{where}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{where}: cannot read it (Is a directory, not a {what})")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{where}: {_kind(st.st_mode)}, not a {what}: refusing to read it")
    if st.st_size > limit:
        raise error(f"{where}: {st.st_size:,} bytes, above the {limit:,}-byte limit of a {what}")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(f"{where}: cannot read it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)  # what was opened, not what the name pointed to a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{where}: {_kind(st.st_mode)}, not a {what}: refusing to read it")
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, min(limit + 1 - got, 8 * MiB))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise error(f"{where}: cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    if got > limit:
        raise error(f"{where}: grew beyond the {limit:,}-byte limit of a {what} while it was read")
    return b"".join(chunks)


def read_text_bounded(path, limit: int | None = None, error: type[Exception] = WinnowError, *, what: str = "file",
                      where=None, missing: str | None = None, errors: str = "strict") -> str:
    """:func:`read_bounded` decoded as UTF-8 (text that is not is ``error``, unless ``errors="replace"``)."""
    where = path if where is None else where
    data = read_bounded(path, limit, error, what=what, where=where, missing=missing)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text (byte {exc.start})") from None


def finite_float(v) -> float | None:
    """``v`` as a finite float, or None: not a number (bools are not), NaN, infinite, or too large for a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def value_error_text(exc: ValueError) -> str:
    """A parser's ValueError in a user's words (Python's int-conversion limit names a Python setting)."""
    text = str(exc)
    if "integer string conversion" in text:
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return text[:200]


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"the number {text[:40]}{'…' if len(text) > 40 else ''} is too large for a float")
    return v


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:60]!r}")
        out[k] = v
    return out


def nesting_depth(doc, limit: int = MAX_JSON_DEPTH) -> int:
    """Depth of nested lists and dicts in ``doc`` (iteratively: no recursion), stopping once past ``limit``."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            d += 1
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json(text: str | bytes, error: type[Exception] = WinnowError, where="<json>",
               max_depth: int = MAX_JSON_DEPTH):
    """JSON ``text`` parsed, or ``error("{where}: not valid JSON (…)")`` (module docstring)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                         object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not valid JSON (not UTF-8 at byte {exc.start})") from None
    except RecursionError:
        raise error(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and the int-digits limit, NaN, duplicate keys above
        raise error(f"{where}: not valid JSON ({value_error_text(exc)})") from None
    if nesting_depth(doc, max_depth) > max_depth:
        raise error(f"{where}: not valid JSON for Winnow (nested more than {max_depth} levels deep)")
    return doc


def read_json_bounded(path, error: type[Exception] = WinnowError, *, what: str = "file", where=None,
                      missing: str | None = None, limit: int | None = None):
    """The parsed JSON of the regular file ``path`` (:func:`read_bounded`, then :func:`parse_json`)."""
    where = path if where is None else where
    return parse_json(read_bounded(path, limit, error, what=what, where=where, missing=missing), error, where)


def is_file(path) -> bool:
    """Whether ``path`` names a regular file (not a directory, FIFO or device); never raises."""
    try:
        return stat.S_ISREG(os.stat(os.fspath(path)).st_mode)
    except (OSError, ValueError):
        return False


__all__ = ["LIMITS", "MAX_JSON_DEPTH", "finite_float", "is_file", "nesting_depth", "parse_json", "read_bounded",
           "read_json_bounded", "read_text_bounded", "value_error_text"]
