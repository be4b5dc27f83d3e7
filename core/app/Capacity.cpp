#include "app/Capacity.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>

namespace ferry::core {
namespace {

// The resolved value of `option` of `instance`, "" when unset.
std::string option(const InstanceConfig& instance, const std::string& name) {
  for (const auto& [key, value] : instance.resolved)
    if (key == name) return value.value_or("");
  return "";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "scheme://host:port" of a base URL, as the DuckHub plugin keys its limit.
std::string origin(const std::string& url) {
  const size_t authority = url.find("://");
  if (authority == std::string::npos) return lower(url);
  const size_t end = url.find('/', authority + 3);
  return lower(url.substr(0, end));
}

// "150 ms", "1.5 s", "20 s", "5 min".
std::string seconds(double s) {
  std::ostringstream out;
  if (s < 1) {
    out << std::lround(s * 1000) << " ms";
  } else if (s >= 120 && std::fmod(s, 60) < 1) {
    out << std::lround(s / 60) << " min";
  } else if (s >= 10) {
    out << std::lround(s) << " s";
  } else {
    out << std::round(s * 10) / 10 << " s";
  }
  return out.str();
}

struct Group {
  std::string label;     // "" or who shares the budget, for the message
  int64_t sources = 0;
  double per_minute = 0;  // requests a minute the polls alone need (one per cycle, at least)
  int64_t shortest_ms = INT64_MAX, longest_ms = 0;
};

std::string describe(const Group& g, const char* noun, const std::string& rule,
                     double allowed_per_minute) {
  std::ostringstream out;
  const double stretch = g.per_minute / allowed_per_minute;
  out << g.label << g.sources << " " << noun << (g.sources == 1 ? "" : "s") << " at ";
  if (g.shortest_ms == g.longest_ms)
    out << seconds(static_cast<double>(g.shortest_ms) / 1000);
  else
    out << "intervals of " << seconds(static_cast<double>(g.shortest_ms) / 1000) << " to "
        << seconds(static_cast<double>(g.longest_ms) / 1000);
  out << " need " << std::lround(std::ceil(g.per_minute)) << " requests/min; " << rule << ": ";
  if (g.shortest_ms == g.longest_ms)
    out << "each " << noun << " will be polled about every "
        << seconds(static_cast<double>(g.shortest_ms) * stretch / 1000);
  else
    out << "each " << noun << " will be polled about " << std::round(stretch * 10) / 10
        << " times less often than configured";
  return out.str();
}

}  // namespace

std::string budgetOf(const InstanceConfig& source) {
  if (source.plugin == "source_duckhub_orders")
    return "duckhub " + origin(option(source, "base_url"));
  if (source.plugin == "source_tradecloud_orders" ||
      source.plugin == "source_tradecloud_shipments") {
    // The plugins' own key of the account's budget: base URL and login.
    std::string base = option(source, "base_url");
    while (!base.empty() && base.back() == '/') base.pop_back();
    return "tradecloud " + lower(base) + " " + lower(option(source, "email"));
  }
  return "";
}

std::vector<std::string> budgetWarnings(const Config& config) {
  // Per API host (DuckHub) and per account (Tradecloud), in the order first seen.
  std::map<std::string, Group> duckhub, tradecloud;
  for (const auto& s : config.sources) {
    if (!s.enabled || s.interval_ms <= 0) continue;
    Group* g = nullptr;
    const std::string budget = budgetOf(s);
    if (s.plugin == "source_duckhub_orders") {
      g = &duckhub[budget];
      g->label = origin(option(s, "base_url")) + ": ";
    } else if (!budget.empty()) {
      g = &tradecloud[budget];
      g->label = "Tradecloud account " + option(s, "email") + ": ";
    }
    if (g == nullptr) continue;
    ++g->sources;
    g->per_minute += 60000.0 / static_cast<double>(s.interval_ms);
    g->shortest_ms = std::min(g->shortest_ms, s.interval_ms);
    g->longest_ms = std::max(g->longest_ms, s.interval_ms);
  }
  std::vector<std::string> out;
  constexpr double kDuckHubPerMinute = 300, kTradecloudPerMinute = 600;
  for (const auto& [key, g] : duckhub)
    if (g.per_minute > kDuckHubPerMinute)
      out.push_back(describe(g, "venue", "DuckHub allows 300/min per IP", kDuckHubPerMinute));
  for (const auto& [key, g] : tradecloud)
    if (g.per_minute > kTradecloudPerMinute)
      out.push_back(describe(g, "source",
                             "Tradecloud allows 600/min (10/s) per account, orders and shipments "
                             "together",
                             kTradecloudPerMinute));
  return out;
}

}  // namespace ferry::core
