"""The `make` verbs that drive a running stack (native or compose) through Airflow's REST API.

    python -m infrastructure.control dag-run [--date D]          crypto_events_dag for logical date D
    python -m infrastructure.control dag-status [DAG ...]         latest runs and their task states
    python -m infrastructure.control churn-watchdog               new/changed files -> asset -> training
    python -m infrastructure.control churn-train [--snapshot T] [--spec S]
    python -m infrastructure.control churn-drift [--date D]       weekly drift monitor, now
    python -m infrastructure.control mlops-run [--date D]         all of the above, in order

A DAG you trigger is unpaused first (the stack creates DAGs paused). Each verb waits for the run, prints
its task states and what it produced (counts from PostgreSQL, the registered model, the drift verdict),
and exits non-zero when the run failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from jobs.common.config import Settings, load_settings
from jobs.common.orchestration import SCHEDULES
from jobs.common.orchestration import TIMEZONE as ORCHESTRATION_TIMEZONE

log = logging.getLogger("kpidelivery.control")

TERMINAL = {"success", "failed"}
CRYPTO, WATCHDOG, TRAINING, DRIFT = (
    "crypto_events_dag", "churn_data_watchdog", "churn_training_dag", "churn_drift_monitor_w",
)  # fmt: skip
DAGS = (CRYPTO, WATCHDOG, TRAINING, DRIFT)
TIMEZONE = ZoneInfo(ORCHESTRATION_TIMEZONE)


class AirflowError(RuntimeError):
    """Airflow answered with an error (`status`), or not at all (status None): the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AirflowClient:
    """The calls the verbs make, on the official Airflow REST client (`apache-airflow-client`, the version of
    Airflow). Only the simple auth manager's token is fetched by hand (the client has no call for it); it is
    fetched again once when it expires."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 30.0) -> None:
        from airflow_client import client as airflow_api

        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": user, "password": password}
        self._timeout = timeout
        self._config = airflow_api.Configuration(host=self.base_url)
        api_client = airflow_api.ApiClient(self._config)
        self.dags = airflow_api.DAGApi(api_client)
        self.dag_runs = airflow_api.DagRunApi(api_client)
        self.task_instances = airflow_api.TaskInstanceApi(api_client)
        self.xcoms = airflow_api.XComApi(api_client)
        self.monitor = airflow_api.MonitorApi(api_client)

    def _login(self) -> None:
        request = urllib.request.Request(
            self.base_url + "/auth/token",
            data=json.dumps(self._credentials).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                self._config.access_token = json.loads(response.read())["access_token"]
        except urllib.error.HTTPError as exc:
            answer = exc.read().decode(errors="replace")[:300]
            raise AirflowError(f"POST /auth/token -> {exc.code}: {answer}", exc.code) from exc
        except OSError as exc:  # refused, timed out
            raise AirflowError(
                f"POST /auth/token: Airflow does not answer at {self.base_url}: {exc}"
            ) from exc

    def _call(self, method, *args, **kwargs):
        """One call, logged in first, again once on 401 (the token expired); errors as AirflowError."""
        from airflow_client.client.exceptions import ApiException, UnauthorizedException
        from urllib3.exceptions import HTTPError

        if self._config.access_token is None:
            self._login()
        try:
            try:
                return method(*args, **kwargs, _request_timeout=self._timeout)
            except UnauthorizedException:
                self._login()
                return method(*args, **kwargs, _request_timeout=self._timeout)
        except ApiException as exc:
            raise AirflowError(
                f"{method.__name__}{args} -> {exc.status}: {(exc.body or '')[:500]}", exc.status
            ) from exc
        except HTTPError as exc:  # no answer: refused, timed out
            raise AirflowError(
                f"{method.__name__}{args}: Airflow does not answer at {self.base_url}: {exc}"
            ) from exc

    def health(self):
        return self._call(self.monitor.get_health)

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0):
        """The dag-processor parses files asynchronously: wait until the DAG is known."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._call(self.dags.get_dag, dag_id)
            except AirflowError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        from airflow_client.client import DAGPatchBody

        self._call(self.dags.patch_dag, dag_id, DAGPatchBody(is_paused=False))

    def trigger(self, dag_id: str, logical_date: datetime | None, conf: dict | None = None) -> str:
        from airflow_client.client import TriggerDAGRunPostBody

        stamp = (logical_date or datetime.now(TIMEZONE)).strftime("%Y-%m-%dT%H%M%S")
        body = TriggerDAGRunPostBody(
            dag_run_id=f"manual__{stamp}__{uuid.uuid4().hex[:6]}", logical_date=logical_date, conf=conf or {}
        )
        return self._call(self.dag_runs.trigger_dag_run, dag_id, body).dag_run_id

    def rerun(self, dag_id: str, logical_date: datetime) -> str:
        """Clears the existing run of that logical date (one run per logical date), so it runs again."""
        from airflow_client.client import DAGRunClearBody

        (existing,) = self._call(
            self.dag_runs.get_dag_runs, dag_id, logical_date_gte=logical_date, logical_date_lte=logical_date
        ).dag_runs
        self._call(self.dag_runs.clear_dag_run, dag_id, existing.dag_run_id, DAGRunClearBody(dry_run=False))
        return existing.dag_run_id

    def pending_slot(self, dag_id: str, now: datetime) -> datetime | None:
        """The scheduled slot the scheduler would run as soon as the DAG is unpaused (catchup=False runs the
        latest past one), if it has passed: triggering exactly that slot keeps it from running twice."""
        slot = self.wait_for_dag(dag_id).next_dagrun_logical_date
        return slot if slot is not None and slot <= now else None

    def state(self, dag_id: str, run_id: str) -> str:
        return _value(self._call(self.dag_runs.get_dag_run, dag_id, run_id).state)

    def runs(self, dag_id: str, limit: int = 5) -> list:
        """The latest runs (DAGRunResponse: .dag_run_id, .state, ...), newest first."""
        return self._call(self.dag_runs.get_dag_runs, dag_id, limit=limit, order_by=["-run_after"]).dag_runs

    def _task_instances(self, dag_id: str, run_id: str) -> list:
        return self._call(self.task_instances.get_task_instances, dag_id, run_id).task_instances

    def task_states(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        return {t.task_id: (_value(t.state), t.try_number) for t in self._task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        return self._call(
            self.xcoms.get_xcom_entry, dag_id, task_id, run_id, "return_value"
        ).actual_instance.value

    def _log_overhead(self, dag_id: str, run_id: str, wall: float) -> None:
        busy = [t.duration or 0.0 for t in self._task_instances(dag_id, run_id)]
        log.info("%s %s: %.0f s from trigger to the end, %.0f s in tasks, orchestration overhead %.0f s",
                 dag_id, run_id, wall, sum(busy), _overhead(wall, busy))  # fmt: skip

    def wait(self, dag_id: str, run_id: str, timeout: float = 3600.0, poll: float = 3.0) -> str:
        """Polls until the run is terminal; logs each change of task states with the elapsed time."""
        began, last = time.monotonic(), None
        while True:
            state = self.state(dag_id, run_id)
            tasks = self.task_states(dag_id, run_id)
            summary = ", ".join(
                f"{t}={s or 'none'}" + (f"(try {n})" if n > 1 else "") for t, (s, n) in tasks.items()
            )
            if (state, summary) != last:
                log.info(
                    "%s %s: %s [%s] after %.0f s", dag_id, run_id, state, summary, time.monotonic() - began
                )
                last = (state, summary)
            if state in TERMINAL:
                self._log_overhead(dag_id, run_id, time.monotonic() - began)
                return state
            if time.monotonic() - began > timeout:
                raise AirflowError(f"{dag_id} {run_id} not finished after {timeout:.0f} s (state {state})")
            time.sleep(poll)


def _value(state) -> str | None:
    """A run or task state as its name (the client's enums), None while it has none."""
    return getattr(state, "value", state)


def _overhead(wall: float, task_seconds: list[float]) -> float:
    """Orchestration overhead of a run whose tasks run one after another: wall time minus task time."""
    return wall - sum(task_seconds)


def client(settings: Settings) -> AirflowClient:
    st = settings.stack
    return AirflowClient(st.airflow_url, st.airflow_user, st.airflow_password.get_secret_value())


def logical_datetime(dag_id: str, day: date) -> datetime:
    """The DAG's scheduled time of day (its cron, SCHEDULES) on `day`, so `{{ ds }}` is `day` and a
    scheduled run of that slot is the same run (the scheduler does not create a second one for a logical
    date that already has a run)."""
    minute, hour = SCHEDULES[dag_id].split()[:2]
    return datetime(day.year, day.month, day.day, int(hour), int(minute), tzinfo=TIMEZONE)


def latest_slot(dag_id: str, now: datetime) -> date:
    """The day of the most recent scheduled time that has passed (now included): each verb's default."""
    from croniter import croniter

    after = now.astimezone(TIMEZONE) + timedelta(microseconds=1)
    return croniter(SCHEDULES[dag_id], after).get_prev(datetime).date()


def trigger_and_wait(
    api: AirflowClient, dag_id: str, logical: datetime | None, conf: dict | None = None
) -> tuple[str, str]:
    """Triggers (or, when that logical date already has a run, re-runs) then unpauses, so the scheduler's
    own catch-up of the same slot does not duplicate it, and waits for the run to finish."""
    api.wait_for_dag(dag_id)
    try:
        run_id = api.trigger(dag_id, logical, conf)
        log.info("triggered %s run %s", dag_id, run_id)
    except AirflowError as exc:
        if exc.status != 409 or logical is None:
            raise
        run_id = api.rerun(dag_id, logical)
        log.info("%s already had a run for %s: cleared %s to run it again", dag_id, logical, run_id)
    api.unpause(dag_id)
    return run_id, api.wait(dag_id, run_id)


def slot_for(api: AirflowClient, dag_id: str, day: date | None, now: datetime) -> datetime:
    """An explicit date at the DAG's scheduled time; else the slot pending since the DAG was paused; else
    the latest scheduled slot (a re-run of it)."""
    if day is not None:
        return logical_datetime(dag_id, day)
    return api.pending_slot(dag_id, now) or logical_datetime(dag_id, latest_slot(dag_id, now))


# --- what a run produced ----------------------------------------------------------------------------------------


def crypto_counts(settings: Settings, run_id: str) -> dict | None:
    from jobs.common.postgres import connect

    with connect(settings.postgres) as conn:
        cur = conn.execute(
            "SELECT logical_date, status, rows_read, rows_valid, rows_rejected, rows_inserted, rows_updated, "
            "rows_deactivated, rows_reactivated FROM dqm.dq_runs WHERE dag_run_id = %s "
            "ORDER BY started_at DESC LIMIT 1",
            (run_id,),
        )
        row = cur.fetchone()
        return dict(zip([c.name for c in cur.description], row, strict=True)) if row else None


def churn_counts(settings: Settings, snapshot: str) -> dict:
    from jobs.common.postgres import connect

    with connect(settings.postgres) as conn:
        batches = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'loaded'), coalesce(sum(rows_rejected), 0) "
            "FROM dqm.churn_batches WHERE as_of = %s", (snapshot,),
        ).fetchone()  # fmt: skip
        scores = conn.execute(
            "SELECT count(*), max(model_version) FROM prod.churn_scores WHERE snapshot_date = %s", (snapshot,)
        ).fetchone()
    return {"batches_loaded": batches[0], "rows_rejected": int(batches[1]), "scored": scores[0],
            "model_version": scores[1]}  # fmt: skip


def drift_summary(settings: Settings, day: str) -> dict | None:
    from jobs.churn.monitoring.io import read_summary

    return read_summary(
        settings.object_store.model_copy(update={"s3_endpoint_url": settings.stack.s3_url}), day
    )


# --- verbs ------------------------------------------------------------------------------------------------------


def dag_run(settings: Settings, api: AirflowClient, logical: datetime) -> bool:
    run_id, state = trigger_and_wait(api, CRYPTO, logical)
    print(f"{CRYPTO} {run_id} ({logical.astimezone(TIMEZONE).date()}): {state}")
    print(f"  dqm.dq_runs: {crypto_counts(settings, run_id)}")
    return state == "success"


def churn_train(settings: Settings, api: AirflowClient, snapshot: str, spec: str) -> bool:
    """An on-demand training run; no snapshot: the run picks the latest the source files label."""
    run_id, state = trigger_and_wait(api, TRAINING, None, {"snapshot": snapshot or None, "spec": spec})
    report_training(settings, api, run_id, state)
    return state == "success"


def report_training(settings: Settings, api: AirflowClient, run_id: str, state: str) -> None:
    print(f"{TRAINING} {run_id}: {state}")
    if state != "success":
        return
    snapshot = api.xcom(TRAINING, run_id, "snapshot")  # what the run resolved and trained on
    print(f"  snapshot: {snapshot}")
    print(f"  promotion: {api.xcom(TRAINING, run_id, 'promote')}")
    print(f"  {churn_counts(settings, snapshot)}")


def churn_watchdog(settings: Settings, api: AirflowClient, follow: bool = True) -> bool:
    """Runs the watchdog; when it emitted the asset, waits for the training run the asset scheduled."""
    api.wait_for_dag(TRAINING)
    api.unpause(TRAINING)  # it listens for the asset
    before = {r.dag_run_id for r in api.runs(TRAINING, limit=20)}
    run_id, state = trigger_and_wait(api, WATCHDOG, api.pending_slot(WATCHDOG, datetime.now(TIMEZONE)))
    detect = api.task_states(WATCHDOG, run_id).get("detect_new_files", (None, 0))[0]
    print(f"{WATCHDOG} {run_id}: {state} (detect_new_files: {detect})")
    if state != "success" or detect != "success" or not follow:
        return state == "success"
    deadline = time.monotonic() + 120
    while not (new := [r for r in api.runs(TRAINING, limit=20) if r.dag_run_id not in before]):
        if time.monotonic() > deadline:
            print(f"  the asset event scheduled no {TRAINING} run within 120 s")
            return False
        time.sleep(2)
    training = new[0]
    log.info("the asset event scheduled %s run %s", TRAINING, training.dag_run_id)
    state = api.wait(TRAINING, training.dag_run_id)
    report_training(settings, api, training.dag_run_id, state)
    return state == "success"


def churn_drift(settings: Settings, api: AirflowClient, logical: datetime) -> bool:
    day = logical.astimezone(TIMEZONE).date()
    run_id, state = trigger_and_wait(api, DRIFT, logical)
    tasks = api.task_states(DRIFT, run_id)
    print(f"{DRIFT} {run_id}: {state} ({', '.join(f'{t}={s}' for t, (s, _) in tasks.items())})")
    summary = drift_summary(settings, day.isoformat())
    if summary:
        print(f"  severity={summary.get('severity')} retrain={summary.get('retrain')} "
              f"drifted={summary.get('drifted_columns')}")  # fmt: skip
    return state == "success"


def dag_status(api: AirflowClient, dag_ids: list[str]) -> None:
    for dag_id in dag_ids:
        try:
            runs = api.runs(dag_id, limit=3)
        except AirflowError as exc:
            print(f"{dag_id}: {exc}")
            continue
        print(f"{dag_id}: {len(runs)} recent run(s)")
        for r in runs:
            tasks = api.task_states(dag_id, r.dag_run_id)
            print(
                f"  {r.dag_run_id:<52} {_value(r.state):<8} "
                + " ".join(f"{t}={s}" for t, (s, _) in tasks.items())
            )


def main(argv: list[str] | None = None) -> int:
    from jobs.common.logs import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m infrastructure.control", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "verb", choices=("dag-run", "dag-status", "churn-watchdog", "churn-train", "churn-drift", "mlops-run")
    )
    parser.add_argument("dags", nargs="*", help="dag-status: DAG ids (default: all four)")
    parser.add_argument(
        "--date", type=date.fromisoformat, help="logical date (default: the latest scheduled one)"
    )
    parser.add_argument(
        "--snapshot",
        default="",
        help="churn-train: snapshot date T (default: the latest the source files label)",
    )
    parser.add_argument("--spec", default="", help="churn-train: training spec (default: CHURN_SPEC)")
    args = parser.parse_args(argv)
    now = datetime.now(TIMEZONE)
    dag_id = DRIFT if args.verb == "churn-drift" else CRYPTO
    if args.date is not None and logical_datetime(dag_id, args.date) > now:
        parser.error(
            f"--date {args.date} is in the future for {dag_id}: Airflow would hold the run until then"
        )
    setup_logging()
    settings = load_settings()
    api = client(settings)
    try:
        api.health()
    except AirflowError as exc:
        print(
            f"Airflow does not answer at {api.base_url} ({exc}): is the stack up? (make up)", file=sys.stderr
        )
        return 2
    began = time.monotonic()
    if args.verb == "dag-status":
        dag_status(api, args.dags or list(DAGS))
        return 0
    if args.verb == "dag-run":
        ok = dag_run(settings, api, slot_for(api, CRYPTO, args.date, now))
    elif args.verb == "churn-train":
        ok = churn_train(settings, api, args.snapshot, args.spec)
    elif args.verb == "churn-watchdog":
        ok = churn_watchdog(settings, api)
    elif args.verb == "churn-drift":
        ok = churn_drift(settings, api, slot_for(api, DRIFT, args.date, now))
    else:  # mlops-run: crypto, then churn data -> training, then drift, stopping at the first failure
        ok = (
            dag_run(settings, api, slot_for(api, CRYPTO, args.date, now))
            and churn_watchdog(settings, api)
            and churn_drift(settings, api, slot_for(api, DRIFT, None, now))
        )
    print(f"{args.verb}: {'ok' if ok else 'FAILED'} in {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
