"""Content-addressed results of an exploration: one JSON file per evaluated or built point.

The key of a result is the SHA-256 of what determines it (the point, the network's
digest, the model's source version, the bandwidths or the board); a result is written
atomically (temporary file + ``os.replace``) the moment it arrives, so an interrupted
exploration loses at most the tasks in flight and the next run picks up the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from winnow.model.errors import WinnowError
from winnow.model.files.atomic import atomic_write_json
from winnow.model.files.bounded import read_json_bounded


def content_key(*parts) -> str:
    """SHA-256 of the canonical JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


class ResultCache:
    """Results under ``root/<kind>/<key>.json``."""

    def __init__(self, root, kind: str):
        self.dir = Path(root) / kind  # made by the first put: a run that fails early leaves nothing

    def keys(self) -> set[str]:
        return {p.stem for p in self.dir.glob("*.json")} if self.dir.is_dir() else set()

    def get(self, key: str):
        """The stored result, or None (a missing or unreadable entry only means the work is done again)."""
        path = self.dir / f"{key}.json"
        if not path.exists():
            return None
        try:
            doc = read_json_bounded(path, what="exploration cache")
        except WinnowError:
            return None
        return doc.get("result") if isinstance(doc, dict) and doc.get("key") == key else None

    def put(self, key: str, result) -> None:
        atomic_write_json(self.dir / f"{key}.json", {"key": key, "result": result})
