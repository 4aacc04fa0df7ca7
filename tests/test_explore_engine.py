"""The Dask engine: tasks in completion order, and a cluster address that does not answer is a named error."""

import socket
import time

import pytest

from winnow.explore.engine import ClusterError, Engine


def _square(x):
    return x * x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_in_process_engine_runs_every_task_once():
    with Engine(threads=2) as eng:
        got = dict(eng.run(_square, [(i,) for i in range(20)], progress=False))
        assert "in-process" in eng.description
    assert got == {i: i * i for i in range(20)}


def test_a_task_that_raises_re_raises_its_own_error():
    with Engine(threads=1) as eng, pytest.raises(ZeroDivisionError):
        list(eng.run(divmod, [(1, 0)], progress=False))


def test_a_cluster_that_does_not_answer_is_named_within_seconds():
    addr = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(ClusterError, match=f"cluster {addr} did not answer within 1 s"):
        with Engine(addr, timeout=1.0):
            pass
    assert time.perf_counter() - t0 < 10
