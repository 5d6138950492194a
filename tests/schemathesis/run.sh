#!/usr/bin/env bash
# Runs schemathesis against the OpenAPI document the gateway serves: one pass on the tenant
# routes (`/v1`, with an API key), one on the operator routes (`/admin/v1`, with the admin
# token) and one on the public routes (no credentials). Builds the gateway, starts it on a
# free port with a temporary SQLite database, bootstraps a tenant, lifts its request rate,
# runs the three passes, stops the gateway. Exits non-zero when schemathesis reports any
# failure (or cannot run).
#
# Needs `schemathesis` (tests/python/requirements-schemathesis.txt). Knobs:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   SCHEMATHESIS_SEED          random seed (default: fixed, so CI runs are reproducible)
#   SCHEMATHESIS_REPORT_DIR    where the JUnit reports and the gateway's log go (default: a
#                              temporary directory, removed at the end)
#   SGW_BIN                    a prebuilt gateway binary (default: `cargo build`, then target/debug)
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { printf '\nschemathesis run FAILED: %s\n' "$*" >&2; exit 1; }
log() { printf '\n==> %s\n' "$*"; }

# The console script, or the module when pip put the script off PATH.
if command -v schemathesis >/dev/null; then
  schemathesis=(schemathesis)
else
  schemathesis=(python3 -m schemathesis.cli)
fi
"${schemathesis[@]}" --version >/dev/null 2>&1 \
  || die "schemathesis is not installed (pip install -r tests/python/requirements-schemathesis.txt)"

if [ -z "${SGW_BIN:-}" ]; then
  log "cargo build"
  cargo build --quiet || die "cargo build failed"
  SGW_BIN=target/debug/seedance-gateway
fi
[ -x "$SGW_BIN" ] || die "no gateway binary at $SGW_BIN"

work=$(mktemp -d /tmp/sgw-schemathesis.XXXXXX)
reports=${SCHEMATHESIS_REPORT_DIR:-$work/reports}
mkdir -p "$reports"
reports=$(cd "$reports" && pwd)
gateway_pid=
cleanup() {
  if [ -n "$gateway_pid" ]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Only this run's settings: a private SQLite file and storage directory, in-process limits.
unset DATABASE_URL REDIS_URL SEEDANCE_GW_CONFIG
while IFS='=' read -r name _; do unset "$name"; done < <(env | grep '^SEEDANCE_GW_' || true)
export SEEDANCE_GW_SERVER__LISTEN="127.0.0.1:$port"
export SEEDANCE_GW_DATABASE__URL="sqlite://$work/gateway.db?mode=rwc"
export SEEDANCE_GW_STORAGE__DIR="$work/storage"
export SEEDANCE_GW_LOG__FORMAT=json
export SEEDANCE_GW_SERVER__SHUTDOWN_GRACE_SECS=2

log "gateway on $base (data in $work)"
"$SGW_BIN" serve >"$reports/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$reports/gateway.log" >&2; die "the gateway exited at start"; }
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null || die "the gateway did not answer /healthz"

log "bootstrap: admin token, tenant, test key"
exports=$("$SGW_BIN" bootstrap --format env 2>>"$reports/bootstrap.log") \
  || die "bootstrap failed (see $reports/bootstrap.log)"
eval "$exports"
[ -n "${SGW_ADMIN_TOKEN:-}" ] && [ -n "${SGW_TENANT:-}" ] && [ -n "${SGW_API_KEY:-}" ] \
  || die "bootstrap did not print SGW_ADMIN_TOKEN, SGW_TENANT and SGW_API_KEY"

# Lift the tenant's request rate so that no answer is a 429 of the run's own making.
curl -fsS -X PUT "$base/admin/v1/tenants/$SGW_TENANT/limits" \
  -H "Authorization: Bearer $SGW_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"requests_per_minute": 1000000, "burst": 100000}' >/dev/null \
  || die "could not lift the tenant's rate limit"

common=(
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}"
  --seed "${SCHEMATHESIS_SEED:-20261130}"
  --workers 2
  --suppress-health-check all
  --warnings off
  --generation-database none
  --report junit
)
cd "$work" # schemathesis keeps a cache in the working directory

# The tenant pass runs first: the operator pass may revoke or rotate the run's key, change the
# tenant's limits or quotas, or move its credits, none of which the tenant pass must see.
status=0
log "schemathesis: tenant routes (/v1) with the API key"
"${schemathesis[@]}" run "$base/openapi.json" "${common[@]}" \
  --include-path-regex '^/v1/' \
  --header "Authorization: Bearer $SGW_API_KEY" \
  --report-junit-path "$reports/tenant.xml" || status=1

log "schemathesis: operator routes (/admin/v1) with the admin token"
"${schemathesis[@]}" run "$base/openapi.json" "${common[@]}" \
  --include-path-regex '^/admin/v1/' \
  --header "Authorization: Bearer $SGW_ADMIN_TOKEN" \
  --report-junit-path "$reports/admin.xml" || status=1

log "schemathesis: public routes (probes, uploads, provider callbacks) without credentials"
"${schemathesis[@]}" run "$base/openapi.json" "${common[@]}" \
  --exclude-path-regex '^/(v1|admin/v1)/' \
  --report-junit-path "$reports/public.xml" || status=1

if [ "$status" != 0 ]; then
  tail -n 50 "$reports/gateway.log" >&2 || true
  die "schemathesis reported failures (see above)"
fi
log "schemathesis: no failures"
