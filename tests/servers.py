"""Starting a real server process for a test (or a benchmark) and waiting until its health URL answers."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    pass


def start_server(
    command: list[str],
    health_url: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    healthy: Callable[[bytes, int], bool] = lambda body, status: status == 200,
) -> subprocess.Popen:
    """Starts `command` (output to `log_path`) and returns once `health_url` answers healthy; on a
    crash or timeout kills it and raises with the end of its log."""
    with log_path.open("w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if healthy(response.read(), response.status):
                    return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise ServerDidNotStart(f"{command[:4]} did not start; log:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen, grace: float = 20) -> None:
    server.terminate()
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        server.kill()
