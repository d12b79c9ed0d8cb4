#!/usr/bin/env bash
# Trino, the engine Athena v3 is built on, pinned, cached outside the repo:
# the SQL engine the query tests (tests/it/queries_trino.rs), the benchmark and
# the demo run the named queries on, reading the Glue table from moto and the
# delivered objects from moto's S3.
#
#   scripts/trino.sh install              fetch server + hive/tpch plugins from
#                                         Maven Central (idempotent, cached)
#   scripts/trino.sh start MOTO [PORT] [S3]
#                                         start on 127.0.0.1:PORT (default 8090;
#                                         8080 is sales-operator run's metrics)
#                                         against the moto endpoint MOTO (Glue);
#                                         S3 defaults to MOTO (give a proxy's URL
#                                         to count requests); prints the URL
#   scripts/trino.sh run MOTO [PORT] [S3] the same in the foreground
#   scripts/trino.sh stop [PORT]          stop the server started on PORT
#   scripts/trino.sh home                 print the install directory
set -euo pipefail

TRINO_VERSION="${TRINO_VERSION:-476}"
CACHE="${SALES_OPERATOR_CACHE:-$HOME/.cache/sales-operator}"
HOME_DIR="$CACHE/trino-$TRINO_VERSION"
STATE="${SALES_OPERATOR_STATE:-${TMPDIR:-/tmp}/sales-operator-trino}"
# Trino 476 needs Java 24+; the default java here is 17.
export JAVA_HOME="${TRINO_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
HEAP="${TRINO_HEAP:-1G}"

install() {
  if [ -f "$HOME_DIR/.installed" ]; then return 0; fi
  rm -rf "$HOME_DIR" "$HOME_DIR.m2"
  mkdir -p "$HOME_DIR"
  local repo="$HOME_DIR.m2" artifact
  # Maven 3.9 on JDK 24+ warns about its own sun.misc.Unsafe use, a dozen lines that say
  # nothing about this install; JDKs that know the flag are told that it is allowed.
  if "$JAVA_HOME/bin/java" --sun-misc-unsafe-memory-access=allow -version >/dev/null 2>&1; then
    export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
  fi
  echo "installing Trino $TRINO_VERSION from Maven Central into $HOME_DIR (once, about 470 MB)" >&2
  for artifact in trino-server-core:tar.gz trino-hive:zip trino-tpch:zip; do
    # Maven 3.8 writes colour resets even in batch mode: only its words reach the terminal.
    mvn -q -B dependency:get -Dmaven.repo.local="$repo" -Dtransitive=false \
      -Dartifact="io.trino:${artifact%%:*}:$TRINO_VERSION:${artifact##*:}" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  done
  local base="$repo/io/trino"
  tar -xzf "$base/trino-server-core/$TRINO_VERSION/trino-server-core-$TRINO_VERSION.tar.gz" \
    -C "$HOME_DIR" --strip-components=1
  mkdir -p "$HOME_DIR/plugin"
  local plugin tmp
  for plugin in hive tpch; do
    tmp="$(mktemp -d)"
    (cd "$tmp" && jar xf "$base/trino-$plugin/$TRINO_VERSION/trino-$plugin-$TRINO_VERSION.zip" 2>/dev/null \
      || python3 -m zipfile -e "$base/trino-$plugin/$TRINO_VERSION/trino-$plugin-$TRINO_VERSION.zip" .)
    rm -rf "$HOME_DIR/plugin/$plugin"
    mv "$tmp"/* "$HOME_DIR/plugin/$plugin"
    rmdir "$tmp"
  done
  rm -rf "$repo"
  touch "$HOME_DIR/.installed"
}

# Writes the etc directory of a server on PORT reading Glue at MOTO, S3 at S3.
configure() {
  local moto="$1" port="$2" s3="$3" etc="$STATE/$2/etc" region="${AWS_REGION:-eu-west-1}"
  mkdir -p "$etc/catalog" "$STATE/$port/data"
  cat >"$etc/node.properties" <<PROPS
node.environment=sales_operator_test
node.id=sales-operator-$port
node.data-dir=$STATE/$port/data
PROPS
  cat >"$etc/jvm.config" <<PROPS
-server
-Xmx$HEAP
-XX:+UseG1GC
-XX:+ExitOnOutOfMemoryError
-Djdk.attach.allowAttachSelf=true
-Duser.timezone=UTC
-Dfile.encoding=UTF-8
PROPS
  cat >"$etc/config.properties" <<PROPS
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$port
discovery.uri=http://127.0.0.1:$port
query.max-memory=512MB
query.max-memory-per-node=512MB
# One node, its own coordinator: a missed heartbeat on a loaded machine must not take the only
# node out of scheduling (NO_NODES_AVAILABLE).
failure-detector.enabled=false
PROPS
  cat >"$etc/log.properties" <<PROPS
io.trino=WARN
PROPS
  # The catalog Athena calls awsdatacatalog: Glue and S3 of the emulator.
  cat >"$etc/catalog/awsdatacatalog.properties" <<PROPS
connector.name=hive
hive.metastore=glue
hive.metastore.glue.region=$region
hive.metastore.glue.endpoint-url=$moto
hive.metastore.glue.aws-access-key=testing
hive.metastore.glue.aws-secret-key=testing
fs.native-s3.enabled=true
s3.endpoint=$s3
s3.region=$region
s3.path-style-access=true
s3.aws-access-key=testing
s3.aws-secret-key=testing
hive.partition-projection-enabled=true
# moto has no GetColumnStatisticsForPartition
hive.table-statistics-enabled=false
hive.ignore-absent-partitions=true
PROPS
  echo "connector.name=tpch" >"$etc/catalog/tpch.properties"
  echo "$etc"
}

# Runs a server in the foreground (the tests supervise it).
run() {
  local moto="${1:?usage: $0 run MOTO [PORT] [S3]}" port="${2:-8090}" s3="${3:-${1}}" etc
  install
  etc="$(configure "$moto" "$port" "$s3")"
  exec "$HOME_DIR/bin/launcher" run --etc-dir="$etc" --data-dir="$STATE/$port/data" \
    --launcher-log-file="$STATE/$port/launcher.log" --server-log-file="$STATE/$port/server.log"
}

# Waits until the server on PORT runs queries: /v1/info says it has started, then an active
# node is listed by a query that answers (started comes before Trino can schedule a query:
# NO_NODES_AVAILABLE). Gives up after TRINO_START_TIMEOUT seconds (default 300).
wait_ready() {
  local port="$1" pid="$2" url="http://127.0.0.1:$1" limit="${TRINO_START_TIMEOUT:-300}" began=$SECONDS said=$SECONDS
  until curl -fsS "$url/v1/info" 2>/dev/null | grep -q '"starting":false'; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "trino exited while starting on port $port; log: $STATE/$port/trino.log" >&2
      return 1
    fi
    if [ $((SECONDS - began)) -ge "$limit" ]; then
      echo "trino did not start on port $port within $limit s; log: $STATE/$port/trino.log" >&2
      return 1
    fi
    if [ $((SECONDS - said)) -ge 30 ]; then
      echo "    still waiting for Trino to start ($((SECONDS - began)) s)" >&2
      said=$SECONDS
    fi
    sleep 0.2
  done
  if ! python3 "$(dirname "$0")/trino_query.py" "$url" --wait-ready "$limit" >&2; then
    echo "log: $STATE/$port/trino.log" >&2
    return 1
  fi
  echo "$url"
}

start() {
  local moto="${1:?usage: $0 start MOTO [PORT] [S3]}" port="${2:-8090}" s3="${3:-${1}}"
  install
  mkdir -p "$STATE/$port"
  if curl -fsS "http://127.0.0.1:$port/v1/info" >/dev/null 2>&1; then
    wait_ready "$port" ""
    return
  fi
  nohup "$0" run "$moto" "$port" "$s3" >"$STATE/$port/trino.log" 2>&1 &
  echo $! >"$STATE/$port/trino.pid"
  wait_ready "$port" "$!"
}

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

stop() { stop_pidfile "$STATE/${1:-8090}/trino.pid"; }

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  home) install; echo "$HOME_DIR" ;;
  *) echo "usage: $0 install|start MOTO [PORT] [S3]|run MOTO [PORT] [S3]|stop [PORT]|home" >&2; exit 2 ;;
esac
