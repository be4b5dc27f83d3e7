#include "delivery/Delivery.h"

#include <Poco/JSON/Parser.h>

#include <algorithm>

namespace ferry::core {

bool routes(const InstanceConfig& sink, const std::string& source) {
  return sink.from.empty() || std::find(sink.from.begin(), sink.from.end(), source) != sink.from.end();
}

std::vector<std::string> routedSinks(const Config& config, const std::string& source) {
  std::vector<std::string> out;
  for (const auto& sink : config.sinks)
    if (sink.enabled && routes(sink, source)) out.push_back(sink.name);
  return out;
}

int64_t backlog(EventLog& events, SinkLedger& ledger, const InstanceConfig& sink) {
  return events.countAfter(ledger.sinkOffset(sink.name), sink.from);
}

int64_t oldestPendingAtMs(EventLog& events, SinkLedger& ledger, const InstanceConfig& sink) {
  auto first = events.readAfter(ledger.sinkOffset(sink.name), sink.from, 1);
  return first.empty() ? 0 : first.front().fetched_at_ms;
}

int64_t lowWaterMark(EventLog& events, SinkLedger& ledger, const std::vector<std::string>& sinks) {
  int64_t mark = events.lastSequence();
  for (const auto& sink : sinks) mark = std::min(mark, ledger.sinkOffset(sink));
  return mark;
}

std::vector<std::string> retentionHolders(const Config& config, Controls& controls) {
  std::vector<std::string> out = controls.knownSinks();
  for (const auto& sink : config.sinks)
    if (sink.enabled && std::find(out.begin(), out.end(), sink.name) == out.end())
      out.push_back(sink.name);
  return out;
}

std::vector<HeldSink> heldSinks(const Config& config, Controls& controls) {
  std::vector<HeldSink> out;
  for (const auto& name : controls.knownSinks()) {
    auto it = std::find_if(config.sinks.begin(), config.sinks.end(),
                           [&](const InstanceConfig& s) { return s.name == name; });
    if (it == config.sinks.end()) {
      out.push_back({name, "not in the config",
                     "it holds retention until `ferry sinks forget " + name + "`"});
    } else if (!it->enabled) {
      out.push_back({name, "disabled",
                     "it holds retention until enabled again or `ferry sinks forget " + name +
                         "`"});
    } else if (controls.sinkPaused(name)) {
      out.push_back({name, "paused",
                     "it holds retention until `ferry sinks resume " + name + "`"});
    }
  }
  return out;
}

TraceStep traceStep(SinkLedger& ledger, const InstanceConfig& sink, const JournalEvent& event,
                    const std::vector<DeliveryRecord>& deliveries,
                    const std::vector<DeadLetter>& dead_letters) {
  TraceStep step{sink.name, "", 0, ""};
  if (!routes(sink, event.source)) {
    step.outcome = "not routed";
    return step;
  }
  const bool passed = ledger.sinkOffset(sink.name) >= event.sequence;
  // A delivery record covers a range of sequences; an echo the sink skips lies inside such a
  // range without having been written, so it is told apart first.
  if (event.echo && sink.skip_echo) {
    step.outcome = passed ? "skipped" : (sink.enabled ? "pending" : "pending (sink disabled)");
    step.detail = "an echo of this integration's own change; this sink skips echoes";
    return step;
  }
  auto delivered = std::find_if(deliveries.begin(), deliveries.end(),
                                [&](const DeliveryRecord& d) { return d.sink == sink.name; });
  auto letter = std::find_if(dead_letters.begin(), dead_letters.end(), [&](const DeadLetter& d) {
    return d.sink == sink.name && d.event.sequence == event.sequence;
  });
  if (delivered != deliveries.end()) {
    step.outcome = "delivered";
    step.at_ms = delivered->delivered_at_ms;
    step.detail = "in the write of events " + std::to_string(delivered->first_sequence) + "-" +
                  std::to_string(delivered->last_sequence) + " (" + delivered->detail + ")";
  } else if (letter != dead_letters.end()) {
    step.outcome = "dead letter";
    step.at_ms = letter->failed_at_ms;
    step.detail = "#" + std::to_string(letter->id) + ": " + letter->reason;
  } else if (passed) {
    step.outcome = "passed";
    step.detail = "no delivery recorded";
  } else {
    step.outcome = sink.enabled ? "pending" : "pending (sink disabled)";
  }
  return step;
}

std::vector<std::string> businessNumbers(const std::string& meta) {
  std::vector<std::string> out;
  if (meta.empty()) return out;
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(meta).extract<Poco::JSON::Object::Ptr>();
    auto numbers = object ? object->getArray("numbers") : nullptr;
    if (!numbers) return out;
    for (size_t i = 0; i < numbers->size(); ++i) {
      const Poco::Dynamic::Var n = numbers->get(static_cast<unsigned>(i));
      if (n.isString()) out.push_back(n.extract<std::string>());
    }
  } catch (const std::exception&) {
    // Metadata that is no JSON object names no numbers (the host only checks its braces).
  }
  return out;
}

bool traceMatches(const JournalEvent& event, const std::string& query) {
  if (event.key == query) return true;
  // Cheap first: a number appears in the metadata's text as it is (JSON escapes aside).
  if (event.meta.find(query) == std::string::npos) return false;
  const auto numbers = businessNumbers(event.meta);
  return std::find(numbers.begin(), numbers.end(), query) != numbers.end();
}

std::vector<JournalEvent> traceEvents(EventLog& events, const std::string& query) {
  // One pass over the retained events in sequence order (the journal has no index by key
  // either), a page at a time: memory stays bounded whatever the journal's size.
  std::vector<JournalEvent> out;
  constexpr size_t kPage = 500;
  for (int64_t after = 0;;) {
    std::vector<JournalEvent> page = events.readAfter(after, {}, kPage);
    if (page.empty()) break;
    after = page.back().sequence;
    for (auto& e : page)
      if (traceMatches(e, query)) out.push_back(std::move(e));
    if (page.size() < kPage) break;
  }
  return out;
}

}  // namespace ferry::core
