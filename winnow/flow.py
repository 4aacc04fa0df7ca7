"""A resumable pipeline of steps, each writing one directory of artifacts atomically.

Every step declares its inputs (configuration sections and the steps it reads). Its
*key* is the SHA-256 of those inputs together with the digests of the upstream steps'
outputs. A step whose key and output digest are unchanged since it last succeeded is
skipped; anything upstream that changes re-runs everything downstream of it.

A step writes into a temporary directory that replaces ``OUT/<step>`` only when it
succeeds, and ``OUT/flow.json`` (atomic) records each finished step's key, digest and
timing, so an interrupted flow resumes at the step it was in and never leaves a
half-written artifact in place. A step that runs again first moves its previous output
aside: it is dropped when the step succeeds and put back when the step fails or is
interrupted (nothing is lost to a typo in a configuration), but it is no longer recorded
in ``flow.json``, so reports ignore it and the next run makes it again. The directory of
a step no longer in the flow (a removed ``[board]``) goes. A non-empty output directory
without ``flow.json`` is refused: the flow writes only where it owns the contents.

One flow at a time per directory: a run holds an exclusive lock on ``OUT/.flow.lock``
(``flock``, released by the kernel if the process dies) and writes its process id,
host and start time into it; a second run into the same directory is refused at once
with a message naming the process that holds it.

Timings (``seconds``, wall times, rates: :data:`VOLATILE`) go to ``timing.json``, not
``report.json``, and logs are not part of a step's digest: a step that re-runs and
makes the same artifacts does not re-run the steps after it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from winnow.model.files.atomic import DIR_MODE, atomic_write_json
from winnow.model.files.bounded import read_json_bounded
from winnow.model.errors import WinnowError

STATE = "flow.json"
#: The lock file of a running flow (module docstring).
LOCK = ".flow.lock"


class FlowLockedError(WinnowError):
    """Another flow is running into the same directory."""


STATE_SCHEMA = "winnow-flow/1"


#: Report keys that measure time rather than results: they go to timing.json.
VOLATILE = frozenset({"seconds", "run_wall_s", "cycles_per_s", "wall_s", "build_s", "tool_s", "build_dir",
                      "finished", "load_wall_s", "steps"})


def split_volatile(doc):
    """(doc without the :data:`VOLATILE` keys, only those keys), recursively through dicts and lists."""
    if isinstance(doc, dict):
        stable, vol = {}, {}
        for k, v in doc.items():
            if k in VOLATILE:
                vol[k] = v
            else:
                s, t = split_volatile(v)
                stable[k] = s
                if t not in (None, {}, []):
                    vol[k] = t
        return stable, vol
    if isinstance(doc, list):
        parts = [split_volatile(v) for v in doc]
        vols = [t for _, t in parts]
        return [s for s, _ in parts], (vols if any(t not in (None, {}, []) for t in vols) else [])
    return doc, None


def _file_sha(f: Path) -> bytes:
    h = hashlib.sha256()
    with open(f, "rb") as fh:  # streamed: a step's artifacts may be large
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def dir_digest(path: Path) -> str:
    """SHA-256 over every regular file (relative name and contents) under ``path``, timings and logs excepted.

    Anything else in a step's directory (a FIFO, a device, a link to one) is part of no
    artifact: it changes the digest by its name only and is never opened.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.name != "timing.json" and p.suffix != ".log"):
        if f.is_dir() and not f.is_symlink():
            continue
        h.update(str(f.relative_to(path)).encode() + b"\0")
        if f.is_file() and not f.is_symlink():
            h.update(_file_sha(f))
        else:
            h.update(b"<not a regular file>")
    return h.hexdigest()


class FlowLock:
    """The exclusive lock of one flow directory (module docstring); a context manager."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / LOCK
        self.fd: int | None = None

    def _holder(self) -> str:
        try:
            doc = read_json_bounded(self.path, what="flow state")
            return (f"process {int(doc['pid'])} on {str(doc.get('host'))[:80]}, started "
                    f"{str(doc.get('started'))[:40]}")
        except (WinnowError, KeyError, TypeError, ValueError):
            return "another process (it has not written its id yet)"

    def acquire(self) -> "FlowLock":
        for _ in range(10):  # the holder may remove the file between our open and flock: try again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise WinnowError(f"{self.path}: cannot create the flow's lock file ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise FlowLockedError(f"{self.root}: another 'winnow flow' is running into this directory "
                                          f"({self._holder()}; lock {self.path}); wait for it to finish or choose "
                                          f"another --out") from None
                raise WinnowError(f"{self.path}: cannot lock it ({exc.strerror})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # locked a file its holder had just removed
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
            self.fd = fd
            return self
        raise WinnowError(f"{self.path}: could not take the flow's lock (it kept changing)")

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still holding it: a waiting run then locks a fresh file
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "FlowLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class StepContext:
    """What a running step sees: its (temporary) output directory and the finished upstream steps."""

    out: Path
    root: Path
    progress: Callable[[str], None]

    def upstream(self, name: str) -> Path:
        return self.root / name

    def cache(self, name: str) -> Path:
        """A directory kept across runs (build caches); not part of any step's output."""
        p = self.root / "cache" / name
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass
class Step:
    """One step: ``run(ctx)`` writes files into ``ctx.out`` and returns a JSON-ready summary."""

    name: str
    title: str
    run: Callable[[StepContext], dict]
    inputs: dict = field(default_factory=dict)
    needs: tuple = ()


class Flow:
    """Run steps in order into ``root``, skipping those whose inputs have not changed."""

    def __init__(self, root, steps: list[Step], progress: Callable[[str], None] = print):
        self.root = Path(root)
        self.steps = steps
        self.progress = progress
        names = [s.name for s in steps]
        for s in steps:
            for n in s.needs:
                if n not in names[: names.index(s.name)]:
                    raise WinnowError(f"step {s.name} needs {n}, which does not run before it")

    def _state(self) -> dict:
        """``flow.json``: a state of another schema (an older Winnow) means every step re-runs; one that
        is not a readable JSON object of finished steps is refused, naming the file."""
        p = self.root / STATE
        if not p.exists() and not p.is_symlink():
            return {"schema": STATE_SCHEMA, "steps": {}}
        doc = read_json_bounded(p, WinnowError, what="flow state")
        if not isinstance(doc, dict):
            raise WinnowError(f"{p}: not a flow state (a JSON object); remove it to re-run every step")
        if doc.get("schema") != STATE_SCHEMA:
            return {"schema": STATE_SCHEMA, "steps": {}}
        steps = doc.get("steps")
        if not isinstance(steps, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("key"), str) and isinstance(v.get("digest"), str)
                for v in steps.values()):
            raise WinnowError(f"{p}: field 'steps': expected an object of finished steps, each with a 'key' and a "
                              f"'digest' (strings); remove the file to re-run every step")
        return doc

    def _key(self, step: Step, state: dict) -> str:
        up = {n: state["steps"][n]["digest"] for n in step.needs}
        blob = json.dumps({"step": step.name, "inputs": step.inputs, "upstream": up}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def run(self, force: tuple = ()) -> dict:
        """Run (or skip) every step; ``force`` names steps to re-run regardless. Returns the state.

        Holds :class:`FlowLock` on the directory throughout: a second run into it is refused at once.
        """
        if self.root.exists() and not self.root.is_dir():
            raise WinnowError(f"{self.root}: not a directory")
        if self.root.is_dir() and any(p.name != LOCK for p in self.root.iterdir()) \
                and not (self.root / STATE).exists():
            raise WinnowError(f"{self.root} is not empty and holds no {STATE}: not a flow's output directory; "
                              "choose a new or empty directory")
        self.root.mkdir(parents=True, exist_ok=True)
        with FlowLock(self.root):
            return self._run(force)

    def _run(self, force: tuple) -> dict:
        for old in self.root.glob(".*.tmp-old-*"):  # a run killed while a step ran: its previous output back
            final = self.root / old.name[1:].split(".tmp-old-")[0]
            if not final.exists():
                old.rename(final)
        for stale in self.root.glob(".*.tmp-*"):  # left by an interrupted run
            shutil.rmtree(stale, ignore_errors=True)
        state = self._state()
        if not (self.root / STATE).exists():
            atomic_write_json(self.root / STATE, state)
        names = {s.name for s in self.steps}
        for gone in [k for k in state["steps"] if k not in names]:  # e.g. a [board] section removed
            shutil.rmtree(self.root / gone, ignore_errors=True)
            del state["steps"][gone]
        n = len(self.steps)
        t_all = time.time()
        for i, step in enumerate(self.steps, 1):
            key = self._key(step, state)
            prev = state["steps"].get(step.name, {})
            final = self.root / step.name
            unchanged = (prev.get("key") == key and final.is_dir() and prev.get("digest") == dir_digest(final)
                         and step.name not in force)
            if unchanged:
                self.progress(f"[{i}/{n}] {step.title}: unchanged, skipped")
                continue
            self.progress(f"[{i}/{n}] {step.title} …")
            t0 = time.time()
            # the previous output no longer matches the inputs: aside now, dropped if this run succeeds
            old = None
            if final.exists():
                old = self.root / f".{step.name}.tmp-old-{int(time.time() * 1000)}"
                final.rename(old)
            state["steps"].pop(step.name, None)
            atomic_write_json(self.root / STATE, state)
            tmp = Path(tempfile.mkdtemp(prefix=f".{step.name}.tmp-", dir=self.root))
            tmp.chmod(DIR_MODE)  # mkdtemp makes it private; the artifacts are the user's to share
            try:
                summary = step.run(StepContext(out=tmp, root=self.root, progress=self.progress))
                stable, vol = split_volatile(summary)
                atomic_write_json(tmp / "report.json", {"step": step.name, "title": step.title, **stable})
                atomic_write_json(tmp / "timing.json", {"step": step.name, "seconds": round(time.time() - t0, 2),
                                                        **(vol or {})})
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                if old is not None:  # kept, but not recorded in the state: reports ignore it, the next run redoes it
                    old.rename(final)
                raise
            tmp.rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            dt = time.time() - t0
            state["steps"][step.name] = {"key": key, "digest": dir_digest(final), "seconds": round(dt, 2),
                                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            atomic_write_json(self.root / STATE, state)
            self.progress(f"[{i}/{n}] {step.title}: done in {dt:.1f} s")
        self.progress(f"flow finished in {time.time() - t_all:.1f} s → {self.root}")
        return state
