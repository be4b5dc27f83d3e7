#!/usr/bin/env bash
# Prints rows/s into SQLite and PostgreSQL (and MariaDB) through sink_sql's write path, next to
# the raw Poco::Data multi-row INSERT rate measured in the same run. Starts throwaway servers on
# private ports (tests/plugins/sql/servers.sh) and stops them afterwards. Each database twice:
# the changes table alone, then with history, orders and order_lines (--mapped).
#   bench/sql/run.sh [events] [batch]
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-20000}
batch=${2:-500}
build=${FERRY_BUILD_DIR:-build}
cmake --build "$build" --target sql_bench > /dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-sql.XXXXXX")
chmod 755 "$dir"
trap 'tests/plugins/sql/servers.sh stop "$dir"; rm -rf "$dir"' EXIT
tests/plugins/sql/servers.sh start "$dir"
. "$dir/env"
bench="$build/bin/sql_bench"
for mapped in "" --mapped; do
  "$bench" --connector sqlite --connection "$dir/bench.db" --events "$events" --batch "$batch" $mapped
  "$bench" --connector postgresql --connection "$FERRY_TEST_PG" --events "$events" --batch "$batch" $mapped
  "$bench" --connector mysql --connection "$FERRY_TEST_MYSQL" --events "$events" --batch "$batch" $mapped
done
