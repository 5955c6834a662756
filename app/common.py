"""What every page shares: settings, the production model (cached, reloaded when the alias moves), the
database, and one way to turn an outage into a message that says what to do.

Pages only lay out; the work is in `jobs.churn.serving`, `jobs.churn.monitoring.io` and the saved queries.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import streamlit as st

from jobs.churn.deployment.io import NoModel
from jobs.churn.serving.io import LoadedModel, MlflowUnavailable, ModelService, quiet_mlflow_client
from jobs.common.config import Settings, load_settings
from jobs.common.metrics import PrometheusUnavailable
from jobs.common.postgres import PostgresUnavailable

log = logging.getLogger("app")

HOW_TO_TRAIN = (
    "Train and promote a model first:\n"
    "- with the stack running: `make churn-train` (or `make churn-watchdog` after new files arrive);\n"
    "- on the embedded default: `make demo`;\n"
    "- by hand: `python -m jobs.churn.training` then `python -m jobs.churn.validation`."
)


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return load_settings()


@st.cache_resource(show_spinner=False)
def service(tracking_uri: str, model_name: str) -> ModelService:
    quiet_mlflow_client()  # on first use, not at import: short HTTP retries for an interactive app
    return ModelService(tracking_uri, model_name)


def model_service() -> ModelService:
    s = settings().mlflow
    return service(s.resolved_tracking_uri(), s.model_name)


# (tracking uri, model, alias) -> (version, monotonic time of the lookup); shared by every session
_ALIAS_LOOKUPS: dict[tuple[str, str, str], tuple[int | None, float]] = {}


def alias_version(tracking_uri: str, model_name: str, alias: str) -> int | None:
    """Which version holds the alias: asked again once APP_ALIAS_CHECK_SECONDS have passed (the
    automatic check), so a promotion reaches the app without a restart."""
    key = (tracking_uri, model_name, alias)
    cached = _ALIAS_LOOKUPS.get(key)
    if cached is not None and time.monotonic() - cached[1] < settings().app.alias_check_seconds:
        return cached[0]
    version = service(tracking_uri, model_name).version_of(alias)
    _ALIAS_LOOKUPS[key] = (version, time.monotonic())
    return version


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def load_version(tracking_uri: str, model_name: str, version: int) -> LoadedModel:
    return service(tracking_uri, model_name).load(alias=None, version=version)


def current_model() -> LoadedModel:
    """The model behind APP_MODEL_ALIAS now; raises NoModel / MlflowUnavailable (see `guard`)."""
    s = settings()
    uri, name, alias = s.mlflow.resolved_tracking_uri(), s.mlflow.model_name, s.app.model_alias
    version = alias_version(uri, name, alias)
    if version is None:
        raise NoModel(f"no version of {name} holds the alias {alias!r} in MLflow at {uri}")
    model = load_version(uri, name, version)
    previous = st.session_state.get("model_version")
    if previous is not None and previous != version:
        st.toast(f"{alias} moved from v{previous} to v{version}: model reloaded")
        log.info("alias %s moved v%s -> v%s", alias, previous, version)
    st.session_state["model_version"] = version
    return model


def reload_model() -> None:
    """The button: forget the alias lookup and the loaded versions; the next call asks MLflow again."""
    _ALIAS_LOOKUPS.clear()
    load_version.clear()


def sidebar(model: LoadedModel | None = None) -> None:
    s = settings()
    with st.sidebar:
        st.caption(f"MLflow: `{s.mlflow.resolved_tracking_uri()}`")
        if model is not None:
            st.caption(
                f"Model: **{model.ref.name} v{model.ref.version}** (@{s.app.model_alias}, "
                f"{model.scorer.kind}), loaded {model.loaded_at:%H:%M:%S} UTC; the alias is checked "
                f"every {s.app.alias_check_seconds:g} s"
            )
        if st.button("Reload model", help="look the alias up now and load the version it points to"):
            reload_model()
            st.rerun()


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Known outages become one clear message (and the page stops); anything else is a real bug."""
    try:
        yield
    except NoModel as exc:
        st.warning(f"**No production model.** {exc}.\n\n{HOW_TO_TRAIN}")
        st.stop()
    except MlflowUnavailable as exc:
        st.error(f"**MLflow is not reachable** while loading {what}: {exc}")
        st.stop()
    except PostgresUnavailable as exc:
        st.error(f"**PostgreSQL is not reachable** while loading {what}: {exc}")
        st.stop()
    except PrometheusUnavailable as exc:
        st.error(f"**Prometheus is not reachable** while loading {what}: {exc}")
        st.stop()


def model_page(title: str) -> LoadedModel:
    """A page that needs the production model: title, the model (or the message why there is none), sidebar."""
    st.set_page_config(page_title=title, layout="wide")
    st.title(title)
    with guard("the production model"):
        model = current_model()
    sidebar(model)
    return model


@st.cache_resource(ttl=60, show_spinner=False)
def business_server():
    """Which server holds the business database (configured or embedded): probed once a minute, not
    before every query (a probe is a connection of its own). A failure is not cached."""
    from jobs.common.postgres import find_server

    return find_server(settings().postgres)


def database():
    """A short-lived read connection to the business database, as the analyst (the app only reads)."""
    import psycopg

    from jobs.common.postgres import connect

    pg = business_server()
    try:
        return connect(pg, role="analyst")
    except psycopg.OperationalError as exc:
        raise PostgresUnavailable(f"database {pg.db} on {pg.host}:{pg.port}: {exc}".strip()) from exc


def query(name: str, limit: int | None = None, where: dict | None = None):
    """A saved query's rows (`where`: columns equal to values); a database without the project's tables says
    to initialise it."""
    import psycopg

    from jobs.common.queries import run_saved

    try:
        with database() as conn:
            return run_saved(conn, name, limit, where)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        db = settings().postgres.db
        raise PostgresUnavailable(
            f"database {db} has no project tables ({exc.diag.message_primary}): run `make init` or `make demo`"
        ) from exc


def fact(column, label: str, value: str, note: str | None = None) -> None:
    """A figure with a neutral note under it (no up/down arrow: the note is not a change)."""
    column.metric(label, value, note, delta_color="off", delta_arrow="off")


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms = (time.perf_counter() - self.started) * 1000
