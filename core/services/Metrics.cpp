#include "services/Metrics.h"

#include <array>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace ferry::core {
namespace {

// The host's own counters: each exists, at zero, for every instance of its kind.
struct HostCounter {
  const char* name;
  const char* kind;  // "source", "sink" or "" for both
  const char* help;
};
constexpr std::array<HostCounter, 12> kHostCounters{{
    {"source_pages_total", "source", "Pages the source fetched successfully."},
    {"source_items_total", "source", "Items the source's pages held, before deduplication."},
    {"source_events_total", "source", "New events the source committed to the journal."},
    {"source_retries_total", "source", "Failed poll cycles of the source, each retried."},
    {"source_future_items_total", "source",
     "Items stamped further ahead of this host's clock than clock_skew: delivered, but the "
     "cursor did not follow them."},
    {"source_set_aside_total", "source",
     "Unreadable items the source set aside as dead letters, to go on without them."},
    {"sink_events_total", "sink", "Events the sink wrote to its target."},
    {"sink_retries_total", "sink", "Failed batches of the sink, each retried."},
    {"sink_dead_letters_total", "sink", "Events the sink moved to the dead letters."},
    {"http_requests_total", "", "HTTP requests the instance's plugin sent."},
    {"http_transient_failures_total", "",
     "HTTP requests of the instance's plugin that got no answer or a transient status (408, "
     "425, 429, 5xx)."},
    // A gauge, set by the host for the instances it leased (kind "lease": never made at zero).
    {"lease_held", "lease",
     "1 while this host holds the lease of the instance (several hosts on a PostgreSQL journal), "
     "0 once it handed it over or lost it."},
}};

constexpr std::array<double, 13> kHttpBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,    30,  60};

const HostCounter* hostCounter(const std::string& name) {
  for (const auto& c : kHostCounters)
    if (name == c.name) return &c;
  return nullptr;
}

// A plugin may name its metrics freely: anything outside [a-zA-Z0-9_:] becomes '_'.
std::string metricName(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) c = '_';
  return out;
}

thread_local std::string t_instance;

}  // namespace

namespace prom {

std::string header(const std::string& name, const std::string& type, const std::string& help) {
  return "# HELP ferry_" + name + " " + help + "\n# TYPE ferry_" + name + " " + type + "\n";
}

std::string escapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0)
    std::snprintf(buf, sizeof buf, "%.0f", value);
  else if (std::snprintf(buf, sizeof buf, "%.15g", value); std::strtod(buf, nullptr) != value)
    std::snprintf(buf, sizeof buf, "%.17g", value);  // the shortest text that reads back exactly
  return buf;
}

}  // namespace prom

void Metrics::declareInstance(const std::string& instance, const std::string& kind) {
  std::lock_guard lock(mutex_);
  kinds_[instance] = kind;
  for (const auto& c : kHostCounters)
    if (*c.kind == '\0' || kind == c.kind) values_.try_emplace({c.name, instance}, false, 0.0);
}

void Metrics::add(const std::string& name, const std::string& instance, double delta) {
  std::lock_guard lock(mutex_);
  auto& v = values_[{name, instance}];
  v.first = false;
  v.second += delta;
}

void Metrics::set(const std::string& name, const std::string& instance, double value) {
  std::lock_guard lock(mutex_);
  values_[{name, instance}] = {true, value};
}

double Metrics::get(const std::string& name, const std::string& instance) const {
  std::lock_guard lock(mutex_);
  auto it = values_.find({name, instance});
  return it == values_.end() ? 0 : it->second.second;
}

void Metrics::observeHttp(const std::string& instance, int status, double seconds) {
  std::lock_guard lock(mutex_);
  Histogram& h = http_[{instance, status == 0 ? "none" : std::to_string(status)}];
  if (h.buckets.empty()) h.buckets.assign(kHttpBuckets.size(), 0);
  for (size_t i = 0; i < kHttpBuckets.size(); ++i)
    if (seconds <= kHttpBuckets[i]) {
      ++h.buckets[i];
      break;
    }
  ++h.count;
  h.sum += seconds;
}

void Metrics::setThreadInstance(const std::string& instance) { t_instance = instance; }

const std::string& Metrics::threadInstance() { return t_instance; }

std::string Metrics::labelOf(const std::string& instance) const {
  auto it = kinds_.find(instance);
  const std::string key = it == kinds_.end() ? "name" : it->second;
  return key + "=\"" + prom::escapeLabel(instance) + "\"";
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  std::string last;
  for (const auto& [k, v] : values_) {
    const std::string name = metricName(k.first);
    if (name != last) {
      const HostCounter* c = hostCounter(k.first);
      out << prom::header(name, v.first ? "gauge" : "counter",
                          c != nullptr ? c->help
                                       : "Reported by the instance's plugin (counter_add or "
                                         "gauge_set).");
      last = name;
    }
    out << "ferry_" << name << "{" << labelOf(k.second) << "} " << prom::number(v.second)
        << "\n";
  }
  out << prom::header("http_request_duration_seconds", "histogram",
                      "Duration of the HTTP requests of each instance's plugin, from sending to "
                      "the last byte of the answer, by status code (none: no answer).");
  for (const auto& [k, h] : http_) {
    const std::string labels = labelOf(k.first) + ",code=\"" + k.second + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kHttpBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      out << "ferry_http_request_duration_seconds_bucket{" << labels << ",le=\""
          << prom::number(kHttpBuckets[i]) << "\"} " << cumulative << "\n";
    }
    out << "ferry_http_request_duration_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count
        << "\nferry_http_request_duration_seconds_sum{" << labels << "} " << prom::number(h.sum)
        << "\nferry_http_request_duration_seconds_count{" << labels << "} " << h.count << "\n";
  }
  return out.str();
}

}  // namespace ferry::core
