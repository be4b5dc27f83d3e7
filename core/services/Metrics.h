// The host's counters, gauges and histograms, per source or sink, and their Prometheus text
// exposition (https://prometheus.io/docs/instrumenting/exposition_formats/): every family has
// `# HELP` and `# TYPE` lines, and a series is labelled `source="…"` or `sink="…"` after the
// kind of its instance (Prometheus adds a label `instance` of its own: the scrape target).
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ferry::core {

class Metrics {
 public:
  // Registers a source or sink (`kind` "source" | "sink"): its series are labelled with its kind,
  // and the host's own counters of that kind exist from now on, at zero, so that a rate() or an
  // alert sees them before the first event.
  void declareInstance(const std::string& instance, const std::string& kind);

  // Counters only go up; gauges are set. `name` is without the `ferry_` prefix.
  void add(const std::string& name, const std::string& instance, double delta);
  void set(const std::string& name, const std::string& instance, double value);
  double get(const std::string& name, const std::string& instance) const;

  // One HTTP exchange of `instance`'s plugin: its duration and status (0: no response), for
  // the histogram ferry_http_request_duration_seconds{<kind>=…,code=…}.
  void observeHttp(const std::string& instance, int status, double seconds);

  // The instance whose plugin this thread calls ("" when none): each runner thread calls only
  // its own instance, so an HTTP exchange made on it belongs to that instance.
  static void setThreadInstance(const std::string& instance);
  static const std::string& threadInstance();

  // The text exposition of everything above.
  std::string render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts are computed when rendering
    uint64_t count = 0;
    double sum = 0;
  };
  std::string labelOf(const std::string& instance) const;  // mutex_ held

  mutable std::mutex mutex_;
  std::map<std::string, std::string> kinds_;  // instance -> "source" | "sink"
  // (name, instance) -> (gauge?, value)
  std::map<std::pair<std::string, std::string>, std::pair<bool, double>> values_;
  // (instance, code) -> histogram
  std::map<std::pair<std::string, std::string>, Histogram> http_;
};

// Prometheus text helpers, shared by every page that writes metrics.
namespace prom {
// "# HELP ferry_<name> <help>\n# TYPE ferry_<name> <type>\n"
std::string header(const std::string& name, const std::string& type, const std::string& help);
// A label value escaped for the exposition (backslash, double quote, newline).
std::string escapeLabel(const std::string& value);
// A sample value: integers exactly (no exponent up to 2^53), others with full precision.
std::string number(double value);
}  // namespace prom

}  // namespace ferry::core
