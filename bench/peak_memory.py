"""The peak resident memory of a process tree (a driver and the JVM it started), sampled in a thread.

with PeakRss() as memory:            # this process and its children
    ...
memory.peak                          # bytes
"""

from __future__ import annotations

import contextlib
import threading


class PeakRss:
    """Samples the RSS of process `pid` (this one by default) and all its descendants every `interval` s."""

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            with contextlib.suppress(Exception):  # the root may have exited
                for proc in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(Exception):  # a child may exit between listing and reading
                        total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
