#!/usr/bin/env bash
# Real servers for the integration tests, on loopback, with throwaway data.
#
#   scripts/services.sh up     [SERVICE...]   start (idempotent), wait until ready, print the test env
#   scripts/services.sh down   [SERVICE...]   stop what is running (from this MLREC_SERVICES_DIR only)
#   scripts/services.sh status [SERVICE...]   one line per service; exit 3 if any is not running and answering
#   scripts/services.sh env                   print `export MLREC_TEST_...=...` lines (for eval)
#
# SERVICE is any of: redis postgres kafka prometheus (default: all four).
#
# Redis, PostgreSQL and Prometheus come from Debian packages (installed with
# apt-get when missing). Kafka is a real single-node KRaft broker whose jars
# Maven fetches from Maven Central once into $MLREC_KAFKA_CACHE/<version>.
# A server counts as ours only if it runs from MLREC_SERVICES_DIR: a pid file
# naming some other process (stale, recycled pid, another instance) is ignored
# and never signalled, and a port held by anything else is an error.
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
#   MLREC_KAFKA_CACHE             Kafka jars, one directory per version (~/.cache/mlrec/kafka);
#                                 Maven's own downloads stay in its local repository (~/.m2)
#   MLREC_SERVICES_TIMEOUT        seconds to wait for each server to be ready (60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute paths: Redis and PostgreSQL chdir into their directories, and a pid
# file's process is recognised by the paths on its command line.
DIR="$(realpath -m -- "${MLREC_SERVICES_DIR:-/tmp/mlrec-services}")"
HOST=127.0.0.1
REDIS_PORT="${MLREC_TEST_REDIS_PORT:-6390}"
PG_PORT="${MLREC_TEST_PG_PORT:-5440}"
KAFKA_PORT="${MLREC_TEST_KAFKA_PORT:-9193}"
KAFKA_CONTROLLER_PORT="${MLREC_TEST_KAFKA_CONTROLLER_PORT:-9194}"
KAFKA_PARTITIONS="${MLREC_TEST_KAFKA_PARTITIONS:-3}"
PROM_PORT="${MLREC_TEST_PROMETHEUS_PORT:-9190}"
PROM_TARGET_PORT="${MLREC_TEST_PROMETHEUS_TARGET_PORT:-9199}"
KAFKA_VERSION="${MLREC_KAFKA_VERSION:-4.1.1}"
KAFKA_HOME="$(realpath -m -- "${MLREC_KAFKA_CACHE:-${HOME:-/root}/.cache/mlrec/kafka}")/${KAFKA_VERSION}"
TIMEOUT="${MLREC_SERVICES_TIMEOUT:-60}"
ALL_SERVICES=(redis postgres kafka prometheus)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# A bad override fails here, by name, not as a server that cannot start.
check_settings() {
  local name value
  for name in MLREC_TEST_REDIS_PORT:$REDIS_PORT MLREC_TEST_PG_PORT:$PG_PORT \
    MLREC_TEST_KAFKA_PORT:$KAFKA_PORT MLREC_TEST_KAFKA_CONTROLLER_PORT:$KAFKA_CONTROLLER_PORT \
    MLREC_TEST_PROMETHEUS_PORT:$PROM_PORT MLREC_TEST_PROMETHEUS_TARGET_PORT:$PROM_TARGET_PORT; do
    value=${name#*:}
    if ! [[ $value =~ ^[1-9][0-9]{0,4}$ ]] || ((value > 65535)); then
      die "${name%%:*}=$value is not a port number (1-65535)"
    fi
  done
  local ports
  ports="$(printf '%s\n' "$REDIS_PORT" "$PG_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" \
    "$PROM_PORT" "$PROM_TARGET_PORT" | sort | uniq -d)"
  [[ -z $ports ]] || die "port(s) ${ports//$'\n'/ } given to two servers; check the MLREC_TEST_*_PORT variables"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "MLREC_SERVICES_TIMEOUT=$TIMEOUT is not a whole number of seconds"
  [[ $KAFKA_PARTITIONS =~ ^[1-9][0-9]*$ ]] || die "MLREC_TEST_KAFKA_PARTITIONS=$KAFKA_PARTITIONS is not a positive number"
  [[ $KAFKA_VERSION =~ ^[0-9A-Za-z._-]+$ ]] || die "MLREC_KAFKA_VERSION=$KAFKA_VERSION is not a version"
}

# --- small helpers -----------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pidfile -> true if the process it names is alive *and* is the server this
# MLREC_SERVICES_DIR started: pid files outlive crashes and reboots, a recycled
# pid must not pass for a running server, and the same program started from
# another directory (another instance, another engineer) is not ours to report,
# reuse or stop. Each server is recognised by a path of ours it runs with.
pid_alive() {
  local pid cmdline
  [[ -s "$1" ]] || return 1
  pid="$(head -n1 "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  case "$(basename "$1")" in
    # Redis rewrites its command line ("redis-server 127.0.0.1:6390"); it runs in its --dir.
    redis.pid) [[ $cmdline == redis-server* && "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$DIR/redis" ]] ;;
    postmaster.pid) [[ $cmdline == *" -D $DIR/postgres/data "* ]] ;;
    kafka.pid) [[ $cmdline == *" kafka.Kafka $DIR/kafka/server.properties"* ]] ;;
    prometheus.pid) [[ $cmdline == *" --config.file=$DIR/prometheus/prometheus.yml "* ]] ;;
    *) return 1 ;;
  esac
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_ready NAME PIDFILE LOGFILE CHECK...: poll CHECK until it succeeds. On
# failure show the log (so CI output alone explains a broken start) and stop
# the half-started process, so the next `up` starts clean.
# Every CHECK must be bounded itself (timeouts on each client), so the whole
# wait is. A CHECK that passes while our process is gone means something else
# answers on the port: that is a failure, not a ready server.
# Only a server this run started is stopped on timeout: one that was already
# running (maybe shared with others, maybe just busy) is reported, not killed.
STARTED_NOW=""
wait_ready() {
  poll_ready "$@" && return 0
  case $? in
    1) fail_with_log "$1 exited during startup" "$3" ;;
    *) if [[ $STARTED_NOW == "$1" ]]; then
         [[ -z "$2" ]] || stop_wait "$2"
         fail_with_log "$1 not ready after ${TIMEOUT}s" "$3"
       fi
       fail_with_log "$1 was already running (pid $(head -n1 "$2" 2>/dev/null)) but did not answer within ${TIMEOUT}s; left running ('scripts/services.sh down $1' stops it)" "$3" ;;
  esac
}

# poll_ready NAME PIDFILE LOGFILE CHECK...: 0 ready, 1 our process exited, 2 timed out.
poll_ready() {
  local pidfile=$2; shift 3
  local deadline=$((SECONDS + TIMEOUT))
  while true; do
    if "$@" >/dev/null 2>&1; then
      [[ -z "$pidfile" ]] || pid_alive "$pidfile" || return 1
      return 0
    fi
    # (kill -0, not pid_alive: a server just started may not have exec'd yet.)
    if [[ -n "$pidfile" ]] && ! kill -0 "$(head -n1 "$pidfile" 2>/dev/null)" 2>/dev/null; then return 1; fi
    ((SECONDS < deadline)) || return 2
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
# about: if its port (or another setting it was started with, recorded in
# <dir>/settings) changed since it started, `down` first.
check_running_port() { # name port [settings]
  local started_on settings
  started_on="$(cat "$DIR/$1/port" 2>/dev/null || true)"
  [[ "$started_on" == "$2" ]] ||
    die "$1 is already running from $DIR on port ${started_on:-?}, not $2; run 'scripts/services.sh down $1' first"
  if [[ -n ${3:-} && -f "$DIR/$1/settings" ]]; then
    settings="$(cat "$DIR/$1/settings")"
    [[ "$settings" == "$3" ]] ||
      die "$1 is already running from $DIR with $settings, not $3; run 'scripts/services.sh down $1' first"
  fi
  log "$1 already running"
}

# Refuse to start on a port someone else holds: tests would talk to a server
# we did not configure and fail in confusing ways.
require_free_port() { # name port variable
  if port_open "$2"; then
    die "$1: port $HOST:$2 is already in use by another process (set $3 to move it)"
  fi
}

# apt-get only when a binary is really missing, so repeated `up` stays fast.
# Retried: a mirror hiccup or dpkg's lock held for a while (unattended-upgrades
# on a fresh machine) must not fail CI. The package lists are refreshed once
# per run (a marker kept across runs would let them go stale: 404s).
APT_UPDATED=""
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -o Acquire::http::Timeout=60
  -o Acquire::https::Timeout=60)
apt_retry() { # apt-get arguments...
  local attempt
  for attempt in 1 2 3; do
    DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get "${APT_OPTS[@]}" "$@" >&2 && return 0
    ((attempt == 3)) || { log "apt-get $1 failed (attempt $attempt of 3); retrying in $((attempt * 10))s"; sleep $((attempt * 10)); }
  done
  return 1
}
apt_install() { # debian-package...
  [[ $EUID -eq 0 ]] || die "missing Debian package(s) $*; install them (apt-get install $*)"
  command -v apt-get >/dev/null 2>&1 || die "missing $*, and no apt-get to install them with"
  log "installing Debian package(s): $*"
  if [[ -z $APT_UPDATED ]]; then
    apt_retry update -qq || die "apt-get update failed 3 times (network or mirror); cannot install $*"
    APT_UPDATED=1
  fi
  apt_retry install -y -qq --no-install-recommends "$@" ||
    die "apt-get install $* failed 3 times (output above)"
}

ensure_cmd() { # command debian-package
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# --- Redis -------------------------------------------------------------------

redis_pidfile() { echo "$DIR/redis/redis.pid"; }

redis_up() {
  ensure_cmd redis-server redis-server
  ensure_cmd redis-cli redis-tools
  local d="$DIR/redis"
  mkdir -p "$d"
  if pid_alive "$(redis_pidfile)"; then
    check_running_port redis "$REDIS_PORT"
  else
    require_free_port redis "$REDIS_PORT" MLREC_TEST_REDIS_PORT
    # No persistence: test data is disposable and fsyncs only slow things down.
    # Not daemonized: $! is the server's pid at once, so a start that fails
    # (bad option, port taken meanwhile) is seen at once, not after TIMEOUT.
    STARTED_NOW=redis
    rm -f "$(redis_pidfile)"
    # Early errors (before Redis opens --logfile) go to the same log.
    # shellcheck disable=SC2094
    (cd "$d" && exec redis-server --bind "$HOST" --port "$REDIS_PORT" --daemonize no \
      --pidfile "$(redis_pidfile)" --logfile "$d/redis.log" --dir "$d" \
      --save '' --appendonly no) </dev/null >>"$d/redis.log" 2>&1 &
    echo $! >"$(redis_pidfile)"
    echo "$REDIS_PORT" >"$d/port"
  fi
  # Also when it was running already: it must answer where the tests will look.
  # redis-cli waits forever for a server that accepts but never answers: bounded.
  wait_ready redis "$(redis_pidfile)" "$d/redis.log" \
    sh -c "timeout 5 redis-cli -h $HOST -p $REDIS_PORT ping | grep -q PONG"
}

redis_down() {
  # SIGTERM is a clean shutdown for Redis (nothing to save: persistence is off).
  stop_wait "$(redis_pidfile)"
}

# --- PostgreSQL --------------------------------------------------------------

pg_bin() {
  # Debian's versioned binaries; /usr/local/bin may hold a different build.
  # An existing data directory needs the major version that created it.
  local d v
  v="$(cat "$DIR/postgres/data/PG_VERSION" 2>/dev/null || true)"
  if [[ -n $v && -x /usr/lib/postgresql/$v/bin/postgres ]]; then
    echo "/usr/lib/postgresql/$v/bin"
    return 0
  fi
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  [[ -n "$d" && -x "$d/postgres" ]] || return 1
  echo "$d"
}

# PostgreSQL refuses to run as root: run it as the `postgres` system user.
as_pg() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_pidfile() { echo "$DIR/postgres/data/postmaster.pid"; }

# initdb finished and our settings were appended (the last step of pg_init).
pg_initialized() { grep -qs '^# --- mlrec test server' "$DIR/postgres/data/postgresql.conf"; }

pg_init() {
  local bin=$1 d="$DIR/postgres"
  # A data directory left by an interrupted initdb, or by a PostgreSQL major
  # version no longer installed, cannot start: it is throwaway, so start over.
  if [[ -e "$d/data" ]]; then
    log "postgres: discarding unusable data directory $d/data ($(
      if pg_initialized; then echo "made by PostgreSQL $(cat "$d/data/PG_VERSION"), not installed"
      else echo 'initdb did not finish'; fi))"
    rm -rf "$d/data"
  fi
  log "postgres: initdb"
  # trust on the private unix socket (admin below); passwords over TCP like prod.
  as_pg "$bin/initdb" -D "$d/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$d/initdb.log" 2>&1 ||
    fail_with_log "postgres initdb failed" "$d/initdb.log"
  # Durability is pointless for throwaway test data and costs seconds per test run.
  as_pg tee -a "$d/data/postgresql.conf" >/dev/null <<EOF

# --- mlrec test server (scripts/services.sh) ---
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
}

pg_up() {
  pg_bin >/dev/null || apt_install postgresql
  local bin d sock; bin="$(pg_bin)" || die "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin"
  d="$DIR/postgres"
  mkdir -p "$d"
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 ||
      die "postgres: no 'postgres' system user to run the server as (PostgreSQL refuses root); reinstall the postgresql package"
    chown postgres: "$d"
    runuser -u postgres -- test -w "$d" -a -x "$d" ||
      die "postgres: the 'postgres' user cannot reach $d (PostgreSQL refuses to run as root, so it runs as 'postgres', and a parent directory is not searchable by it, e.g. /root): set MLREC_SERVICES_DIR to a directory under /tmp"
  fi
  sock="$d/.s.PGSQL.$PG_PORT"
  ((${#sock} < 108)) ||
    die "postgres: socket path $sock is too long for a Unix socket (${#sock} bytes, at most 107): use a shorter MLREC_SERVICES_DIR"
  if pid_alive "$(pg_pidfile)"; then
    check_running_port postgres "$PG_PORT"
  else
    if ! pg_initialized || [[ "$(cat "$d/data/PG_VERSION")" != "$(basename "$(dirname "$bin")")" ]]; then
      pg_init "$bin"
    fi
    require_free_port postgres "$PG_PORT" MLREC_TEST_PG_PORT
    STARTED_NOW=postgres
    # Port and socket on the command line so MLREC_TEST_PG_PORT works on an existing data dir.
    # (A stale postmaster.pid left by a crash is handled by PostgreSQL itself.)
    as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t "$TIMEOUT" \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $d" start >/dev/null ||
      fail_with_log "postgres failed to start" "$d/postgres.log"
    echo "$PG_PORT" >"$d/port"
  fi
  wait_ready postgres "$(pg_pidfile)" "$d/postgres.log" \
    timeout 10 "$bin/pg_isready" -q -t 5 -h "$HOST" -p "$PG_PORT"
  # Role and database for the tests, created once. Bounded: a server that
  # accepts connections but never answers must fail `up`, not hang it.
  as_pg env PGCONNECT_TIMEOUT=10 timeout 60 "$bin/psql" -X -q -h "$d" -p "$PG_PORT" -U postgres \
    -d postgres -v ON_ERROR_STOP=1 >/dev/null 2>>"$d/postgres.log" <<'SQL' ||
SELECT 'CREATE ROLE mlrec LOGIN CREATEDB PASSWORD ''mlrec'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mlrec') \gexec
SELECT 'CREATE DATABASE mlrec OWNER mlrec'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'mlrec') \gexec
SQL
    fail_with_log "postgres: could not create the mlrec role and database" "$d/postgres.log"
  # The real check: the URL the tests use (password auth over TCP) works.
  PGPASSWORD=mlrec PGCONNECT_TIMEOUT=10 timeout 60 "$bin/psql" -X -q -h "$HOST" -p "$PG_PORT" \
    -U mlrec -d mlrec -c 'SELECT 1' >/dev/null 2>>"$d/postgres.log" ||
    fail_with_log "postgres: cannot log in as mlrec" "$d/postgres.log"
}

pg_down() {
  pid_alive "$(pg_pidfile)" || return 0
  local bin; bin="$(pg_bin)"
  # fast (disconnects clients), else immediate, else the postmaster is killed:
  # `down` always goes on to the other servers.
  as_pg "$bin/pg_ctl" -D "$DIR/postgres/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
    as_pg "$bin/pg_ctl" -D "$DIR/postgres/data" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
    stop_wait "$(pg_pidfile)"
}

# --- Kafka (KRaft, single node) ----------------------------------------------

kafka_pidfile() { echo "$DIR/kafka/kafka.pid"; }

# Jars from Maven Central (the Apache download site is not reachable from CI).
# Downloaded into a temp dir and renamed, so an interrupted fetch is retried.
# Maven keeps what it downloads in its local repository (~/.m2/repository),
# so a retry or another version downloads only what is missing. Each attempt
# is bounded (a stalled connection must not hang CI) and retried: Maven
# Central answering 5xx or resetting a connection now and then is normal.
kafka_fetch() {
  [[ -f "$KAFKA_HOME/libs/.complete" ]] && return 0
  ensure_cmd mvn maven
  log "kafka: fetching kafka_2.13:$KAFKA_VERSION jars with Maven into $KAFKA_HOME/libs"
  local t0 tmp attempt; t0="$(now)"
  mkdir -p "$KAFKA_HOME"
  local force=()
  for attempt in 1 2 3; do
    tmp="$(mktemp -d "$KAFKA_HOME/libs.XXXXXX")"
    # Maven records a failed download in ~/.m2 and does not try it again
    # for a day ("was cached in the local repository"), even after a mere
    # connection reset: retries force it (-U).
    if timeout 900 mvn -B -Dstyle.color=never "${force[@]}" -f "$ROOT/scripts/kafka/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" \
      -Dmaven.wagon.http.retryHandler.count=3 -Dmaven.wagon.httpconnectionManager.ttlSeconds=25 \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      </dev/null >"$KAFKA_HOME/mvn.log" 2>&1; then
      break
    fi
    rm -rf "$tmp"
    ((attempt < 3)) ||
      fail_with_log "kafka: mvn could not fetch kafka_2.13:$KAFKA_VERSION from Maven Central (3 attempts; is the version right?)" "$KAFKA_HOME/mvn.log"
    log "kafka: mvn failed (attempt $attempt of 3: $(grep -m1 -E '^\[ERROR\]' "$KAFKA_HOME/mvn.log" | cut -c1-200)); retrying in $((attempt * 10))s"
    sleep $((attempt * 10))
    force=(-U)
  done
  touch "$tmp/.complete"
  # Another fetch of the same version may have finished meanwhile: keep one.
  if [[ -f "$KAFKA_HOME/libs/.complete" ]]; then
    rm -rf "$tmp"
  else
    rm -rf "$KAFKA_HOME/libs"
    mv -T "$tmp" "$KAFKA_HOME/libs"
  fi
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

# Fresh KRaft storage. KRaft needs formatted storage and a cluster id: 16
# random bytes in base64url. Letters instead of '-'/'_' so the id never looks
# like an option. The Kafka version that formatted it is recorded beside it.
kafka_format() {
  local d="$DIR/kafka" cluster_id
  rm -rf "$d/data" "$d/data.version"
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' 'xy' | tr -d '=')"
  "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$d/server.properties" </dev/null >"$d/format.log" 2>&1 || {
    rm -rf "$d/data" # a half-formatted directory must not be taken for storage next time
    fail_with_log "kafka storage format failed" "$d/format.log"
  }
  echo "$KAFKA_VERSION" >"$d/data.version"
}

# In $d, so nothing (a JVM crash's hs_err_pid*.log) lands in the caller's
# directory (the repository).
kafka_start() {
  local d="$DIR/kafka"
  (cd "$d" && exec nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$d/server.properties") \
    >"$d/kafka.log" 2>&1 </dev/null &
  echo $! >"$(kafka_pidfile)"
  echo "$KAFKA_PORT" >"$d/port"
  echo "controller $KAFKA_CONTROLLER_PORT" >"$d/settings"
}

java_major() { java -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p'; }

kafka_up() {
  ensure_cmd java default-jre-headless
  local major; major="$(java_major)"
  if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "kafka: needs Java 17 or later; 'java' on PATH is version ${major:-unknown} ($(command -v java))"
  fi
  kafka_fetch
  local d="$DIR/kafka" fresh="" stamp rc=0
  mkdir -p "$d"
  if pid_alive "$(kafka_pidfile)"; then
    check_running_port kafka "$KAFKA_PORT" "controller $KAFKA_CONTROLLER_PORT"
    wait_ready kafka "$(kafka_pidfile)" "$d/kafka.log" kafka_metadata_ok
    return
  fi
  require_free_port kafka "$KAFKA_PORT" MLREC_TEST_KAFKA_PORT
  require_free_port kafka-controller "$KAFKA_CONTROLLER_PORT" MLREC_TEST_KAFKA_CONTROLLER_PORT
  kafka_config
  kafka_java_cmd
  # The data survives `down`/`up` (bench/loss.py restarts the broker and
  # expects its events back), unless this Kafka cannot use it: missing or
  # half-formatted storage, or storage formatted by another Kafka version
  # (an older broker cannot read a newer one's metadata).
  stamp="$(cat "$d/data.version" 2>/dev/null || true)"
  if [[ ! -f "$d/data/meta.properties" ]]; then
    kafka_format
    fresh=1
  elif [[ -n $stamp && $stamp != "$KAFKA_VERSION" ]]; then
    log "kafka: storage in $d/data was formatted by Kafka $stamp, this is $KAFKA_VERSION: formatting it afresh (test data discarded)"
    kafka_format
    fresh=1
  fi
  kafka_start
  poll_ready kafka "$(kafka_pidfile)" "$d/kafka.log" kafka_metadata_ok || rc=$?
  if ((rc == 1)) && [[ -z $fresh ]]; then
    # Storage from an unknown version, another cluster id, or damaged: it is
    # throwaway test data, so one retry on fresh storage rather than a
    # directory that fails every start until someone deletes it.
    cp "$d/kafka.log" "$d/kafka.log.failed" 2>/dev/null || true
    log "kafka: exited during startup on its existing storage ($(grep -m1 -E 'ERROR|Exception' "$d/kafka.log" | cut -c1-200)); formatting it afresh and retrying once (log of the failed start: $d/kafka.log.failed)"
    kafka_format
    kafka_start
    rc=0
    poll_ready kafka "$(kafka_pidfile)" "$d/kafka.log" kafka_metadata_ok || rc=$?
  fi
  case $rc in
    0) echo "$KAFKA_VERSION" >"$d/data.version" ;;
    1) fail_with_log "kafka exited during startup" "$d/kafka.log" ;;
    *) stop_wait "$(kafka_pidfile)"
       fail_with_log "kafka not ready after ${TIMEOUT}s" "$d/kafka.log" ;;
  esac
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
  ensure_cmd curl curl
  local d="$DIR/prometheus"
  mkdir -p "$d/data"
  if pid_alive "$(prom_pidfile)"; then
    check_running_port prometheus "$PROM_PORT" "target $PROM_TARGET_PORT"
  else
    require_free_port prometheus "$PROM_PORT" MLREC_TEST_PROMETHEUS_PORT
    # Not fatal (a test run sharing this target port may be serving it right
    # now), but tests that serve metrics there will fail to bind if it stays taken.
    ! port_open "$PROM_TARGET_PORT" ||
      log "warning: the scrape target port $HOST:$PROM_TARGET_PORT is in use; tests serve metrics there (MLREC_TEST_PROMETHEUS_TARGET_PORT moves it)"
    prom_config
    STARTED_NOW=prometheus
    # --web.enable-lifecycle: tests may POST /-/reload after editing the config.
    # In $d: nothing lands in the caller's directory.
    (cd "$d" && exec nohup prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
      --storage.tsdb.retention.time=2h --web.listen-address="$HOST:$PROM_PORT" \
      --web.enable-lifecycle --log.level=warn) >"$d/prometheus.log" 2>&1 </dev/null &
    echo $! >"$(prom_pidfile)"
    echo "$PROM_PORT" >"$d/port"
    echo "target $PROM_TARGET_PORT" >"$d/settings"
  fi
  wait_ready prometheus "$(prom_pidfile)" "$d/prometheus.log" \
    curl -fsS --max-time 2 "http://$HOST:$PROM_PORT/-/ready"
}

# --- common ------------------------------------------------------------------

# TERM, then wait up to 30 s (Kafka's controlled shutdown takes a few), then KILL.
# Only our own server is signalled: a stale pid file (crash, reboot) may name
# a pid that now belongs to anything; it is removed, nothing is killed.
stop_wait() {
  local pidfile=$1 pid i
  [[ -e "$pidfile" ]] || return 0
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(head -n1 "$pidfile")"
  kill "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true # a stopped (hung, SIGSTOPped) server acts on TERM only once continued
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
  # The postgres user must reach its data dir inside. a+x only: never take
  # permissions away (MLREC_SERVICES_DIR may be a shared directory like /tmp).
  chmod a+x "$DIR"
  local s t0 pid
  for s in "${SERVICES[@]}"; do
    t0="$(now)"
    case $s in
      redis) redis_up ;; postgres) pg_up ;; kafka) kafka_up ;; prometheus) prom_up ;;
    esac
    log "$s ready on $HOST:$(svc_port "$s") ($(elapsed "$t0")s)"
  done
  # A server that passed its readiness check and died right after (or while a
  # later one started) must fail `up` here, not every test that needs it.
  sleep 1
  for s in "${SERVICES[@]}"; do
    if ! pid_alive "$(svc_pidfile "$s")" || ! port_open "$(svc_port "$s")"; then
      pid="$(head -n1 "$(svc_pidfile "$s")" 2>/dev/null || true)"
      fail_with_log "$s (pid ${pid:-?}) stopped running or answering on $HOST:$(svc_port "$s") right after it was ready" \
        "$(svc_log "$s")"
    fi
  done
  print_env "" >"$DIR/env"
  print_env ""
}

cmd_down() {
  local i s
  # Reverse order of `up`.
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[i]}
    if ! pid_alive "$(svc_pidfile "$s")"; then
      # Nothing of ours runs; a stale pid file is dropped, nothing is signalled.
      rm -f "$(svc_pidfile "$s")"
      log "$s was not running (from $DIR)"
      continue
    fi
    case $s in
      redis) redis_down ;; postgres) pg_down ;;
      kafka | prometheus) stop_wait "$(svc_pidfile "$s")" ;;
    esac
    log "$s stopped"
  done
}

# running: our process and its port answers; not-answering: our process, port
# closed (starting, hung, or shutting down); stopped: no process of ours.
cmd_status() {
  local s port rc=0
  for s in "${SERVICES[@]}"; do
    port="$(cat "$DIR/$s/port" 2>/dev/null || svc_port "$s")"
    if ! pid_alive "$(svc_pidfile "$s")"; then
      printf '%-10s stopped\n' "$s"
      rc=3
    elif port_open "$port"; then
      printf '%-10s running  pid %s  %s:%s\n' "$s" "$(head -n1 "$(svc_pidfile "$s")")" "$HOST" "$port"
    else
      printf '%-10s not-answering  pid %s  %s:%s (log: %s)\n' "$s" \
        "$(head -n1 "$(svc_pidfile "$s")")" "$HOST" "$port" "$(svc_log "$s")"
      rc=3
    fi
  done
  return $rc
}

svc_log() { echo "$DIR/$1/$1.log"; }

main() {
  local cmd=${1:-}
  shift || true
  parse_services "$@"
  case $cmd in
    up | down | status | env) check_settings ;;
  esac
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env "export " ;;
    *) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
