#!/usr/bin/env bash
# Checks the system packages the Spark jobs need: a Java 17 runtime and the PostgreSQL JDBC driver
# (Debian's libpostgresql-jdbc-java; Maven is unreachable here, so no jar is downloaded at run time), and
# Prometheus with its Pushgateway and the postgres, redis and node exporters (Debian's packages: promtool tests
# the alert rules, the stacks and tests run them as processes of their own; the packages' services are never
# started, see policy-rc.d below).
# With --browser, also Debian's Chromium (the app's real-browser test drives /usr/bin/chromium; test tools
# cannot download a browser here). Installs with apt-get when running as root, otherwise says what to install.
set -euo pipefail
jar="${1:-/usr/share/java/postgresql.jar}"
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
[ -f "$jar" ] || missing+=(libpostgresql-jdbc-java)
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/prometheus-pushgateway ] || missing+=(prometheus-pushgateway)
for exporter in postgres redis node; do  # the stacks' exporters (infrastructure/observability.py)
  [ -x "/usr/bin/prometheus-$exporter-exporter" ] || missing+=("prometheus-$exporter-exporter")
done
if [ "${2:-}" = "--browser" ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing system packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  # Debian starts a packaged daemon on install (Prometheus on :9090, the gateway on :9091, ...); we run our own
  # processes on our own ports, so the packages' services are kept from starting while they install
  policy=/usr/sbin/policy-rc.d
  own_policy=false
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=true; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if $own_policy; then rm -f "$policy"; fi
  [ -f "$jar" ] || { echo "[setup] ERROR: $jar still missing after installing libpostgresql-jdbc-java" >&2; exit 1; }
else
  echo "[setup] ERROR: missing system packages: ${missing[*]}" >&2
  echo "        install them as root:  apt-get install ${missing[*]}" >&2
  exit 1
fi
