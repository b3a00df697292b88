#!/usr/bin/env bash
# Real servers for the integration tests, on loopback, with throwaway data.
#
#   scripts/services.sh up     [SERVICE...]   start (idempotent), wait until ready, print the test env
#   scripts/services.sh down   [SERVICE...]   stop what is running
#   scripts/services.sh status [SERVICE...]   one line per service; exit 3 if any is stopped
#   scripts/services.sh env                   print `export MLREC_TEST_...=...` lines (for eval)
#
# SERVICE is any of: redis postgres kafka prometheus (default: all four).
#
# Redis, PostgreSQL and Prometheus come from Debian packages (installed with
# apt-get when missing). Kafka is a real single-node KRaft broker whose jars
# Maven fetches from Maven Central once into ~/.cache/mlrec/kafka/<version>.
#
# Environment (all optional):
#   MLREC_SERVICES_DIR            data, logs, pid files          (/tmp/mlrec-services)
#   MLREC_TEST_REDIS_PORT         6390
#   MLREC_TEST_PG_PORT            5440
#   MLREC_TEST_KAFKA_PORT         9193 (controller: MLREC_TEST_KAFKA_CONTROLLER_PORT, 9194)
#   MLREC_TEST_KAFKA_PARTITIONS   default partitions of auto-created topics (3)
#   MLREC_TEST_PROMETHEUS_PORT    9190
#   MLREC_TEST_PROMETHEUS_TARGET_PORT  port Prometheus scrapes as job "mlrec-test" (9199)
#   MLREC_KAFKA_VERSION           4.1.1
#   MLREC_SERVICES_TIMEOUT        seconds to wait for each server to be ready (60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${MLREC_SERVICES_DIR:-/tmp/mlrec-services}"
HOST=127.0.0.1
REDIS_PORT="${MLREC_TEST_REDIS_PORT:-6390}"
PG_PORT="${MLREC_TEST_PG_PORT:-5440}"
KAFKA_PORT="${MLREC_TEST_KAFKA_PORT:-9193}"
KAFKA_CONTROLLER_PORT="${MLREC_TEST_KAFKA_CONTROLLER_PORT:-9194}"
KAFKA_PARTITIONS="${MLREC_TEST_KAFKA_PARTITIONS:-3}"
PROM_PORT="${MLREC_TEST_PROMETHEUS_PORT:-9190}"
PROM_TARGET_PORT="${MLREC_TEST_PROMETHEUS_TARGET_PORT:-9199}"
KAFKA_VERSION="${MLREC_KAFKA_VERSION:-4.1.1}"
KAFKA_HOME="${MLREC_KAFKA_CACHE:-${HOME:-/root}/.cache/mlrec/kafka}/${KAFKA_VERSION}"
TIMEOUT="${MLREC_SERVICES_TIMEOUT:-60}"
ALL_SERVICES=(redis postgres kafka prometheus)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# --- small helpers -----------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pidfile -> true if the process it names is alive *and* is that server: pid
# files outlive reboots and CI clean-ups, and a recycled pid must not pass for
# a running server.
pid_alive() {
  local pid pattern cmdline
  [[ -s "$1" ]] || return 1
  pid="$(head -n1 "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  case "$(basename "$1")" in
    redis.pid) pattern=redis-server ;;
    postmaster.pid) pattern=postgres ;;
    kafka.pid) pattern=kafka.Kafka ;;
    prometheus.pid) pattern=prometheus ;;
    *) return 0 ;;
  esac
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$pattern"* ]]
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_ready NAME PIDFILE LOGFILE CHECK...: poll CHECK until it succeeds. On
# failure show the log (so CI output alone explains a broken start) and stop
# the half-started process, so the next `up` starts clean.
wait_ready() {
  local name=$1 pidfile=$2 logfile=$3; shift 3
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
      fail_with_log "$name exited during startup" "$logfile"
    fi
    if ((SECONDS >= deadline)); then
      [[ -z "$pidfile" ]] || stop_wait "$pidfile"
      fail_with_log "$name not ready after ${TIMEOUT}s" "$logfile"
    fi
    sleep 0.2
  done
}

fail_with_log() {
  printf '[services] ERROR: %s; last lines of %s:\n' "$1" "$2" >&2
  tail -n 40 "$2" >&2 2>/dev/null || true
  printf '[services] servers that did start are left running: scripts/services.sh down\n' >&2
  exit 1
}

# A server already running from $DIR must be the one the tests will be told
# about: if its port changed since it started (recorded in <dir>/port), `down` first.
check_running_port() { # name port
  local started_on
  started_on="$(cat "$DIR/$1/port" 2>/dev/null || true)"
  [[ "$started_on" == "$2" ]] ||
    die "$1 is already running from $DIR on port ${started_on:-?}, not $2; run 'scripts/services.sh down $1' first"
  log "$1 already running"
}

# Refuse to start on a port someone else holds: tests would talk to a server
# we did not configure and fail in confusing ways.
require_free_port() {
  if port_open "$2"; then
    die "$1: port $HOST:$2 is already in use by another process (set MLREC_TEST_*_PORT to move it)"
  fi
}

# apt-get only when a binary is really missing, so repeated `up` stays fast.
apt_install() { # debian-package...
  [[ $EUID -eq 0 ]] || die "missing Debian package(s) $*; install them (apt-get install $*)"
  log "installing Debian package(s): $*"
  if [[ ! -f "$DIR/.apt-updated" ]]; then
    apt-get update -qq >&2 && touch "$DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_cmd() { # command debian-package
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# --- Redis -------------------------------------------------------------------

redis_pidfile() { echo "$DIR/redis/redis.pid"; }

redis_up() {
  ensure_cmd redis-server redis-server
  local d="$DIR/redis"
  mkdir -p "$d"
  if pid_alive "$(redis_pidfile)"; then check_running_port redis "$REDIS_PORT"; return; fi
  require_free_port redis "$REDIS_PORT"
  # No persistence: test data is disposable and fsyncs only slow things down.
  redis-server --bind "$HOST" --port "$REDIS_PORT" --daemonize yes \
    --pidfile "$(redis_pidfile)" --logfile "$d/redis.log" --dir "$d" \
    --save '' --appendonly no >&2
  echo "$REDIS_PORT" >"$d/port"
  wait_ready redis "" "$d/redis.log" pid_alive "$(redis_pidfile)"
  wait_ready redis "$(redis_pidfile)" "$d/redis.log" \
    sh -c "redis-cli -h $HOST -p $REDIS_PORT ping | grep -q PONG"
}

redis_down() {
  # SIGTERM is a clean shutdown for Redis (nothing to save: persistence is off).
  stop_wait "$(redis_pidfile)"
}

# --- PostgreSQL --------------------------------------------------------------

pg_bin() {
  # Debian's versioned binaries; /usr/local/bin may hold a different build.
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  [[ -n "$d" && -x "$d/postgres" ]] || return 1
  echo "$d"
}

# PostgreSQL refuses to run as root: run it as the `postgres` system user.
as_pg() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_pidfile() { echo "$DIR/postgres/data/postmaster.pid"; }

pg_up() {
  pg_bin >/dev/null || apt_install postgresql
  local bin d; bin="$(pg_bin)" || die "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin"
  d="$DIR/postgres"
  mkdir -p "$d"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$d"; fi
  if [[ ! -f "$d/data/PG_VERSION" ]]; then
    log "postgres: initdb"
    # trust on the private unix socket (admin below); passwords over TCP like prod.
    as_pg "$bin/initdb" -D "$d/data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1 ||
      fail_with_log "postgres initdb failed" "$d/initdb.log"
    # Durability is pointless for throwaway test data and costs seconds per test run.
    cat >>"$d/data/postgresql.conf" <<EOF

# --- mlrec test server (scripts/services.sh) ---
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  if pid_alive "$(pg_pidfile)"; then
    check_running_port postgres "$PG_PORT"
  else
    require_free_port postgres "$PG_PORT"
    # Port and socket on the command line so MLREC_TEST_PG_PORT works on an existing data dir.
    as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $d" start >/dev/null ||
      fail_with_log "postgres failed to start" "$d/postgres.log"
    echo "$PG_PORT" >"$d/port"
  fi
  wait_ready postgres "$(pg_pidfile)" "$d/postgres.log" \
    "$bin/pg_isready" -q -h "$HOST" -p "$PG_PORT"
  # Role and database for the tests, created once.
  as_pg "$bin/psql" -X -q -h "$d" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT 'CREATE ROLE mlrec LOGIN CREATEDB PASSWORD ''mlrec'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mlrec') \gexec
SELECT 'CREATE DATABASE mlrec OWNER mlrec'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'mlrec') \gexec
SQL
  # The real check: the URL the tests use (password auth over TCP) works.
  PGPASSWORD=mlrec "$bin/psql" -X -q -h "$HOST" -p "$PG_PORT" -U mlrec -d mlrec -c 'SELECT 1' >/dev/null ||
    fail_with_log "postgres: cannot log in as mlrec" "$d/postgres.log"
}

pg_down() {
  pid_alive "$(pg_pidfile)" || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$DIR/postgres/data" -m fast -w -t 30 stop >/dev/null
}

# --- Kafka (KRaft, single node) ----------------------------------------------

kafka_pidfile() { echo "$DIR/kafka/kafka.pid"; }

# Jars from Maven Central (the Apache download site is not reachable from CI).
# Downloaded into a temp dir and renamed, so an interrupted fetch is retried.
kafka_fetch() {
  [[ -f "$KAFKA_HOME/libs/.complete" ]] && return 0
  ensure_cmd mvn maven
  log "kafka: fetching kafka_2.13:$KAFKA_VERSION jars with Maven into $KAFKA_HOME/libs"
  local t0 tmp; t0="$(now)"
  mkdir -p "$KAFKA_HOME"
  tmp="$(mktemp -d "$KAFKA_HOME/libs.XXXXXX")"
  mvn -B -Dstyle.color=never -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$KAFKA_HOME/mvn.log" 2>&1 || {
    rm -rf "$tmp"
    fail_with_log "kafka: mvn could not fetch kafka_2.13:$KAFKA_VERSION" "$KAFKA_HOME/mvn.log"
  }
  touch "$tmp/.complete"
  rm -rf "$KAFKA_HOME/libs"
  mv "$tmp" "$KAFKA_HOME/libs"
  log "kafka: jars fetched in $(elapsed "$t0")s"
}

# 2 cores: small heap, serial GC and C1 only start the broker in seconds and
# leave CPU to the tests.
kafka_java_cmd() {
  KAFKA_JAVA=(java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties"
    -cp "$KAFKA_HOME/libs/*")
}

kafka_config() {
  cat >"$DIR/kafka/server.properties" <<EOF
# Generated by scripts/services.sh: one process is both broker and KRaft controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/kafka/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
# One broker: every internal topic must accept replication factor 1.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
# Tests form consumer groups constantly; don't wait 3 s for more members.
group.initial.rebalance.delay.ms=0
log.retention.hours=1
EOF
}

# Kafka's Metadata request (API key 3, v4) sent by hand: proves the broker
# serves requests and knows itself, without a client library in the shell.
#   size=20 | api_key=3 | api_version=4 | correlation_id=1 | client_id="mlrec"
#   | topics=null (-1) | allow_auto_topic_creation=false
# Response: size(4) correlation_id(4) throttle_ms(4) broker_count(4) ...
kafka_metadata_ok() {
  local hex
  hex="$(
    exec 3<>"/dev/tcp/$HOST/$KAFKA_PORT" || exit 1
    printf '\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x01\x00\x05mlrec\xff\xff\xff\xff\x00' >&3
    timeout 2 head -c 16 <&3 | od -An -v -tx1 | tr -d ' \n'
  )" || return 1
  # correlation id 1 echoed back and at least one broker listed
  [[ ${#hex} -eq 32 && ${hex:8:8} == 00000001 && ${hex:24:8} != 00000000 ]]
}

kafka_up() {
  ensure_cmd java openjdk-17-jre-headless
  kafka_fetch
  local d="$DIR/kafka"
  mkdir -p "$d"
  if pid_alive "$(kafka_pidfile)"; then
    check_running_port kafka "$KAFKA_PORT"
  else
    require_free_port kafka "$KAFKA_PORT"
    require_free_port kafka-controller "$KAFKA_CONTROLLER_PORT"
    kafka_config
    kafka_java_cmd
    if [[ ! -f "$d/data/meta.properties" ]]; then
      # KRaft needs formatted storage and a cluster id: 16 random bytes in
      # base64url. Letters instead of '-'/'_' so the id never looks like an option.
      local cluster_id
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' 'xy' | tr -d '=')"
      "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$d/server.properties" >"$d/format.log" 2>&1 ||
        fail_with_log "kafka storage format failed" "$d/format.log"
    fi
    nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$d/server.properties" >"$d/kafka.log" 2>&1 </dev/null &
    echo $! >"$(kafka_pidfile)"
    echo "$KAFKA_PORT" >"$d/port"
  fi
  wait_ready kafka "$(kafka_pidfile)" "$d/kafka.log" kafka_metadata_ok
}

# --- Prometheus --------------------------------------------------------------

prom_pidfile() { echo "$DIR/prometheus/prometheus.pid"; }

prom_config() {
  local d="$DIR/prometheus"
  mkdir -p "$d/targets"
  cat >"$d/prometheus.yml" <<EOF
# Generated by scripts/services.sh. 1 s intervals so tests see samples quickly.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  # Tests serve prometheus_client metrics on this port (MLREC_TEST_PROMETHEUS_TARGET).
  - job_name: mlrec-test
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["$HOST:$PROM_TARGET_PORT"]
  # Extra targets: drop a JSON/YAML file in targets/ (MLREC_TEST_PROMETHEUS_SD_DIR);
  # picked up without a reload.
  - job_name: mlrec-test-sd
    scrape_interval: 1s
    scrape_timeout: 1s
    file_sd_configs:
      - files: ["$d/targets/*.json", "$d/targets/*.yml", "$d/targets/*.yaml"]
        refresh_interval: 1s
EOF
}

prom_up() {
  ensure_cmd prometheus prometheus
  local d="$DIR/prometheus"
  mkdir -p "$d/data"
  if pid_alive "$(prom_pidfile)"; then
    check_running_port prometheus "$PROM_PORT"
  else
    require_free_port prometheus "$PROM_PORT"
    prom_config
    # --web.enable-lifecycle: tests may POST /-/reload after editing the config.
    nohup prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
      --storage.tsdb.retention.time=2h --web.listen-address="$HOST:$PROM_PORT" \
      --web.enable-lifecycle --log.level=warn >"$d/prometheus.log" 2>&1 </dev/null &
    echo $! >"$(prom_pidfile)"
    echo "$PROM_PORT" >"$d/port"
  fi
  wait_ready prometheus "$(prom_pidfile)" "$d/prometheus.log" \
    curl -fsS --max-time 2 "http://$HOST:$PROM_PORT/-/ready"
}

# --- common ------------------------------------------------------------------

# TERM, then wait up to 30 s (Kafka's controlled shutdown takes a few), then KILL.
stop_wait() {
  local pidfile=$1 pid i
  [[ -s "$pidfile" ]] || return 0
  pid="$(head -n1 "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.2
  done
  log "pid $pid did not stop after 30s; killing"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

svc_pidfile() {
  case $1 in
    redis) redis_pidfile ;; postgres) pg_pidfile ;;
    kafka) kafka_pidfile ;; prometheus) prom_pidfile ;;
  esac
}

svc_port() {
  case $1 in
    redis) echo "$REDIS_PORT" ;; postgres) echo "$PG_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;; prometheus) echo "$PROM_PORT" ;;
  esac
}

print_env() { # $1: prefix ("" or "export ")
  local p=${1:-}
  echo "${p}MLREC_TEST_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
  echo "${p}MLREC_TEST_DATABASE_URL=postgresql+psycopg://mlrec:mlrec@$HOST:$PG_PORT/mlrec"
  echo "${p}MLREC_TEST_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT"
  echo "${p}MLREC_TEST_PROMETHEUS_URL=http://$HOST:$PROM_PORT"
  echo "${p}MLREC_TEST_PROMETHEUS_TARGET=$HOST:$PROM_TARGET_PORT"
  echo "${p}MLREC_TEST_PROMETHEUS_SD_DIR=$DIR/prometheus/targets"
}

parse_services() {
  SERVICES=()
  local s
  for s in "$@"; do
    case $s in
      redis | postgres | kafka | prometheus) SERVICES+=("$s") ;;
      *) die "unknown service '$s' (expected: ${ALL_SERVICES[*]})" ;;
    esac
  done
  ((${#SERVICES[@]})) || SERVICES=("${ALL_SERVICES[@]}")
}

cmd_up() {
  mkdir -p "$DIR"
  chmod 755 "$DIR" # the postgres user must reach its data dir inside
  local s t0
  for s in "${SERVICES[@]}"; do
    t0="$(now)"
    case $s in
      redis) redis_up ;; postgres) pg_up ;; kafka) kafka_up ;; prometheus) prom_up ;;
    esac
    log "$s ready on $HOST:$(svc_port "$s") ($(elapsed "$t0")s)"
  done
  print_env "" >"$DIR/env"
  print_env ""
}

cmd_down() {
  local i s
  # Reverse order of `up`.
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[i]}
    case $s in
      redis) redis_down ;; postgres) pg_down ;;
      kafka | prometheus) stop_wait "$(svc_pidfile "$s")" ;;
    esac
    log "$s stopped"
  done
}

cmd_status() {
  local s port rc=0
  for s in "${SERVICES[@]}"; do
    port="$(cat "$DIR/$s/port" 2>/dev/null || svc_port "$s")"
    if pid_alive "$(svc_pidfile "$s")" && port_open "$port"; then
      printf '%-10s running  pid %s  %s:%s\n' "$s" "$(head -n1 "$(svc_pidfile "$s")")" "$HOST" "$port"
    else
      printf '%-10s stopped\n' "$s"
      rc=3
    fi
  done
  return $rc
}

main() {
  local cmd=${1:-}
  shift || true
  parse_services "$@"
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env "export " ;;
    *) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
