"""Where conversions run: a local process pool or a Dask distributed cluster.

Both sit behind the small :class:`Executor` interface, so ``segmap batch`` and the web
service's job runner hand work out the same way whatever runs it:

* :class:`LocalPoolExecutor` — ``concurrent.futures.ProcessPoolExecutor`` with N worker
  processes on this machine. Workers are started with ``spawn`` (a fresh interpreter):
  forking a multi-threaded process such as the web service can copy a lock that another
  thread holds and hang the child. On Linux each worker asks the kernel to kill it when
  the process that started it dies, so a killed service leaves no worker behind writing
  files.
* :class:`DaskExecutor` — ``distributed.Client(address)`` on a running scheduler. Tasks
  are plain functions of picklable arguments; the workers must have segmap installed and
  see the input and output paths at the same place (a shared file system).

Tasks should catch their own errors and return a value saying what went wrong; the
executors only turn a *lost worker* (a crash, the out-of-memory killer) into an
exception that :meth:`Executor.is_lost_worker` recognises.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, Protocol

from segmap.errors import SegmapError

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class ExecutorError(SegmapError):
    """An executor that cannot be started: a bad worker count or an unreachable scheduler."""


class TaskHandle(Protocol):
    """A submitted task: ``concurrent.futures.Future`` and ``distributed.Future`` both fit."""

    def done(self) -> bool:
        """Whether the task has finished (successfully or not)."""
        ...

    def result(self, timeout: float | None = None) -> Any:
        """The task's return value; re-raises its exception."""
        ...

    def cancel(self) -> Any:
        """Try to stop the task before it runs."""
        ...


class Executor(ABC):
    """Runs picklable functions somewhere and hands back :class:`TaskHandle` objects."""

    description: str = "executor"

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskHandle:
        """Start ``fn(*args)``; returns at once."""

    @abstractmethod
    def as_completed(self, handles: Iterable[TaskHandle]) -> Iterator[TaskHandle]:
        """Yield each handle as its task finishes."""

    @abstractmethod
    def is_lost_worker(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from ``result()``) means the worker died, not the task failed."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many tasks can run at the same time."""

    def restart(self) -> None:  # noqa: B027 - optional; most executors recover by themselves
        """Make the executor usable again after a lost worker (a no-op unless needed)."""

    def terminate(self) -> None:
        """Stop now: cancel queued tasks and stop running ones where possible, then close."""
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Stop accepting work and release workers (running tasks are not waited for)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _die_with_parent() -> None:
    """Pool initializer: ask Linux to SIGKILL this worker when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class LocalPoolExecutor(Executor):
    """``workers`` processes on this machine (``concurrent.futures.ProcessPoolExecutor``).

    Args:
        workers: number of worker processes, at least 1.
        start_method: multiprocessing start method (``spawn`` by default, see module doc).
    """

    def __init__(self, workers: int, *, start_method: str = "spawn") -> None:
        if workers < 1:
            raise ExecutorError(f"the number of workers must be at least 1, got {workers}")
        self.workers = workers
        self._context = multiprocessing.get_context(start_method)
        self._pool = self._new_pool()
        self.description = f"local pool of {workers} worker process{'es' if workers > 1 else ''}"

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self._context, initializer=_die_with_parent
        )

    @property
    def capacity(self) -> int:
        """The number of worker processes."""
        return self.workers

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskHandle:
        """Queue ``fn(*args)`` on the pool."""
        return self._pool.submit(fn, *args)

    def as_completed(self, handles: Iterable[TaskHandle]) -> Iterator[TaskHandle]:
        """``concurrent.futures.as_completed``."""
        futures: list[cf.Future[Any]] = list(handles)  # type: ignore[arg-type]
        yield from cf.as_completed(futures)

    def is_lost_worker(self, exc: BaseException) -> bool:
        """A broken pool: some worker process died and every pending task was dropped."""
        return isinstance(exc, BrokenProcessPool)

    def restart(self) -> None:
        """Replace a broken pool with a fresh one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self) -> None:
        """Cancel queued tasks, let running ones finish, and let the workers exit."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        """Cancel queued tasks and kill the workers (running tasks are lost)."""
        # ProcessPoolExecutor has no public way to stop running tasks; its worker table
        # is the only handle on the processes.
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=10)
        self._pool.shutdown(wait=True)


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster reached at ``address`` (``tcp://host:8786``).

    Args:
        address: the scheduler's address.
        timeout_s: how long to try to connect before giving up, in seconds.
    """

    def __init__(self, address: str, *, timeout_s: float = 20.0) -> None:
        from distributed import Client

        self.address = address
        try:
            self._client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {address!r} ({exc}); start it "
                "(dask scheduler) or fix the address"
            ) from None
        self._pending: list[TaskHandle] = []
        self.description = f"Dask cluster at {address}"

    @property
    def capacity(self) -> int:
        """Threads over all workers of the cluster now (at least 1)."""
        try:
            threads = sum(self._client.nthreads().values())
        except Exception:  # the scheduler went away; the next submit will say so
            threads = 0
        return max(1, int(threads))

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskHandle:
        """Send ``fn(*args)`` to the cluster; ``pure=False`` so every call runs."""
        future: TaskHandle = self._client.submit(fn, *args, pure=False)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(future)
        return future

    def as_completed(self, handles: Iterable[TaskHandle]) -> Iterator[TaskHandle]:
        """``distributed.as_completed``."""
        from distributed import as_completed

        # This client is not the process-wide default, so hand over its event loop.
        yield from as_completed(list(handles), loop=self._client.loop)

    def is_lost_worker(self, exc: BaseException) -> bool:
        """The scheduler gave up on a task after it killed workers repeatedly."""
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)

    def close(self) -> None:
        """Disconnect from the scheduler (the cluster keeps running)."""
        self._client.close()

    def terminate(self) -> None:
        """Cancel this client's tasks on the cluster, then disconnect."""
        with contextlib.suppress(Exception):
            running = [f for f in self._pending if not f.done()]
            if running:
                self._client.cancel(running)
        self._pending = []
        self.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """A Dask executor when ``scheduler`` is given, else a local pool of ``workers``.

    ``workers`` None means one per CPU core.
    """
    if scheduler:
        return DaskExecutor(scheduler)
    count = workers if workers is not None else (multiprocessing.cpu_count() or 1)
    return LocalPoolExecutor(count)
