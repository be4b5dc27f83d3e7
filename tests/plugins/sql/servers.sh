#!/usr/bin/env bash
# Throwaway database servers for sql_sink_tests and bench/sql: a PostgreSQL cluster and a MariaDB
# server, each on a private port, data directory and socket directory under DIR, never the
# machine's default ones. Both run as root's children but drop privileges as their servers
# require (PostgreSQL refuses root: it runs as the `postgres` user; mariadbd runs with
# --user=root, which it allows).
#
#   servers.sh start DIR    starts both, writes DIR/env (FERRY_TEST_PG=…, FERRY_TEST_MYSQL=…)
#   servers.sh stop DIR     stops whatever start left running
#
# Ports: $FERRY_TEST_PG_PORT and $FERRY_TEST_MYSQL_PORT, by default free ones.
# PostgreSQL runs with fsync=off (fast tests); FERRY_TEST_PG_FSYNC=on gives a benchmark durable
# figures.
# A server that cannot start fails the command: the tests need it, and would fail later with a
# less helpful message.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 64
fi
# A free port unless one is given: several test runs may share a machine.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if [ "$cmd" = start ]; then
  pg_port=${FERRY_TEST_PG_PORT:-$(free_port)}
  my_port=${FERRY_TEST_MYSQL_PORT:-$(free_port)}
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
  local d="$dir/pg"
  [ -n "$pgbin" ] || { echo "servers.sh: no PostgreSQL server binaries (apt-get install postgresql)" >&2; return 1; }
  rm -rf "$d"
  mkdir -p "$d"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$d"; fi
  chmod 700 "$d"
  as_postgres "$pgbin/initdb" -D "$d/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
    > "$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; return 1; }
  as_postgres "$pgbin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 30 \
    -o "-p $pg_port -k $d -c listen_addresses=127.0.0.1 -c fsync=${FERRY_TEST_PG_FSYNC:-off} -c max_connections=200" \
    start > /dev/null || { cat "$d/server.log" >&2; return 1; }
  echo "FERRY_TEST_PG='host=127.0.0.1 port=$pg_port user=postgres dbname=postgres'" >> "$dir/env"
}

stop_pg() {
  local d="$dir/pg"
  if [ -n "$pgbin" ] && [ -f "$d/data/postmaster.pid" ]; then
    as_postgres "$pgbin/pg_ctl" -D "$d/data" -m fast -w stop > /dev/null || true
  fi
}

start_mysql() {
  local d="$dir/mysql"
  if ! command -v mariadbd > /dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    echo "servers.sh: no MariaDB server (apt-get install mariadb-server)" >&2
    return 1
  fi
  rm -rf "$d"
  mkdir -p "$d/data" "$d/tmp"
  mariadb-install-db --no-defaults --user=root --datadir="$d/data" --auth-root-authentication-method=normal \
    --skip-test-db > "$d/install.log" 2>&1 || { cat "$d/install.log" >&2; return 1; }
  /usr/sbin/mariadbd --no-defaults --user=root --datadir="$d/data" --socket="$d/mysqld.sock" \
    --port="$my_port" --bind-address=127.0.0.1 --pid-file="$d/mysqld.pid" --tmpdir="$d/tmp" \
    --skip-name-resolve --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=64M \
    --log-error="$d/server.log" > /dev/null 2>&1 &
  for _ in $(seq 1 300); do
    if mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e "SELECT 1" > /dev/null 2>&1; then
      break
    fi
    sleep 0.1
  done
  mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e \
    "CREATE DATABASE IF NOT EXISTS ferry CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
     CREATE USER IF NOT EXISTS 'ferry'@'127.0.0.1' IDENTIFIED BY 'ferry';
     GRANT ALL ON *.* TO 'ferry'@'127.0.0.1'; FLUSH PRIVILEGES;" \
    || { cat "$d/server.log" >&2; return 1; }
  echo "FERRY_TEST_MYSQL='host=127.0.0.1;port=$my_port;user=ferry;password=ferry;db=ferry'" >> "$dir/env"
}

stop_mysql() {
  local d="$dir/mysql"
  if [ -f "$d/mysqld.pid" ]; then
    local pid
    pid=$(cat "$d/mysqld.pid")
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    : > "$dir/env"
    start_pg
    start_mysql
    ;;
  stop)
    stop_pg
    stop_mysql
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 64
    ;;
esac
