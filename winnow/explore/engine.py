"""The distributed engine: Dask ``distributed``, in-process by default, or an existing cluster.

Why Dask and not Ray (docs/explore.md, "Engine"): ``distributed`` is pure Python (one
wheel, no native object store), starts in-process with no set-up
(``LocalCluster(processes=False)``: threads of this process, nothing to launch or clean
up), runs the same code on a local process cluster or on a remote scheduler by its address
(``Client(address, timeout=…)``), and its futures finish in any order
(``as_completed``), which is what a resumable sweep needs: each result is written to the
content-addressed cache as soon as it arrives.

:class:`Engine` is a context manager; :meth:`Engine.run` maps a function over task
arguments and yields (index, result) as tasks finish, with a tqdm progress bar.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Callable, Iterable

from winnow.model.errors import WinnowError


class ClusterError(WinnowError):
    """The cluster address did not answer, or the engine could not start."""


class Engine:
    """Dask client over an in-process cluster (``address`` None), a local process cluster (``processes``
    > 0 workers), or the scheduler at ``address``.

    Parameters
    ----------
    address : str or None
        ``tcp://host:port`` of a running Dask scheduler (``--cluster``).
    processes : int
        0: threads of this process (default, no start-up cost); N: a local cluster of N worker processes.
    threads : int or None
        Threads of the in-process cluster (default: the machine's cores).
    timeout : float
        Seconds to wait for ``address`` to answer before :class:`ClusterError`.
    """

    def __init__(self, address: str | None = None, *, processes: int = 0, threads: int | None = None,
                 timeout: float = 5.0):
        self.address, self.processes, self.timeout = address, processes, timeout
        self.threads = threads or os.cpu_count() or 1
        self._stack = contextlib.ExitStack()
        self.client = None

    def __enter__(self) -> "Engine":
        import logging

        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)  # our own progress, not the scheduler's chatter
        try:
            if self.address:
                self.client = self._stack.enter_context(Client(self.address, timeout=self.timeout))
            else:
                kw = dict(n_workers=self.processes, threads_per_worker=1, processes=True) if self.processes else \
                    dict(n_workers=1, threads_per_worker=self.threads, processes=False)
                with warnings.catch_warnings():  # its HTTP server moves off a taken port 8787: nothing to tell
                    warnings.filterwarnings("ignore", message="Port .* is already in use")
                    cluster = self._stack.enter_context(LocalCluster(dashboard_address=None, **kw))
                self.client = self._stack.enter_context(Client(cluster, timeout=self.timeout))
        except (OSError, TimeoutError, ValueError) as exc:
            self._stack.close()
            where = f"cluster {self.address}" if self.address else "the local Dask cluster"
            raise ClusterError(f"{where} did not answer within {self.timeout:g} s "
                               f"({type(exc).__name__}: {str(exc)[:160]})") from None
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.client = None
        return False

    @property
    def description(self) -> str:
        if self.address:
            return f"Dask cluster {self.address}"
        if self.processes:
            return f"Dask local cluster, {self.processes} worker processes"
        return f"Dask in-process cluster, {self.threads} threads"

    def scatter(self, obj):
        """Send ``obj`` to every worker once; pass the returned future as a task argument."""
        return self.client.scatter(obj, broadcast=True) if self.processes or self.address else obj

    def run(self, fn: Callable, args: Iterable[tuple], *, label: str = "tasks", progress: bool = True,
            pure: bool = False):
        """Submit ``fn(*a)`` for every ``a`` in ``args``; yield (index, result) in completion order.

        A task that raises re-raises here (Dask passes the exception back): evaluation and
        build tasks return the errors of bad input as results, so a sweep goes on past them.
        """
        from distributed import as_completed
        from tqdm import tqdm

        args = list(args)
        futures = {}
        for i, a in enumerate(args):
            futures[self.client.submit(fn, *a, pure=pure)] = i
        bar = tqdm(total=len(args), desc=label, unit="task", disable=not progress or not args, leave=False,
                   dynamic_ncols=True)
        try:
            for fut in as_completed(futures):
                i = futures.pop(fut)
                res = fut.result()
                bar.update(1)
                yield i, res
        finally:
            bar.close()
            for fut in futures:  # interrupted: do not leave work running on the cluster
                fut.cancel()
