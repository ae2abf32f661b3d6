#!/usr/bin/env bash
# Starts a throwaway ClickHouse server for the tests, without systemd: Debian's clickhouse-server
# with its own config.xml and users.xml in a temporary directory, listening on 127.0.0.1 only.
#
#   scripts/clickhouse.sh start   installs Debian's clickhouse-server if missing, starts it, waits
#                                 until it answers, and prints its HTTP URL
#   scripts/clickhouse.sh stop    stops the server this script started, and waits until it has
#                                 exited
#   scripts/clickhouse.sh resume  starts that server again on the data it kept (after `stop`),
#                                 waits until it answers, and prints its HTTP URL
#
# Ports: SPANHOUSE_TEST_CLICKHOUSE_HTTP_PORT (default 18123) and _TCP_PORT (default 19000); its
# directory SPANHOUSE_TEST_CLICKHOUSE_DIR (default $TMPDIR/spanhouse-clickhouse).
set -euo pipefail

http_port="${SPANHOUSE_TEST_CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port="${SPANHOUSE_TEST_CLICKHOUSE_TCP_PORT:-19000}"
root="${SPANHOUSE_TEST_CLICKHOUSE_DIR:-${TMPDIR:-/tmp}/spanhouse-clickhouse}"

install() {
  if command -v clickhouse-server >/dev/null 2>&1; then
    return
  fi
  echo "installing Debian's clickhouse-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q clickhouse-server clickhouse-client >/dev/null
}

start() {
  install
  if curl -sf "http://127.0.0.1:${http_port}/ping" >/dev/null 2>&1; then
    echo "http://127.0.0.1:${http_port}"
    return
  fi
  rm -rf "$root"
  mkdir -p "$root/data" "$root/tmp" "$root/user_files" "$root/format_schemas" "$root/log"
  cat >"$root/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$root/log/clickhouse-server.log</log>
        <errorlog>$root/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <http_port>${http_port}</http_port>
    <tcp_port>${tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>512</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$root/data/</path>
    <tmp_path>$root/tmp/</tmp_path>
    <user_files_path>$root/user_files/</user_files_path>
    <format_schema_path>$root/format_schemas/</format_schema_path>
    <users_config>$root/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <!-- Parts a merge or a mutation (a purge's ALTER TABLE ... DELETE) replaced leave the disk
         10 s after, not 480 s: the deletion tests look for deleted texts in the files. -->
    <merge_tree>
        <old_parts_lifetime>10</old_parts_lifetime>
    </merge_tree>
</yandex>
XML
  cat >"$root/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
  launch
}

# Starts the server of "$root/config.xml" and waits until it answers.
launch() {
  clickhouse-server --config-file="$root/config.xml" --pid-file="$root/clickhouse.pid" --daemon
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:${http_port}/ping" >/dev/null 2>&1; then
      echo "http://127.0.0.1:${http_port}"
      return
    fi
    sleep 0.5
  done
  echo "ClickHouse did not start; its log:" >&2
  tail -n 50 "$root/log/clickhouse-server.err.log" >&2 || true
  exit 1
}

resume() {
  if [ ! -f "$root/config.xml" ]; then
    echo "no ClickHouse was started in $root" >&2
    exit 1
  fi
  if curl -sf "http://127.0.0.1:${http_port}/ping" >/dev/null 2>&1; then
    echo "http://127.0.0.1:${http_port}"
    return
  fi
  launch
}

stop() {
  if [ -f "$root/clickhouse.pid" ]; then
    local pid
    pid=$(cat "$root/clickhouse.pid")
    kill "$pid" 2>/dev/null || true
    # Until it has exited (at most 60 s), so that its ports and data are free again.
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$root/clickhouse.pid"
  fi
}

case "${1:-}" in
  start) start ;;
  resume) resume ;;
  stop) stop ;;
  *) echo "usage: $0 start|resume|stop" >&2; exit 2 ;;
esac
