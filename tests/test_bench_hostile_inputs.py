"""The hostile-input benchmark: its recorded result is rendered in docs/cli.md and counts nothing but named
errors and exact acceptances; a small run of it (the readers, not the command) does the same now."""

import json
from pathlib import Path

from bench import hostile_inputs as H

ROOT = Path(__file__).resolve().parents[1]


def test_the_recorded_run_is_in_the_docs_and_clean():
    doc = json.loads(H.OUT.read_text(encoding="utf-8"))
    assert doc["schema"] == H.SCHEMA and doc["other"] == 0 and not doc["others"]
    assert doc["tried"] >= 300 and doc["tried"] == doc["named_errors"] + doc["accepted"]
    assert doc["by_reader"]["winnow command"]["tried"] >= 30  # the command, not only the readers
    assert H.docs_block(doc) in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_a_small_run_of_the_readers_ends_only_in_named_errors_or_exact_acceptances():
    doc = H.run(seed=3, n=8, cli_limit=0, progress=lambda line: None)
    assert doc["other"] == 0, doc["others"]
    assert doc["tried"] > 80 and len(doc["by_reader"]) >= 9
