#!/bin/sh
# Writes the pgpass file of the preconfigured server (servers.json: user kpi_analyst, PassFile "/.pgpass",
# which pgAdmin resolves inside the login's storage) from .env, then runs pgAdmin's own entrypoint, which
# copies PGPASS_FILE there on first start. The server then opens without a password prompt.
set -eu
umask 077
printf 'postgres:5432:*:kpi_analyst:%s\n' "$KPI_ANALYST_PASSWORD" > "$PGPASS_FILE"
exec /entrypoint.sh "$@"
