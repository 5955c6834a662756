#!/bin/sh
# airflow-init: what the native stack's `init` does besides creating the databases (the postgres service does):
# the business DDL re-applied as the admin (upgrades an existing volume; the jobs only check it), the folders on the shared volume, the simple auth manager's password file, the demo churn files when there
# are none (so the churn DAGs have input), and the Airflow metadata migration. Idempotent, like `make init`.
set -eu
python -m jobs.common.postgres init
mkdir -p "$AIRFLOW_HOME" "$SPARK_EVENT_LOG_DIR" "$CHURN_SOURCE_DIR" /opt/kpidelivery/var/stack/openlineage
python -c 'import json, os; print(json.dumps({os.environ["STACK_AIRFLOW_USER"]: os.environ["STACK_AIRFLOW_PASSWORD"]}))' \
    > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
if ! ls "$CHURN_SOURCE_DIR"/*.csv > /dev/null 2>&1; then
    python -m jobs.churn.simulate --out "$CHURN_SOURCE_DIR" --customers 3000
fi
exec python -m airflow db migrate
