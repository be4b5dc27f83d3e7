#include "ops/Pages.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#ifndef _WIN32
#include <sys/resource.h>
#include <unistd.h>
#endif

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "delivery/Delivery.h"
#include "loader/Loader.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

constexpr const char* kStates[] = {"starting", "running", "idle", "retrying", "paused", "stopped"};

std::string label(const std::string& key, const std::string& value) {
  return key + "=\"" + prom::escapeLabel(value) + "\"";
}

// One gauge family with one sample per (labels, value).
struct Family {
  std::string name, help;
  std::vector<std::pair<std::string, double>> samples;
  void add(const std::string& labels, double value) { samples.emplace_back(labels, value); }
  void writeTo(std::ostream& out, const std::string& type = "gauge") const {
    out << prom::header(name, type, help);
    for (const auto& [labels, value] : samples)
      out << "ferry_" << name << (labels.empty() ? "" : "{" + labels + "}") << " "
          << prom::number(value) << "\n";
  }
};

void writeHealth(std::ostream& out, const std::vector<HealthVerdict>& verdicts) {
  bool all = true;
  for (const auto& v : verdicts) all = all && v.healthy;
  Family healthy{"healthy", "1 when /healthz answers 200: every source and sink is healthy.", {}};
  healthy.add("", all ? 1 : 0);
  healthy.writeTo(out);
  for (const char* kind : {"source", "sink"}) {
    const std::string k = kind;
    Family up{k + "_healthy",
              "1 when the " + k + " is healthy as /healthz judges it (not stopped, not "
              "retrying or without success for longer than unhealthy_after).",
              {}};
    Family state{k + "_state", "1 for the " + k + "'s current state, 0 for the others.", {}};
    Family success{k + "_last_success_timestamp_seconds",
                   "When the " + k + " last succeeded (" +
                       (k == "source" ? "a poll cycle or a committed page"
                                      : "a batch written or nothing to write") +
                       "), seconds since the epoch; 0 before the first success.",
                   {}};
    for (const auto& v : verdicts) {
      if (v.kind != k) continue;
      const std::string who = label(k, v.name);
      up.add(who, v.healthy ? 1 : 0);
      for (const char* s : kStates) state.add(who + "," + label("state", s), v.state == s ? 1 : 0);
      success.add(who, static_cast<double>(v.last_success_ms) / 1000.0);
    }
    up.writeTo(out);
    state.writeTo(out);
    success.writeTo(out);
  }
}

// Figures from the journal; when it cannot be read, ferry_journal_up says so and the rest of the
// page is still served.
void writeJournal(std::ostream& out, const Config& config, HostServices& services) {
  Family up{"journal_up", "1 when the journal answered the queries of this scrape.", {}};
  std::ostringstream figures;
  try {
    EventLog& log = services.event_log;
    SinkLedger& ledger = services.ledger;
    const int64_t now_ms = nowMs();
    Family last{"journal_last_sequence", "The highest sequence the journal assigned.", {}};
    last.add("", static_cast<double>(log.lastSequence()));
    std::map<std::string, Cursor> cursors;
    for (auto& [name, c] : log.cursors()) cursors[name] = c;
    Family lag{"source_cursor_lag_seconds",
               "How far the source's cursor lies behind this host's clock, in seconds. It grows "
               "while the remote has no changes: alert on the last success, not on this alone.",
               {}};
    for (const auto& source : config.sources) {
      if (!source.enabled) continue;
      auto it = cursors.find(source.name);
      int64_t since_ns = it != cursors.end() ? it->second.since_ns
                                             : parseInstantNs(source.start_from).value_or(0);
      lag.add(label("source", source.name),
              std::max<double>(0, static_cast<double>(now_ms - since_ns / 1000000) / 1000.0));
    }
    Family offset{"sink_offset", "The last journal sequence the sink has passed.", {}};
    Family backlog_f{"sink_backlog", "Events routed to the sink that it has not passed yet.", {}};
    Family oldest{"sink_oldest_pending_age_seconds",
                  "Age of the oldest event the sink has not passed yet (since it was fetched), "
                  "in seconds; 0 when none is pending.",
                  {}};
    Family dead{"dead_letters", "Dead letters of the sink (events it could not write).", {}};
    for (const auto& sink : config.sinks) {
      if (!sink.enabled) continue;
      const std::string who = label("sink", sink.name);
      offset.add(who, static_cast<double>(ledger.sinkOffset(sink.name)));
      backlog_f.add(who, static_cast<double>(backlog(log, ledger, sink)));
      const int64_t at = oldestPendingAtMs(log, ledger, sink);
      oldest.add(who, at == 0 ? 0 : std::max<double>(0, (now_ms - at) / 1000.0));
      dead.add(who, static_cast<double>(ledger.deadLetters(sink.name).size()));
    }
    for (const Family* f : {&last, &lag, &offset, &backlog_f, &oldest, &dead}) f->writeTo(figures);
    up.add("", 1);
  } catch (const std::exception&) {
    figures.str("");
    up.add("", 0);
  }
  up.writeTo(out);
  out << figures.str();
}

// The process's own figures, named as every Prometheus client library names them.
void writeProcess(std::ostream& out) {
#ifdef _WIN32
  (void)out;  // Linux's /proc figures only; none on Windows yet
#else
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return;  // not Linux
  std::istringstream fields(stat.substr(paren + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state) of proc(5)
  for (std::string word; fields >> word;) f.push_back(word);
  if (f.size() < 22) return;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  double boot = 0;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);)
    if (line.rfind("btime ", 0) == 0) boot = std::stod(line.substr(6));
  size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  auto gauge = [&](const char* name, const char* type, const char* help, double value) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
        << name << " " << prom::number(value) << "\n";
  };
  gauge("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
        (std::stod(f[11]) + std::stod(f[12])) / ticks);
  gauge("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        std::stod(f[21]) * page);
  gauge("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", std::stod(f[20]));
  gauge("process_open_fds", "gauge", "Number of open file descriptors.",
        static_cast<double>(fds));
  gauge("process_max_fds", "gauge", "Maximum number of open file descriptors.",
        static_cast<double>(limit.rlim_cur));
  gauge("process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.", boot + std::stod(f[19]) / ticks);
#endif
}

}  // namespace

Page healthPage(const Config& config, HostServices& services) {
  const int64_t now_ms = nowMs();
  const auto verdicts = services.health.judge(now_ms, config.host.unhealthy_after_ms);
  bool all = true;
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const auto& v : verdicts) {
    all = all && v.healthy;
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    o->set("name", v.name);
    o->set("kind", v.kind);
    o->set("state", v.state);
    o->set("healthy", v.healthy);
    if (!v.healthy) o->set("reason", v.reason);
    if (!v.message.empty()) o->set("message", v.message);
    o->set("last_success", v.last_success_ms == 0
                               ? Poco::Dynamic::Var()
                               : Poco::Dynamic::Var(formatInstantMs(v.last_success_ms * 1000000)));
    list->add(o);
  }
  Poco::JSON::Object root(Poco::JSON_PRESERVE_KEY_ORDER);
  root.set("healthy", all);
  root.set("unhealthy_after", formatDurationMs(config.host.unhealthy_after_ms));
  root.set("instances", list);
  std::ostringstream body;
  root.stringify(body);
  body << "\n";
  return {all ? 200 : 503, "application/json", body.str()};
}

Page metricsPage(const Config& config, HostServices& services) {
  std::ostringstream out;
  out << prom::header("build_info", "gauge",
                      "Always 1; the labels say which ferry runs and its plugin ABI.")
      << "ferry_build_info{" << label("version", FERRY_VERSION) << ","
      << label("abi", hostAbi()) << "} 1\n";
  writeHealth(out, services.health.judge(nowMs(), config.host.unhealthy_after_ms));
  out << services.metrics.render();
  writeJournal(out, config, services);
  writeProcess(out);
  return {200, "text/plain; version=0.0.4; charset=utf-8", out.str()};
}

}  // namespace ferry::core
