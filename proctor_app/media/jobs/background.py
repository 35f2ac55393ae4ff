"""Background media work in a process of its own, at a lower CPU priority than the app's.

A grow step is Python for every packet and sample (demux, mux, the copy checks): in a thread of
the app process it holds the GIL the routes need. At a thousand candidates (bench/soak.py) chunk
acknowledgements' p99 was 292-934 ms a minute with the steps there, 49-161 ms with them in a pool
process: spawned (the app process has threads, which fork would copy mid-lock) and started at
`nice` BACKGROUND_NICE, so the routes keep their GIL and the kernel serves the app and the ingest
processes first. Growing is a head start; waiting costs it only a longer append at submit.
"""

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

BACKGROUND_NICE = 10


def _start(setup: Callable[[], None] | None) -> None:
    os.nice(BACKGROUND_NICE)
    if setup is not None:
        setup()


class BackgroundProcesses:
    """`workers` processes that run module-level functions (picklable, as their arguments and
    results), started on first use; `setup` runs first in each (logging, say)."""

    def __init__(self, workers: int = 1, setup: Callable[[], None] | None = None):
        self.workers, self.setup = workers, setup
        self._pool: ProcessPoolExecutor | None = None
        self._pid: int | None = None  # a pool belongs to the process that started it

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start, initargs=(self.setup,))
            self._pid = os.getpid()
        return self._pool

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
        except BrokenProcessPool:
            # A pool process died (killed, out of memory): this call fails (its job is tried
            # again later) and the next one starts a new pool.
            if self._pool is pool:
                self._pool = None
            raise

    def close(self) -> None:
        """Stop the processes, each once its call under way (if any) returns; calls still waiting
        are dropped (a stopping worker has put their jobs back)."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
