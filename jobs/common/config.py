"""Typed configuration, read once from the environment and the project's `.env` (development defaults).

Environment variables win over `.env`. Nothing here runs at import time: call `load_settings()`.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = PROJECT_ROOT / ".env"

CsvList = Annotated[list[str], NoDecode]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _project_path(value: Path) -> Path:
    """Relative paths in settings are relative to the project root, not to the caller's cwd."""
    return value if value.is_absolute() else PROJECT_ROOT / value


class _Section(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", frozen=True)


Role = Literal["loader", "analyst", "admin"]


class PostgresSettings(_Section):
    """One server and business database, and the three roles that log in to it.

    - ``loader`` (`kpi_loader`): what jobs and services connect as: reads and writes rows, no DDL.
    - ``analyst`` (`kpi_analyst`): reads only (pgAdmin users, the app).
    - ``admin`` (POSTGRES_USER, a superuser): only to create the databases and roles and apply the init
      DDL (`python -m jobs.common.postgres init`, `make init`, `make demo`), never by a job.
    Passwords come from the environment or `.env`; with trust authentication they may be empty.
    """

    model_config = SettingsConfigDict(env_prefix="POSTGRES_")

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "postgres"  # the admin
    password: SecretStr = SecretStr("")
    db: str = "kpidelivery"
    embedded: Literal["auto", "never", "always"] = "auto"
    # the role names are fixed by database/sql/init/00_roles.sql; their passwords are settings
    loader_user: ClassVar[str] = "kpi_loader"
    analyst_user: ClassVar[str] = "kpi_analyst"
    loader_password: SecretStr = Field(SecretStr(""), validation_alias="KPI_LOADER_PASSWORD")
    analyst_password: SecretStr = Field(SecretStr(""), validation_alias="KPI_ANALYST_PASSWORD")

    @field_validator("db")
    @classmethod
    def _own_database(cls, value: str) -> str:
        if value in {"postgres", "template0", "template1", "test"}:
            raise ValueError(f"business data needs its own database, not {value!r}")
        return value

    def credentials(self, role: Role = "loader") -> tuple[str, str]:
        """(user, password) of a role; the password is "" when none is set."""
        user, secret = {
            "loader": (self.loader_user, self.loader_password),
            "analyst": (self.analyst_user, self.analyst_password),
            "admin": (self.user, self.password),
        }[role]
        return user, secret.get_secret_value()

    def conninfo(self, dbname: str | None = None, role: Role = "loader") -> str:
        user, password = self.credentials(role)
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": user,
            "dbname": dbname or self.db,
            "connect_timeout": "5",
            "application_name": "kpidelivery",
        }
        if password:
            parts["password"] = password
        return " ".join(f"{k}='{_quote(v)}'" for k, v in parts.items())

    def url(self, dbname: str, driver: str = "postgresql+psycopg2", role: Role = "loader") -> str:
        """A SQLAlchemy-style URL (Airflow's metadata database, MLflow's store) for one role."""
        from urllib.parse import quote

        user, password = self.credentials(role)
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}" if password else quote(user, safe="")
        return f"{driver}://{auth}@{self.host}:{self.port}/{dbname}"

    def jdbc_url(self) -> str:
        # stringtype=unspecified lets text parameters land in uuid/date columns; batched rewrites are
        # ~2x faster for Spark's JDBC appends (DESIGN.md).
        return (
            f"jdbc:postgresql://{self.host}:{self.port}/{self.db}"
            "?reWriteBatchedInserts=true&stringtype=unspecified&ApplicationName=kpidelivery-spark"
        )

    def jdbc_properties(self) -> dict[str, str]:
        """Spark reads and writes as the loader, like every job."""
        user, password = self.credentials("loader")
        props = {"user": user, "driver": "org.postgresql.Driver"}
        if password:
            props["password"] = password
        return props


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class SparkSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="SPARK_")

    master_url: str = "local[*]"
    driver_memory: str = "1g"
    executor_memory: str = "1g"
    shuffle_partitions: int = Field(8, ge=1)
    jdbc_jar: Path = Path("/usr/share/java/postgresql.jar")
    event_log_dir: Path = Path("var/spark-events")
    # JVM options of every driver and executor a job starts (SPARK_JVM_OPTIONS). Empty: the JVM's defaults,
    # right for long jobs on real data. For short jobs on small data (the tests, the demo) the C2 JIT costs
    # more than it wins: `-XX:TieredStopAtLevel=1` takes a short job's CPU to x0.64 (`make bench-jvm`).
    jvm_options: str = ""

    @field_validator("master_url")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not (value.startswith(("local", "spark://"))):
            raise ValueError(f"SPARK_MASTER_URL must be local[...] or spark://host:port, got {value!r}")
        return value

    _absolute = field_validator("event_log_dir")(_project_path)


class ObjectStoreSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="")

    s3_endpoint_url: str | None = None
    # credentials have no default here: they come from the environment or `.env` (development values)
    s3_access_key_id: str
    s3_secret_access_key: SecretStr
    s3_region: str = "us-east-1"
    object_store_local_root: Path = Path("var/objectstore")
    ge_artifacts_bucket: str = "ge-artifacts"
    mlflow_artifacts_bucket: str = "mlflow-artifacts"  # drift reports go under drift-reports/<date>/

    @field_validator("s3_endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None

    _absolute = field_validator("object_store_local_root")(_project_path)


class CryptoSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="CRYPTO_")

    # upstream's history table as the task defines it (six columns; inserted_at/updated_at used when present)
    source_table: str = "raw.bt_crypto_transaction_history"
    window_days: int = Field(5, ge=1, le=60)
    # day-first as upstream is Argentine: d/M/yyyy reads 1/2/2023 (1 February) and 01/02/2023 alike
    date_formats: CsvList = ["d/M/yyyy", "yyyy-MM-dd", "yyyyMMdd"]
    known_sites: CsvList = ["MLA", "MLB", "MLC", "MCO", "MLM", "MLU", "MPE"]
    known_cryptos: CsvList = ["BTC", "ETH", "USDT", "USDC", "SOL", "ADA", "XRP", "DOGE"]
    price_tolerance: float = Field(3.0, gt=1.0)
    # a purchase date before this, or more than max_future_days after the day the job runs, fits no window:
    # such a row is quarantined once (by the first merged run that sees it), never silently ignored
    earliest_date: date = date(2009, 1, 3)  # the first Bitcoin block
    max_future_days: int = Field(30, ge=0, le=3660)
    landing_retention_days: int = Field(35, ge=1)  # each run's landing snapshot is kept this long
    # a second run of a window waits this long for the first to finish, then refuses (exit 4)
    run_lock_wait_seconds: float = Field(120.0, ge=0.0, le=86_400.0)
    simulate_upstream: bool = False  # the DAG lets the generator play upstream first (development only)
    gate_max_reject_share: float = Field(0.20, ge=0.0, le=1.0)
    gate_min_rows: int = Field(1, ge=0)
    gate_max_rule_share: float = Field(0.10, ge=0.0, le=1.0)
    gate_critical: CsvList = ["schema", "row_count", "reject_share"]
    gen_seed: int = 42
    gen_events_per_day: int = Field(2000, ge=1)
    gen_defect_share: float = Field(0.05, ge=0.0, le=0.9)
    # days of history before the first window a new simulated upstream starts with (backfills need them)
    gen_history_days: int = Field(30, ge=0, le=3660)

    _split = field_validator("date_formats", "known_sites", "known_cryptos", "gate_critical", mode="before")(
        _split_csv
    )

    @field_validator("known_sites", "known_cryptos")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.upper() for v in value]

    @field_validator("date_formats")
    @classmethod
    def _formats_supported(cls, value: list[str]) -> list[str]:
        from jobs.common.dates import date_formats  # local: keeps import light

        date_formats(value)  # a clear ValueError for unsupported or contradicting patterns
        return value

    def window(self, logical_date: date, window_days: int | None = None) -> tuple[date, date]:
        from datetime import timedelta

        days = window_days or self.window_days
        return logical_date - timedelta(days=days - 1), logical_date

    def date_bounds(self, logical_date: date, today: date) -> tuple[date, date]:
        """The plausible history: no purchase is dated after the day the job runs (`today`, or the logical
        date when later), give or take `max_future_days` of clock and time-zone skew."""
        from datetime import timedelta

        return self.earliest_date, max(logical_date, today) + timedelta(days=self.max_future_days)


class ChurnSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="CHURN_")

    source_dir: Path = Path("var/churn/source")
    max_file_mb: int = Field(4096, ge=1)  # a larger source file is refused before it is read
    lake_dir: Path = Path("var/lake")  # Delta tables (feature snapshots): Spark writes, delta-rs commits
    spec: str = "churn.yaml"  # a path, or a file name under jobs/churn/contract/specs/
    # payments older than this before the as-of date, or on/after as-of + horizon, are out of range
    history_months: int = Field(12, ge=6, le=120)
    horizon_months: int = Field(2, ge=1, le=12)
    # accepted shapes of FECHA, last_login_mp_date_1 and RECENCY_ML (Spark patterns, jobs.common.dates)
    date_formats: CsvList = ["yyyy-MM-dd", "d/M/yyyy", "yyyyMMdd"]
    # TPV_SEGMENT_DETAIL is an open vocabulary: other values are valid, their share is a warning expectation
    known_segments: CsvList = ["Instore", "Transport", "Utilities", "transfers", "top-ups", "Online"]
    gate_max_unknown_segment_share: float = Field(0.05, ge=0.0, le=1.0)
    gate_max_reject_share: float = Field(0.05, ge=0.0, le=1.0)
    gate_min_rows: int = Field(1, ge=0)
    gate_max_rule_share: float = Field(0.02, ge=0.0, le=1.0)
    gate_critical: CsvList = ["schema", "row_count", "reject_share"]
    # the challenger replaces production when its test AUC is higher by at least this margin
    promotion_margin: float = Field(0.002, ge=0.0, le=1.0)
    # risk bands: probability < first = low, < second = medium, else high
    risk_bands: CsvList = ["0.3", "0.6"]

    _split = field_validator("date_formats", "known_segments", "gate_critical", "risk_bands", mode="before")(
        _split_csv
    )
    _absolute = field_validator("source_dir", "lake_dir")(_project_path)

    @field_validator("date_formats")
    @classmethod
    def _formats_supported(cls, value: list[str]) -> list[str]:
        from jobs.common.dates import date_formats  # local: keeps import light

        date_formats(value)  # a clear ValueError for unsupported or contradicting patterns
        return value

    @field_validator("risk_bands")
    @classmethod
    def _bands(cls, value: list[str]) -> list[str]:
        cuts = [float(v) for v in value]
        if len(cuts) != 2 or not 0 < cuts[0] < cuts[1] < 1:
            raise ValueError(f"CHURN_RISK_BANDS must be two increasing probabilities in (0, 1), got {value}")
        return value

    @property
    def band_cuts(self) -> tuple[float, float]:
        low, high = (float(v) for v in self.risk_bands)
        return low, high


class DriftSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="DRIFT_")

    sample_rows: int = Field(20_000, ge=100)  # rows per side fed to Evidently (Spark samples them)
    # severity by share of drifted columns: >= moderate, >= severe, >= critical
    share_thresholds: CsvList = ["0.1", "0.3", "0.5"]
    # severity by how many of the model's top features (mean |SHAP|) drifted: >= 1, >= 2, >= 3
    important_features: int = Field(5, ge=1)
    important_thresholds: CsvList = ["1", "2", "3"]
    # severity by how far the worst column drifted beyond its own threshold (distance / threshold; for a
    # p-value log(p) / log(threshold)): >= 2x moderate, >= 4x severe, >= 8x critical
    magnitude_thresholds: CsvList = ["2", "4", "8"]

    _split = field_validator(
        "share_thresholds", "important_thresholds", "magnitude_thresholds", mode="before"
    )(_split_csv)

    @field_validator("share_thresholds", "important_thresholds", "magnitude_thresholds")
    @classmethod
    def _three_increasing(cls, value: list[str]) -> list[str]:
        cuts = [float(v) for v in value]
        if len(cuts) != 3 or cuts != sorted(cuts) or len(set(cuts)) != 3 or cuts[0] <= 0:
            raise ValueError(
                f"three increasing positive thresholds (moderate, severe, critical) expected, got {value}"
            )
        return value

    @field_validator("magnitude_thresholds")
    @classmethod
    def _beyond_the_threshold(cls, value: list[str]) -> list[str]:
        if float(value[0]) < 1:  # below 1x a column has not drifted at all
            raise ValueError(f"magnitudes are multiples of a column's threshold, >= 1 expected, got {value}")
        return value

    @property
    def share_cuts(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.share_thresholds)  # type: ignore[return-value]

    @property
    def important_cuts(self) -> tuple[int, int, int]:
        return tuple(int(float(v)) for v in self.important_thresholds)  # type: ignore[return-value]

    @property
    def magnitude_cuts(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.magnitude_thresholds)  # type: ignore[return-value]


class MlflowSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="MLFLOW_")

    # empty = MLflow on local storage (SQLite + a folder under var/mlflow), the embedded default
    tracking_uri: str | None = None
    experiment: str = "churn_retention"
    model_name: str = "churn_model"
    local_dir: Path = Path("var/mlflow")

    _empty_is_none = field_validator("tracking_uri", mode="before")(lambda v: v or None)
    _absolute = field_validator("local_dir")(_project_path)

    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.local_dir / 'mlflow.db'}"

    def local_artifact_root(self) -> str | None:
        """Where runs keep artifacts when MLflow runs on local storage (a server decides for itself)."""
        return None if self.tracking_uri else (self.local_dir / "artifacts").as_uri()


class StackSettings(_Section):
    """The native stack (`make up STACK=native`): real processes on this machine, ports as in compose."""

    model_config = SettingsConfigDict(env_prefix="STACK_")

    dir: Path = Path("var/stack")  # pids, logs, AIRFLOW_HOME; git-ignored
    host: str = "127.0.0.1"
    airflow_port: int = Field(8080, ge=1, le=65535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    s3_port: int = Field(9000, ge=1, le=65535)  # moto's S3 server here, MinIO's API in compose
    spark_master_port: int = Field(7077, ge=1, le=65535)
    spark_ui_port: int = Field(8082, ge=1, le=65535)
    spark_worker_ui_port: int = Field(8083, ge=1, le=65535)
    spark_history_port: int = Field(18080, ge=1, le=65535)
    worker_cores: int = Field(2, ge=1)
    worker_memory: str = "3g"
    celery_concurrency: int = Field(2, ge=1)
    # a failed task's first retry waits this long, each later one twice the one before, up to the maximum
    task_retry_delay_seconds: int = Field(30, ge=0)
    max_task_retry_delay_seconds: int = Field(600, ge=0)
    redis_url: str = "redis://127.0.0.1:6379/0"
    jupyter_port: int = Field(8888, ge=1, le=65535)
    serving_port: int = Field(5001, ge=1, le=65535)  # the REST scoring API (`mlflow models serve`)
    prometheus_port: int = Field(9090, ge=1, le=65535)
    pushgateway_port: int = Field(9091, ge=1, le=65535)
    postgres_exporter_port: int = Field(9187, ge=1, le=65535)
    redis_exporter_port: int = Field(9121, ge=1, le=65535)
    node_exporter_port: int = Field(9100, ge=1, le=65535)
    # secrets have no default here: they come from the environment or `.env` (development values)
    jupyter_token: SecretStr
    airflow_user: str = "admin"
    airflow_password: SecretStr
    jwt_secret: SecretStr  # shared by every Airflow process

    _absolute = field_validator("dir")(_project_path)

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def spark_master_url(self) -> str:
        return f"spark://{self.host}:{self.spark_master_port}"


class MetricsSettings(_Section):
    """Every job run pushes its figures to a Prometheus Pushgateway when it ends (jobs/common/metrics.py,
    docs/operations.md); Prometheus scrapes the gateway and evaluates the alert rules."""

    model_config = SettingsConfigDict(env_prefix="METRICS_")

    pushgateway_url: str = ""  # http://127.0.0.1:9091 in the stacks; empty: the figures are only logged
    push_timeout_seconds: float = Field(5.0, gt=0)
    prometheus_url: str = ""  # http://127.0.0.1:9090: what the app's Operations page queries
    # how often the stack's Prometheus scrapes and evaluates the alert rules
    scrape_interval_seconds: int = Field(15, ge=1)


class PgAdminSettings(_Section):
    """pgAdmin 4 in server mode (native stack: its own virtualenv, compose: the official image)."""

    model_config = SettingsConfigDict(env_prefix="PGADMIN_")

    port: int = Field(8081, ge=1, le=65535)
    default_email: str = "admin@kpidelivery.dev"
    default_password: SecretStr  # from the environment or `.env` (a development value)
    venv: Path = Path(".venv-pgadmin")  # its own virtualenv: its pins clash with the project's (DESIGN.md)

    _absolute = field_validator("venv")(_project_path)


class AppSettings(_Section):
    """The Streamlit app (`python -m app`, `make app`)."""

    model_config = SettingsConfigDict(env_prefix="APP_")

    host: str = "127.0.0.1"  # 0.0.0.0 in a container
    port: int = Field(8601, ge=1, le=65535)
    model_alias: str = "production"  # the alias the app scores with
    alias_check_seconds: float = Field(30.0, gt=0)  # how often the alias is looked up again
    max_upload_mb: int = Field(20, ge=1)


class ServingSettings(_Section):
    """The REST scoring API (`python -m jobs.churn.serving`, docs/serving.md); it listens on STACK_HOST and
    STACK_SERVING_PORT unless told otherwise."""

    model_config = SettingsConfigDict(env_prefix="SERVING_")

    model_alias: str = "production"  # the alias served; a move is picked up within alias_poll_seconds
    alias_poll_seconds: float = Field(10.0, gt=0)
    max_rows: int = Field(1000, ge=1)  # rows per request: more is refused (413); the batch job scores many
    max_body_mb: float = Field(8.0, gt=0)  # a larger request body is refused (413) before it is parsed


class Settings:
    """All sections, each read lazily; `load_settings()` is the one way to get one."""

    @cached_property
    def postgres(self) -> PostgresSettings:
        return PostgresSettings()

    @cached_property
    def spark(self) -> SparkSettings:
        return SparkSettings()

    @cached_property
    def object_store(self) -> ObjectStoreSettings:
        return ObjectStoreSettings()

    @cached_property
    def crypto(self) -> CryptoSettings:
        return CryptoSettings()

    @cached_property
    def churn(self) -> ChurnSettings:
        return ChurnSettings()

    @cached_property
    def mlflow(self) -> MlflowSettings:
        return MlflowSettings()

    @cached_property
    def drift(self) -> DriftSettings:
        return DriftSettings()

    @cached_property
    def app(self) -> AppSettings:
        return AppSettings()

    @cached_property
    def metrics(self) -> MetricsSettings:
        return MetricsSettings()

    @cached_property
    def stack(self) -> StackSettings:
        return StackSettings()

    @cached_property
    def pgadmin(self) -> PgAdminSettings:
        return PgAdminSettings()

    @cached_property
    def serving(self) -> ServingSettings:
        return ServingSettings()


def load_settings() -> Settings:
    return Settings()


def describe_settings_error(err: ValidationError, section: type[BaseSettings]) -> str:
    """One line per wrong setting, named as the user sets it (`CRYPTO_DATE_FORMATS: ...`), no traceback."""
    prefix = section.model_config.get("env_prefix", "")
    lines = []
    for item in err.errors():
        name = f"{prefix}{'_'.join(str(p) for p in item['loc'])}".upper() if item["loc"] else section.__name__
        lines.append(f"{name}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)
