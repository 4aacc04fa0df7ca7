"""The installed package: one ``winnow`` namespace, no bare ``model``/``hw``/``sim``/``boards``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _clean_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def test_every_package_folder_is_installed_under_the_winnow_namespace():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    found = set()
    for name, folder in dirs.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed, f"missing from pyproject packages: {sorted(found - listed)}; stale: {sorted(listed - found)}"
    assert all(n == "winnow" or n.startswith("winnow.") for n in listed)


def test_a_users_own_model_module_and_winnow_do_not_shadow_each_other(tmp_path):
    (tmp_path / "model.py").write_text("WHO = 'user'\n")
    code = ("import model, winnow.model.algebra.cook_toom as ct, winnow.hw.config as hc; "
            "print(model.WHO, ct.__name__, hc.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["user", "winnow.model.algebra.cook_toom", "winnow.hw.config"]


def test_bare_top_level_names_are_not_importable_outside_the_checkout(tmp_path):
    for bare in ("model", "hw", "sim", "boards"):
        res = subprocess.run([sys.executable, "-c", f"import {bare}"], cwd=tmp_path, env=_clean_env(),
                             capture_output=True, text=True)
        assert res.returncode == 1 and f"No module named '{bare}'" in res.stderr, (bare, res.stderr)
