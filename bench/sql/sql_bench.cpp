// Rows per second through sink_sql's real write path (SqlSink::write, the code of sink_sql.so)
// next to the raw Poco::Data multi-row INSERT rate measured in the same run, on the same database.
//
//   sql_bench --connector sqlite|postgresql|mysql --connection TEXT [--events N] [--batch B]
//             [--mapped]
//
// The sink writes the changes table (one row per event, upsert with the version guard, the
// journal offset in the same transaction); the raw loop inserts the same rows into a table of the
// same shape with plain multi-row INSERTs, B rows per transaction, binding every value as text.
// --mapped: the sink also writes the history and the mapped tables orders and order_lines (the
// built-in duckhub_order layouts, 19 and 21 columns): per event one changes, history and orders
// row, two order_lines rows and a ferry_versions row.
#include <Poco/Data/MySQL/SessionImpl.h>
#include <Poco/Data/PostgreSQL/SessionImpl.h>
#include <Poco/Data/SQLite/SessionImpl.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "Dialect.h"
#include "SqlSink.h"

namespace {

using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> g_state;
std::string g_error;

std::string text(ferry_plugin_str s) { return std::string(s.ptr, s.len); }
ferry_host_str lend(const std::string& s) { return {s.data(), s.size()}; }

void hostLog(ferry_host_ctx*, ferry_log_level level, ferry_plugin_str message) {
  if (level >= FERRY_LOG_WARNING) std::cerr << "sink: " << text(message) << "\n";
}
void hostSetError(ferry_host_ctx*, ferry_plugin_str message) { g_error = text(message); }
void hostRetryAfter(ferry_host_ctx*, int64_t) {}
ferry_state_status hostStateGet(ferry_host_ctx*, ferry_plugin_str key, ferry_receive_fn receive,
                                void* user) {
  auto it = g_state.find(text(key));
  if (it == g_state.end()) return FERRY_STATE_ABSENT;
  receive(user, lend(it->second));
  return FERRY_STATE_OK;
}
ferry_state_status hostStateSet(ferry_host_ctx*, ferry_plugin_str key, ferry_plugin_str value) {
  g_state[text(key)] = text(value);
  return FERRY_STATE_OK;
}
ferry_state_status hostStateErase(ferry_host_ctx*, ferry_plugin_str key) {
  g_state.erase(text(key));
  return FERRY_STATE_OK;
}
void hostCounter(ferry_host_ctx*, ferry_plugin_str, double) {}
void hostGauge(ferry_host_ctx*, ferry_plugin_str, double) {}
int hostStopping(ferry_host_ctx*) { return 0; }
ferry_host_str hostJournalId(ferry_host_ctx*) { return {"20260101T000000Z-00000000000bench", 33}; }

struct Events {
  std::vector<std::string> keys, versions, bodies, ids;
  std::vector<ferry_event> raw;
  std::vector<const ferry_event*> pointers;
};

// `n` DuckHub-shaped orders (~700 bytes of JSON each), versions one millisecond apart.
Events makeEvents(size_t n, int64_t base_ms) {
  Events e;
  e.keys.resize(n);
  e.versions.resize(n);
  e.bodies.resize(n);
  e.ids.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t ms = base_ms + static_cast<int64_t>(i);
    char version[64];
    std::snprintf(version, sizeof version, "2026-07-05T%02lld:%02lld:%02lld.%03lldZ",
                  static_cast<long long>(ms / 3600000 % 24), static_cast<long long>(ms / 60000 % 60),
                  static_cast<long long>(ms / 1000 % 60), static_cast<long long>(ms % 1000));
    e.keys[i] = "order-" + std::to_string(i);
    e.versions[i] = version;
    e.bodies[i] =
        "{\"id\":\"" + e.keys[i] + "\",\"orderNumber\":\"" + std::to_string(100000 + i) +
        "\",\"status\":\"confirmed\",\"type\":\"delivery\",\"customerName\":\"Ada Lovelace\","
        "\"currency\":\"EUR\",\"subtotalAmount\":1950,\"deliveryFee\":250,\"discountAmount\":0,"
        "\"totalAmount\":2200,\"createdAt\":\"2026-07-05T00:00:00.000Z\",\"updatedAt\":\"" +
        e.versions[i] +
        "\",\"items\":[{\"productExternalId\":\"p-1\",\"productName\":\"Pizza Margherita\","
        "\"quantity\":2,\"unitPrice\":850,\"totalPrice\":1700,\"modifiers\":[]},"
        "{\"productExternalId\":\"p-2\",\"productName\":\"Cola 0.33l\",\"quantity\":1,"
        "\"unitPrice\":250,\"totalPrice\":250,\"modifiers\":[]}]}";
    e.ids[i] = "bench/order/" + e.keys[i] + "/" + e.versions[i];
  }
  static const std::string source = "bench", entity = "order";
  e.raw.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    e.raw.push_back(ferry_event{sizeof(ferry_event), 0, static_cast<int64_t>(i + 1), 0,
                                lend(source), lend(entity), lend(e.keys[i]), lend(e.versions[i]),
                                {}, lend(e.bodies[i]), {}, lend(e.ids[i])});
    e.pointers.push_back(&e.raw.back());
  }
  return e;
}

Poco::Data::Session open(const std::string& connector, const std::string& connection) {
  using Poco::AutoPtr;
  using Poco::Data::SessionImpl;
  if (connector == "postgresql")
    return Poco::Data::Session(
        AutoPtr<SessionImpl>(new Poco::Data::PostgreSQL::SessionImpl(connection, 10)));
  if (connector == "mysql")
    return Poco::Data::Session(
        AutoPtr<SessionImpl>(new Poco::Data::MySQL::SessionImpl(connection, 10)));
  return Poco::Data::Session(AutoPtr<SessionImpl>(new Poco::Data::SQLite::SessionImpl(connection, 10)));
}

// The raw rate: plain multi-row INSERTs of the same ten values per row, `batch` rows per
// transaction (split into statements within the dialect's parameter limit, as the sink does).
double rawRate(const std::string& connector, const std::string& connection, const Events& ev,
               size_t batch) {
  using namespace Poco::Data::Keywords;
  Poco::Data::Session s = open(connector, connection);
  const bool pg = connector == "postgresql", my = connector == "mysql";
  if (!pg && !my) {
    s << "PRAGMA journal_mode = WAL", now;
    s << "PRAGMA synchronous = FULL", now;
  }
  s << "DROP TABLE IF EXISTS raw_bench", now;
  const std::string text = my ? "VARCHAR(191)" : "TEXT";
  s << "CREATE TABLE raw_bench (source " + text + " NOT NULL, entity " + text + " NOT NULL, " +
           (my ? "`key`" : "\"key\"") + " " + text +
           " NOT NULL, version TEXT NOT NULL, version_ns BIGINT NOT NULL, previous TEXT, echo "
           "SMALLINT NOT NULL, body " +
           (pg ? "JSONB" : my ? "JSON" : "TEXT") +
           ", sequence BIGINT NOT NULL, written_at TEXT NOT NULL)",
      now;
  const std::string begin = my ? "START TRANSACTION" : (pg ? "BEGIN" : "BEGIN IMMEDIATE");
  const auto t0 = Clock::now();
  const ferry::sql::Connector c = pg   ? ferry::sql::Connector::kPostgres
                                 : my ? ferry::sql::Connector::kMySql
                                      : ferry::sql::Connector::kSqlite;
  const size_t per_statement = ferry::sql::Dialect(c).maxParams() / 10;
  for (size_t first = 0; first < ev.raw.size(); first += batch) {
    const size_t end = std::min(ev.raw.size(), first + batch);
    s << begin, now;
    for (size_t a = first; a < end; a += per_statement) {
      const size_t b = std::min(end, a + per_statement);
      std::string sql = std::string("INSERT INTO raw_bench VALUES ");
      size_t n = 0;
      for (size_t i = a; i < b; ++i) {
        sql += i > a ? ", (" : "(";
        for (int c = 0; c < 10; ++c) {
          sql += c ? ", " : "";
          sql += pg ? "$" + std::to_string(++n) : "?";
          if (pg && (c == 4 || c == 6 || c == 8)) sql += "::bigint";
          if (pg && c == 7) sql += "::jsonb";
        }
        sql += ")";
      }
      Poco::Data::Statement st(s);
      st << sql;
      for (size_t i = a; i < b; ++i) {
        const ferry::Event e(ev.raw[i]);
        st, bind(std::string(e.source())), bind(std::string(e.entity())),
            bind(std::string(e.key())), bind(std::string(e.version())),
            bind(std::to_string(1000 + i)), bind(Poco::Nullable<std::string>()),
            bind(std::string("0")), bind(std::string(e.body())), bind(std::to_string(e.sequence())),
            bind(std::string("2026-07-05T00:00:00.000Z"));
      }
      st.execute();
    }
    s << "COMMIT", now;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  s << "DROP TABLE raw_bench", now;
  return static_cast<double>(ev.raw.size()) / secs;
}

double sinkRate(const std::string& connector, const std::string& connection, const Events& ev,
                size_t batch, const std::string& extra_table, bool mapped) {
  ferry_host_api api{};
  api.abi_major = FERRY_ABI_MAJOR;
  api.abi_minor = FERRY_ABI_MINOR;
  api.struct_size = sizeof(ferry_host_api);
  api.log = hostLog;
  api.set_error = hostSetError;
  api.set_retry_after = hostRetryAfter;
  api.state_get = hostStateGet;
  api.state_set = hostStateSet;
  api.state_erase = hostStateErase;
  api.counter_add = hostCounter;
  api.gauge_set = hostGauge;
  api.stopping = hostStopping;
  api.journal_id = hostJournalId;
  g_state.clear();
  std::vector<std::pair<std::string, std::string>> opts = {
      {"connector", connector}, {"connection", connection}, {"changes", "true"},
      {"changes_table", "bench_changes" + extra_table}, {"history", "false"},
      {"create_tables", "true"}};
  if (mapped)
    opts.insert(opts.end(), {{"history", "true"},
                             {"history_table", "bench_history" + extra_table},
                             {"table", "bench_orders" + extra_table},
                             {"rows_table", "bench_order_lines" + extra_table}});
  std::vector<std::pair<std::string, std::optional<std::string>>> values(opts.begin(), opts.end());
  ferry::Host host(&api, nullptr);
  ferry::sql::SqlSink sink(host, ferry::Options(std::move(values)));
  // The table is created by the first write: do it before the clock starts.
  sink.check();
  const auto t0 = Clock::now();
  for (size_t first = 0; first < ev.raw.size(); first += batch) {
    const size_t n = std::min(batch, ev.raw.size() - first);
    ferry::WriteOutcome o = sink.write(ferry::Batch(ev.pointers.data() + first, n));
    if (o.status != FERRY_WRITE_OK) {
      std::cerr << "sink answered " << o.status << ": " << o.message << "\n";
      return 0;
    }
  }
  return static_cast<double>(ev.raw.size()) / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string connector = "sqlite", connection;
  size_t events = 20000, batch = 500;
  bool mapped = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--mapped") {
      mapped = true;
      continue;
    }
    if (value != nullptr && a == "--connector") connector = value;
    else if (value != nullptr && a == "--connection") connection = value;
    else if (value != nullptr && a == "--events") events = std::stoul(value);
    else if (value != nullptr && a == "--batch") batch = std::stoul(value);
    else {
      std::cerr << "usage: sql_bench --connector sqlite|postgresql|mysql --connection TEXT "
                   "[--events N] [--batch B] [--mapped]\n";
      return 64;
    }
    ++i;
  }
  if (connection.empty()) {
    std::cerr << "sql_bench: --connection is required\n";
    return 64;
  }
  try {
    Events ev = makeEvents(events, 0);
    const double raw = rawRate(connector, connection, ev, batch);
    const std::string suffix = "_" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000);
    const double sink = sinkRate(connector, connection, ev, batch, suffix, mapped);
    if (sink == 0) return 1;
    std::printf("%-10s  %7zu rows, batch %4zu:  raw multi-row INSERT %9.0f rows/s   sink_sql%s %9.0f "
                "events/s   (%.0f%% of raw)\n",
                connector.c_str(), events, batch, raw, mapped ? " mapped" : "", sink,
                100.0 * sink / raw);
    // The mapped tables write five rows per event: no comparison with the one-row raw rate.
    return mapped || sink >= raw / 2 ? 0 : 1;
  } catch (const Poco::Exception& e) {
    std::cerr << "sql_bench: " << e.displayText() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "sql_bench: " << e.what() << "\n";
    return 1;
  }
}
