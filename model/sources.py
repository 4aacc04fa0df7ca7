"""Digests of the project's own source code, so that caches and resumable steps notice a code change."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def source_digest(*parts: str) -> str:
    """SHA-256 over every ``.py`` file (relative name and contents) of the named packages or files."""
    h = hashlib.sha256()
    for part in sorted(parts):
        p = ROOT / part
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()
