"""Where sweep runs execute: a local process pool (default) or a Dask cluster.

Both sit behind one tiny interface, :meth:`Executor.map_unordered`, which
applies a picklable top-level function to a list of items and yields
``(index, ok, value)`` as each finishes (``value`` is the result, or a
one-line error string when ``ok`` is False).  Executors never touch the run
log: workers return results and the driver writes them.

* :class:`LocalExecutor` (``workers=0`` runs inline in the calling process,
  which is handy for debugging and tiny sweeps);
* :class:`DaskExecutor` connects to a running scheduler
  (``archgym sweep SPEC --scheduler tcp://host:8786``).  Its workers need the
  same Python environment (``pip install 'archgym[dask]'`` plus any package
  that registers extra envs).  On a SLURM cluster start the workers with
  dask-jobqueue::

      from dask_jobqueue import SLURMCluster
      cluster = SLURMCluster(cores=1, processes=1, memory="2GB", walltime="02:00:00")
      cluster.scale(jobs=32)            # 32 single-core worker jobs
      print(cluster.scheduler_address)  # pass it to --scheduler, or:
      run_sweep(spec, executor=DaskExecutor(client=distributed.Client(cluster)))
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "ExecutorError", "make_executor"]


class ExecutorError(ValueError):
    """An executor cannot be created (bad address, unreachable scheduler, missing extra)."""


def _exit_with_parent(parent_pid: int, poll_s: float = 0.25) -> None:
    """Pool-worker initializer: the worker exits as soon as the process that started it is
    gone (a sweep driver killed with kill -9 cannot shut its pool down).  A daemon thread
    watches the parent pid; when the worker is re-parented it ends itself, so no orphan keeps
    computing (or holding memory) and the resource tracker sees its last user go."""
    import threading

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(poll_s)

    if os.getppid() != parent_pid:  # the driver died before this worker got here
        os._exit(1)
    threading.Thread(target=watch, name="archgym-parent-watch", daemon=True).start()


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


class Executor(ABC):
    """A map over picklable work items; use as a context manager."""

    @abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, bool, Any]]:
        """Yield ``(index, ok, result_or_error)`` for every item, in completion order."""

    def close(self) -> None:
        """Release workers/connections (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        """One line for logs, e.g. ``local process pool (2 workers)``."""
        return type(self).__name__


class LocalExecutor(Executor):
    """A pool of ``workers`` local processes (default: the CPU count); 0 = inline.

    Worker processes are started with ``spawn`` (no fork of a driver that
    holds a SQLite connection and a writer thread) and exit on their own when
    the driver dies (even by kill -9): the runs they had in flight are redone
    when the sweep is restarted.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or workers < 0:
            raise ExecutorError(f"workers={workers!r} must be an integer >= 0 (0 = run inline)")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return "inline (no worker processes)" if self.workers == 0 else f"local process pool ({self.workers} workers)"

    def map_unordered(self, fn, items):
        if self.workers == 0:
            for i, item in enumerate(items):
                try:
                    yield i, True, fn(item)
                except Exception as e:  # reported per item, like a worker failure
                    yield i, False, _one_line(e)
            return
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_exit_with_parent, initargs=(os.getpid(),))
        futures = {self._pool.submit(fn, item): i for i, item in enumerate(items)}
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                err = fut.exception()
                yield (i, True, fut.result()) if err is None else (i, False, _one_line(err))
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """Runs items as tasks on a Dask ``distributed`` cluster.

    Pass ``address`` (``tcp://host:port`` of a running scheduler) or an existing
    ``client``.  Raises :class:`ExecutorError` (one line) when the extra is not
    installed or the scheduler cannot be reached within ``timeout_s``.
    """

    def __init__(self, address: str | None = None, *, client: Any = None, timeout_s: float = 10.0) -> None:
        try:
            import distributed
        except ImportError:
            raise ExecutorError("the Dask executor needs dask.distributed: pip install 'archgym[dask]'") from None
        self._own = client is None
        if client is None:
            if not address or "://" not in address:
                raise ExecutorError(f"scheduler address {address!r} must look like tcp://host:port")
            _probe(address, timeout_s)
            try:
                client = distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {_one_line(e)}") from None
        self.client = client
        self.address = address or getattr(client.scheduler, "address", "?")

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster at {self.address} ({n} workers)"

    def map_unordered(self, fn, items):
        from distributed import as_completed

        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                i = index[fut.key]
                if fut.status == "finished":
                    yield i, True, fut.result()
                else:
                    yield i, False, _one_line(fut.exception())
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        if self.client is not None and self._own:
            self.client.close()
        self.client = None if self._own else self.client


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast on a refused tcp:// address (distributed would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address)
    if u.scheme != "tcp":
        return
    try:
        host, port = u.hostname, u.port
    except ValueError:
        port = None
    if not host or port is None:
        raise ExecutorError(f"scheduler address {address!r} must look like tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {_one_line(e)}") from None


def make_executor(*, scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor the CLI asks for: Dask when ``scheduler`` is given, else a local pool."""
    if scheduler:
        if workers is not None:
            raise ExecutorError("--workers applies to the local process pool; with --scheduler the cluster sizes itself")
        return DaskExecutor(scheduler)
    return LocalExecutor(workers)
