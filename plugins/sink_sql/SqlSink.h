// sink_sql: every change written through Poco::Data into SQLite, PostgreSQL or MySQL/MariaDB, so
// that each table holds the latest version of every record, never an older one over a newer one,
// and a replay changes nothing (see README.md).
//
// The class is in its own header so that bench/sql can drive the real write path without the
// host; the plugin's entry symbol is in plugin.cpp.
#pragma once

#include <ferry/plugin.hpp>

#include <memory>
#include <span>

namespace ferry::sql {

inline constexpr ferry_option_def kOptions[] = {
    ferry::Option("connector")
        .defaultsTo("sqlite")
        .choices("sqlite|postgresql|mysql")
        .help("database: sqlite (embedded, a file), postgresql or mysql (MySQL or MariaDB)"),
    ferry::Option("connection")
        .required()
        .secret()
        .help("sqlite: the database file (created when missing); postgresql: a libpq conninfo "
              "('host=db port=5432 user=ferry password=… dbname=erp'); mysql: "
              "'host=db;port=3306;user=ferry;password=…;db=erp'"),
    ferry::Option("changes", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("write the generic changes table: one row per record, its latest version and body"),
    ferry::Option("changes_table")
        .defaultsTo("ferry_changes")
        .help("name of the changes table (schema.table on postgresql and mysql)"),
    ferry::Option("history", FERRY_OPT_BOOL)
        .defaultsTo("false")
        .help("also keep every version once in the history table"),
    ferry::Option("history_table")
        .defaultsTo("ferry_history")
        .help("name of the history table"),
    ferry::Option("table").help(
        "mapped header table (one row per record, e.g. orders); empty: none"),
    ferry::Option("table_columns")
        .defaultsTo("layout:duckhub_order")
        .help("columns of `table` in the mapping language (Header=expression; …) or "
              "layout:<built-in name>"),
    ferry::Option("table_keys", FERRY_OPT_LIST)
        .help("key columns of `table` (its primary key); default: the first column"),
    ferry::Option("rows_table").help(
        "mapped rows table (one row per element of `rows`, e.g. order_lines); empty: none"),
    ferry::Option("rows_columns")
        .defaultsTo("layout:duckhub_order_lines")
        .help("columns of `rows_table` in the mapping language or layout:<built-in name>"),
    ferry::Option("rows").help(
        "JSON Pointer to the array whose elements are the rows of `rows_table` (e.g. /items); "
        "taken from the layout when rows_columns is a layout"),
    ferry::Option("rows_keys", FERRY_OPT_LIST)
        .help("key columns of `rows_table`; default for layout:duckhub_order_lines: "
              "order_id,line"),
    ferry::Option("removed_rows")
        .defaultsTo("delete")
        .choices("delete|flag")
        .help("rows of an element that disappeared from a newer version: delete them, or keep "
              "them with ferry_removed = 1"),
    ferry::Option("create_tables", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("create missing tables; existing tables are checked for the needed columns either "
              "way (false: a missing table is an error)"),
    ferry::Option("batch_size", FERRY_OPT_INT)
        .defaultsTo("500")
        .help("most events per batch: one database transaction"),
    ferry::Option("batch_delay", FERRY_OPT_DURATION)
        .defaultsTo("1s")
        .help("longest a change waits before a partial batch is written"),
};

class SqlSink : public ferry::Sink {
 public:
  // Validates the options (names, mappings); throws ferry::Fatal with the option named. Does not
  // connect: a database that is down at start-up makes the first write retry.
  SqlSink(ferry::Host host, const ferry::Options& options);
  ~SqlSink() override;

  ferry::WriteOutcome write(const ferry::Batch& batch) override;
  // Connects and checks (or creates) the tables; throws ferry::Retry/Fatal with the reason.
  void check() override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::sql
