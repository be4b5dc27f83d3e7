// The entry symbol of sink_sql; the sink itself is SqlSink.cpp (shared with bench/sql).
#include "SqlSink.h"

FERRY_SINK_PLUGIN(ferry::sql::SqlSink, "sink_sql", "1.0.0",
                  "SQL tables through Poco::Data (SQLite, PostgreSQL, MySQL/MariaDB): the latest "
                  "version of every record, upserted with a version guard, effectively once",
                  ferry::sql::kOptions)
