"""The resumable flow's own guarantees: one run per directory (the lock), a named error for a bad state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winnow.flow import LOCK, STATE, Flow, FlowLock, FlowLockedError, Step
from winnow.model.errors import WinnowError

ROOT = Path(__file__).resolve().parents[1]


def _flow(root, ran):
    def run(ctx):
        ran.append(ctx.out.name)
        (ctx.out / "a.txt").write_text("a")
        return {"ok": True}

    return Flow(root, [Step("one", "step one", run)], progress=lambda line: None)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / 'run'`` until the test ends."""
    root = tmp_path / "run"
    root.mkdir()
    code = ("import sys, time; from winnow.flow import FlowLock; lock = FlowLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    yield root, proc
    proc.kill()
    proc.wait()


def test_a_second_flow_into_the_same_directory_is_refused_at_once_naming_the_holder(holder):
    root, proc = holder
    ran = []
    t0 = time.time()
    with pytest.raises(FlowLockedError, match=rf"another 'winnow flow' is running into this directory \(process "
                                              rf"{proc.pid} on .*, started .*; lock .*{LOCK}\)"):
        _flow(root, ran).run()
    assert time.time() - t0 < 2 and ran == [] and not (root / "one").exists()


def test_the_lock_is_released_after_a_run_and_when_its_holder_dies(tmp_path, holder):
    root, proc = holder
    proc.kill()
    proc.wait()  # the kernel drops a dead process's flock: the next run takes it
    ran = []
    _flow(root, ran).run()
    assert ran and (root / "one" / "a.txt").is_file() and not (root / LOCK).exists()
    _flow(root, ran).run()  # and again: the first run gave it back
    with FlowLock(root):
        with pytest.raises(FlowLockedError):
            FlowLock(root).acquire()


def test_the_cli_refuses_a_concurrent_flow_with_one_line(holder, tmp_path):
    root, proc = holder
    cfg = tmp_path / "flow.toml"
    cfg.write_text('[train]\ndataset = "digits"\nm = 2\n')
    exe = Path(sys.executable).with_name("winnow")
    r = subprocess.run([str(exe), "flow", str(cfg), "--out", str(root)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"process {proc.pid}" in r.stderr and "another 'winnow flow' is running" in r.stderr
    assert not (root / "train").exists()


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a flow state"),
    ('{"schema": "winnow-flow/1", "steps": {"one": 3}}', "field 'steps'"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_a_bad_flow_state_is_a_named_error(tmp_path, text, words):
    root = tmp_path / "run"
    root.mkdir()
    (root / STATE).write_text(text)
    with pytest.raises(WinnowError, match=words):
        _flow(root, []).run()


def test_a_flow_state_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    os.mkfifo(root / STATE)
    with pytest.raises(WinnowError, match="a FIFO"):
        _flow(root, []).run()


def test_a_state_of_another_schema_reruns_every_step(tmp_path):
    root = tmp_path / "run"
    ran = []
    _flow(root, ran).run()
    (root / STATE).write_text(json.dumps({"schema": "winnow-flow/0", "steps": {}}))
    _flow(root, ran).run()
    assert len(ran) == 2
