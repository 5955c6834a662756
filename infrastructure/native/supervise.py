"""Keeps one service running, as compose's `restart: unless-stopped` does: restarts it with a growing
delay when it exits on its own (an Airflow scheduler that lost its database, a worker that lost Redis) and
stops it, and itself, on SIGTERM.

    python -m infrastructure.native.supervise NAME -- COMMAND [ARG ...]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    name, command = argv[0], argv[2:]
    stopping = False
    child: subprocess.Popen | None = None

    def on_term(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    restarts = 0
    while True:
        began = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return 0
        if time.monotonic() - began > 300:
            restarts = 0  # it ran fine for a while: start the back-off afresh
        restarts += 1
        delay = min(30, 2**restarts)
        print(f"[supervise] {name} exited with {code}; restart {restarts} in {delay} s", flush=True)
        time.sleep(delay)


if __name__ == "__main__":
    sys.exit(main())
