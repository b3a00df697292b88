#!/usr/bin/env bash
# Run CMD with the integration-test servers available, e.g.
#   scripts/with-services.sh .venv/bin/pytest
#
# A server whose MLREC_TEST_* address is already set and answering is used
# as is. Any other is started with scripts/services.sh and its MLREC_TEST_*
# variables exported to CMD; servers started here are stopped again when CMD
# ends (servers that were already running are left alone). Exits with CMD's
# exit code, or non-zero if a server could not be started.
set -euo pipefail

SERVICES_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services.sh"
(($#)) || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

log() { printf '[with-services] %s\n' "$*" >&2; }

# MLREC_TEST_* variable that holds each server's address.
declare -A ADDRESS_VAR=(
  [redis]=MLREC_TEST_REDIS_URL
  [postgres]=MLREC_TEST_DATABASE_URL
  [kafka]=MLREC_TEST_KAFKA_BOOTSTRAP
  [prometheus]=MLREC_TEST_PROMETHEUS_URL
)
# Prefix of every variable `services.sh up` prints for each server.
declare -A VAR_PREFIX=(
  [redis]=MLREC_TEST_REDIS_
  [postgres]=MLREC_TEST_DATABASE_
  [kafka]=MLREC_TEST_KAFKA_
  [prometheus]=MLREC_TEST_PROMETHEUS_
)

# "redis://u:p@host:port/0", "host:port" -> true if a TCP connect succeeds.
reachable() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%,*} # first of several bootstrap servers
  [[ $rest == *:* ]] || return 1
  (exec 3<>"/dev/tcp/${rest%:*}/${rest##*:}") 2>/dev/null
}

needed=()
for service in redis postgres kafka prometheus; do
  var=${ADDRESS_VAR[$service]}
  if [[ -n ${!var:-} ]] && reachable "${!var}"; then
    log "$service: using $var=${!var}"
  else
    [[ -n ${!var:-} ]] && log "$service: $var=${!var} does not answer; starting our own"
    needed+=("$service")
  fi
done

started=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if ((${#started[@]})); then
    log "stopping ${started[*]}"
    "$SERVICES_SH" down "${started[@]}" || log "warning: could not stop ${started[*]}"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((${#needed[@]})); then
  # Remember which ones are not running yet: only those are ours to stop.
  # ("stopped" only: one that runs but is not answering yet, e.g. started a
  # moment ago by someone else, is theirs; `up` waits for it.)
  for service in "${needed[@]}"; do
    state="$("$SERVICES_SH" status "$service" 2>/dev/null || true)"
    if [[ $state =~ ^$service\ +stopped$ ]]; then
      started+=("$service")
    fi
  done
  env_lines="$("$SERVICES_SH" up "${needed[@]}")"
  while IFS='=' read -r key value; do
    for service in "${needed[@]}"; do
      if [[ $key == "${VAR_PREFIX[$service]}"* ]]; then
        export "$key=$value"
        log "$key=$value"
      fi
    done
  done <<<"$env_lines"
fi

# Not `exec`: the EXIT trap must run after CMD to stop the servers.
set +e
"$@"
rc=$?
set -e
exit "$rc"
