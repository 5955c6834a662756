"""Benchmark: the app's latency for one customer, from the click on Score to the rendered result, in
headless Chromium (p50/p95 over --runs), against the scorer alone (score + SHAP) in the same run.

Needs a production model and its stores: `make demo` first (or the stack's env). Starts `python -m app`
on a free port with this environment, like users do, and drives it like a user: type a value, click.

    python bench/app_latency.py [--runs 50] [--warmup 5]

Ends with: p50_ms=..., p95_ms=..., server_p50_ms=..., scorer_p50_ms=..., ratio_vs_scorer=...
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = re.compile(r"· ([0-9.]+) ms · submit #(\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    import pandas as pd

    from jobs.churn.serving.io import ModelService, quiet_mlflow_client
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import free_port
    from tests.browser import chromium, open_page
    from tests.servers import start_server, stop_server

    setup_logging()
    quiet_mlflow_client()
    settings = load_settings()
    service = ModelService(settings.mlflow.resolved_tracking_uri(), settings.mlflow.model_name)
    model = service.load(alias=settings.app.model_alias)
    record = dict(model.scorer.description["numeric_fill"])
    record.update({c: (v[0] if v else None) for c, v in model.categories().items()})

    # baseline: what the page computes for one submit (score + SHAP), without the page
    scorer_ms = []
    for i in range(args.warmup + args.runs):
        started = time.perf_counter()
        model.score(pd.DataFrame([{**record, "pay_count_6m": float(i % 30)}]), settings.churn.band_cuts)
        model.explain({**record, "pay_count_6m": float(i % 30)})
        scorer_ms.append((time.perf_counter() - started) * 1000)
    scorer_ms = scorer_ms[args.warmup :]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "app", "--port", str(port)]
    log = ROOT / "var" / "bench-app.log"
    log.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = start_server(command, f"{url}/_stcore/health", log, env, ROOT, 90, lambda body, _: body == b"ok")
    try:
        with chromium() as browser:
            page = open_page(browser, f"{url}/Score", "Score a customer")
            field = page.get_by_role("spinbutton", name="pay_count_6m", exact=True)
            button = page.get_by_role("button", name="Score", exact=True)
            click_ms, server_ms = [], []
            for n in range(1, args.warmup + args.runs + 1):
                field.fill(str(n % 30))
                started = time.perf_counter()
                button.click()
                shown = page.get_by_text(f"submit #{n}", exact=False)
                shown.wait_for(timeout=60_000)
                elapsed = (time.perf_counter() - started) * 1000
                match = SUBMIT.search(shown.inner_text())
                if n > args.warmup:
                    click_ms.append(elapsed)
                    server_ms.append(float(match.group(1)) if match else float("nan"))
    finally:
        stop_server(server)

    p50, p95 = np.percentile(click_ms, [50, 95])
    scorer_p50 = float(np.percentile(scorer_ms, 50))
    print(
        f"model: {model.label} ({model.scorer.kind}, {len(model.scorer.features)} inputs); runs={args.runs}"
    )
    print(
        f"p50_ms={p50:.1f}, p95_ms={p95:.1f}, server_p50_ms={np.nanpercentile(server_ms, 50):.1f}, "
        f"scorer_p50_ms={scorer_p50:.1f}, ratio_vs_scorer={p50 / scorer_p50:.1f}"
    )


if __name__ == "__main__":
    main()
