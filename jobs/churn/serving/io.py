"""Serving's I/O: the registered model behind an alias (downloaded once per version, scored without a JVM),
and what is known of one customer (their row in the feature table, their batch scores).

Every call takes an explicit tracking URI, so several callers (the app's sessions, tests) can talk to
different servers at once without touching MLflow's global URIs.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.churn.contract.features import ID
from jobs.churn.deployment.scoring import risk_band

if TYPE_CHECKING:
    import pandas as pd

    from jobs.churn.contract.features import Shares
    from jobs.churn.deployment.io import ModelRef
    from jobs.churn.deployment.scorer.score import ChurnScorer

log = logging.getLogger(__name__)


class MlflowUnavailable(RuntimeError):
    """The tracking server does not answer: the app says so instead of hanging."""


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    scorer: ChurnScorer
    loaded_at: datetime
    load_seconds: float

    @property
    def label(self) -> str:
        alias = f" @{self.ref.alias}" if self.ref.alias else ""
        return f"{self.ref.name} v{self.ref.version}{alias}"

    def categories(self) -> dict[str, list[str]]:
        """Known labels per categorical column (the missing marker left out)."""
        missing = self.scorer.description["missing_category"]
        return {c: [v for v in ls if v != missing] for c, ls in self.scorer.description["categories"].items()}

    def score(self, frame: pd.DataFrame, cuts: tuple[float, float]) -> pd.DataFrame:
        """`frame` plus probability and risk_band."""
        p = self.scorer.predict_proba(frame[list(self.scorer.features)])
        return frame.assign(probability=p, risk_band=[risk_band(float(v), cuts) for v in p])

    def explain(self, record: Mapping[str, Any]) -> pd.DataFrame:
        """One prediction's SHAP values: feature, value, contribution (model units), sorted by |size|."""
        import pandas as pd

        frame = pd.DataFrame([{c: record.get(c) for c in self.scorer.features}])
        for column in self.scorer.numeric:
            frame[column] = frame[column].astype("float64")
        values = self.scorer.explain(frame).iloc[0]
        out = pd.DataFrame(
            {
                "feature": list(self.scorer.features),
                "value": [_display(record.get(c)) for c in self.scorer.features],
                "contribution": [float(values[c]) for c in self.scorer.features],
            }
        )
        return out.reindex(out["contribution"].abs().sort_values(ascending=False).index).reset_index(
            drop=True
        )


def _display(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(missing)"
    if isinstance(value, float):  # 96.29, not 96.28999999999999; 10000000, not 1e+07
        return f"{value:.0f}" if value.is_integer() else str(round(value, 4))
    return str(value)


class ModelService:
    """The registered model behind an alias, downloaded once per version (no Spark, no JVM)."""

    def __init__(self, tracking_uri: str, model_name: str, timeout: float = 3.0) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.timeout = timeout

    def client(self):
        from mlflow.tracking import MlflowClient

        self.check_server()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def check_server(self) -> None:
        """A quick health probe, so a stopped server is a clear message and not minutes of retries."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                if response.status == 200:
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            problem = str(getattr(exc, "reason", exc))
        raise MlflowUnavailable(
            f"the MLflow server at {self.tracking_uri} does not answer ({problem}). Start the stack "
            "(`make up`) or point MLFLOW_TRACKING_URI at a running server."
        )

    def version_of(self, alias: str) -> int | None:
        """The version number holding `alias` right now (one REST call), or None."""
        from jobs.churn.deployment.io import version_by_alias

        mv = version_by_alias(self.client(), self.model_name, alias)
        return int(mv.version) if mv else None

    def load(self, alias: str | None = "production", version: int | None = None) -> LoadedModel:
        """Resolves and downloads the model; raises `jobs.churn.deployment.io.NoModel` when nothing answers."""
        from jobs.churn.deployment.io import download, load_scorer, resolve

        started = time.perf_counter()
        ref = resolve(self.client(), self.model_name, alias, version)
        with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
            model_dir = download(ref, Path(tmp) / "model", self.tracking_uri)
            scorer = load_scorer(model_dir)  # reads the JSON into memory: the folder can go
        seconds = time.perf_counter() - started
        log.info("loaded %s v%s (%s) in %.1f s", ref.name, ref.version, scorer.kind, seconds)
        return LoadedModel(ref, scorer, datetime.now(UTC), seconds)


def quiet_mlflow_client() -> None:
    """Few, short HTTP retries: an interactive app must not wait minutes for a dead server."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# --- look-ups for one customer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerSnapshot:
    customer_id: str
    snapshot_date: Any
    table_version: int
    features: dict[str, Any]


def customer_snapshot(
    path: str | Path, customer_id: str, features: tuple[str, ...], shares: Shares | None = None
) -> CustomerSnapshot | None:
    """The customer's row in the latest snapshot that has them, from THE feature table (no Spark); with
    a model's `shares`, its share inputs derived from the row's segment map with ITS vocabulary."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from jobs.churn.contract.features import SNAPSHOT
    from jobs.churn.features.io import arrow_dataset, open_version
    from jobs.churn.features.shares import with_shares

    table = open_version(path)
    names = table.schema().to_arrow().names
    wanted = [*features, *((shares.column, shares.total) if shares is not None else ())]
    columns = [ID, SNAPSHOT, *dict.fromkeys(c for c in wanted if c in names)]
    rows = arrow_dataset(table).to_table(columns=columns, filter=ds.field(ID) == str(customer_id))
    if rows.num_rows == 0:
        return None
    latest = rows.filter(pc.equal(rows[SNAPSHOT], pc.max(rows[SNAPSHOT]))).slice(0, 1).to_pandas()
    if shares is not None and shares.column in latest.columns:
        latest = with_shares(latest, shares)
    row = latest.iloc[0]
    values = {c: _plain(row[c]) if c in latest.columns else None for c in features}
    return CustomerSnapshot(str(customer_id), row[SNAPSHOT], table.version(), values)


def _plain(value: Any) -> Any:
    """A pandas cell as a plain Python value (NaN and NA as None)."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def batch_scores_of(conn, customer_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The customer's latest rows in prod.churn_scores (what the Spark batch job wrote), newest first."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT snapshot_date, probability, risk_band, model_version, model_alias, feature_version, scored_at "
            "FROM prod.churn_scores WHERE customer_id = %s ORDER BY snapshot_date DESC, scored_at DESC LIMIT %s",
            (customer_id, limit),
        )
        columns = [c.name for c in cur.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
