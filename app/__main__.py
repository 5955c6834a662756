"""``python -m app [--host H] [--port N]``: the Streamlit app, configured from the project's settings.

One command for every way the app runs (`make app`, both stacks, the browser test), so the flags live in
one place. Health: ``GET /_stcore/health`` answers ``ok``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parent / "Home.py"
ROOT = HOME.parents[1]


def streamlit_argv(host: str, port: int, max_upload_mb: int) -> list[str]:
    return [
        "streamlit", "run", str(HOME),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.maxUploadSize", str(max_upload_mb),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from jobs.common.config import load_settings

    settings = load_settings().app
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # pages import `app.common` and `jobs`
    from streamlit.web import cli

    sys.argv = streamlit_argv(args.host, args.port, settings.max_upload_mb)
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
