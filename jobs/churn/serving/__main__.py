"""The REST scoring API: MLflow's scoring server for the churn model behind an alias (docs/serving.md).

The version holding the alias is swapped in, in place and without a gap, when the alias moves.

``python -m jobs.churn.serving [--host H] [--port N] [--alias A]``

``POST /invocations`` takes MLflow's scoring protocol (``{"dataframe_records": [...]}``, SHAP values with
``"params": {"explain": true}``) and answers with the served version in ``X-Model-Version``; ``GET /model``
says which version is served (503 while none); ``/ping``, ``/health``, ``/version`` are MLflow's. Runs until
SIGTERM/SIGINT (exit 0); exit 2 on bad options or settings.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("jobs.churn.serving")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.serving", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="the address to listen on (default: STACK_HOST)")
    parser.add_argument("--port", type=int, help="the port to listen on (default: STACK_SERVING_PORT)")
    parser.add_argument(
        "--alias", help="the alias of MLFLOW_MODEL_NAME to serve and follow (default: SERVING_MODEL_ALIAS)"
    )
    args = parser.parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        parser.error(f"--port must be from 1 to 65535, got {args.port}")
    if args.alias is not None and not args.alias.strip():
        parser.error("--alias must not be blank")
    return args


def run(args: argparse.Namespace, settings) -> dict:
    from jobs.churn.serving.api import AliasWatcher, Limits, ScoringApi, serve
    from jobs.churn.serving.io import quiet_mlflow_client

    quiet_mlflow_client()  # a look-up that fails is retried at the next poll, not for minutes
    serving = settings.serving
    host = args.host or settings.stack.host
    port = args.port or settings.stack.serving_port
    limits = Limits(max_rows=serving.max_rows, max_bytes=int(serving.max_body_mb * 2**20))
    api = ScoringApi(settings.mlflow.model_name, args.alias or serving.model_alias, limits)
    tracking_uri = settings.mlflow.resolved_tracking_uri()
    log.info(
        "serving %s@%s from %s on http://%s:%s (alias looked up every %g s; at most %s rows, %g MiB a request)",
        api.name, api.alias, tracking_uri, host, port, serving.alias_poll_seconds, limits.max_rows,
        serving.max_body_mb,
    )  # fmt: skip
    serve(api, AliasWatcher(api, tracking_uri, serving.alias_poll_seconds), host, port)
    return {"name": api.name, "alias": api.alias, "version": api.served.version if api.served else None}


def report(result: dict) -> None:
    served = f"v{result['version']}" if result["version"] is not None else "no version"
    log.info("stopped; was serving %s of %s@%s", served, result["name"], result["alias"])


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, sections=("mlflow", "serving"))


if __name__ == "__main__":
    sys.exit(main())
