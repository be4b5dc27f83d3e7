#include "app/Operator.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <stdexcept>

#include "delivery/Delivery.h"
#include "pipeline/Pipeline.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

// A request that cannot be carried out as asked: answered as failed, with this text.
class Refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Poco::JSON::Object::Ptr argumentsOf(const CommandRequest& request) {
  try {
    return Poco::JSON::Parser().parse(request.argument).extract<Poco::JSON::Object::Ptr>();
  } catch (const std::exception&) {
    throw Refused("request #" + std::to_string(request.id) + ": unreadable arguments '" +
                  request.argument + "'");
  }
}

std::vector<int64_t> idsOf(const Poco::JSON::Object::Ptr& args, const std::string& name = "ids") {
  std::vector<int64_t> ids;
  if (auto list = args->getArray(name))
    for (size_t i = 0; i < list->size(); ++i) ids.push_back(list->getElement<int64_t>(i));
  return ids;
}

std::string fetchedText(Controls& controls, int64_t sequence) {
  auto at = controls.fetchedAt(sequence);
  return at ? ", fetched " + formatInstantMs(*at * 1000000) : "";
}

}  // namespace

Operator::Operator(const LiveConfig& config, Journal& journal, Pipeline* pipeline,
                   Poco::Logger& logger)
    : config_(config), journal_(journal), pipeline_(pipeline), logger_(logger) {}

const InstanceConfig* Operator::sink(const std::string& name) const {
  for (const auto& s : config_.get().sinks)
    if (s.name == name) return &s;
  return nullptr;
}

const InstanceConfig* Operator::source(const std::string& name) const {
  for (const auto& s : config_.get().sources)
    if (s.name == name) return &s;
  return nullptr;
}

void Operator::setPipeline(Pipeline* pipeline) { pipeline_ = pipeline; }

bool Operator::handOver(int64_t id) {
  std::lock_guard lock(mutex_);
  return handed_over_.insert(id).second;
}

void Operator::takeBack(int64_t id) {
  std::lock_guard lock(mutex_);
  handed_over_.erase(id);
}

void Operator::applyPending() {
  std::vector<CommandRequest> pending;
  try {
    pending = journal_.controls().pendingCommands();
  } catch (const JournalError& e) {
    logger_.warning(std::string("operators' requests postponed: ") + e.what());
    return;
  }
  for (const auto& request : pending) {
    if (answers_ && !answers_(request.target)) continue;
    if (!handOver(request.id)) continue;
    const std::string& a = request.action;
    if (a == action::kBackfill) answer(request, [&, request] { return backfill(request); });
    else if (a == action::kRewind) answer(request, [&, request] { return rewind(request); });
    else if (a == action::kPause) answer(request, [&, request] { return pause(request, true); });
    else if (a == action::kResume) answer(request, [&, request] { return pause(request, false); });
    else if (a == action::kForget) answer(request, [&, request] { return forget(request); });
    else if (a == action::kReplay) answer(request, [&, request] { return replay(request); });
    else if (a == action::kDrop) answer(request, [&, request] { return drop(request); });
    else if (a == action::kReplaySetAside)
      answer(request, [&, request] { return replaySetAside(request); });
    else answer(request, [a]() -> std::string { throw Refused("unknown request '" + a + "'"); });
  }
}

void Operator::answer(const CommandRequest& request, const std::function<std::string()>& work) {
  // The whole request runs in one place: where its position is moved (the runner's thread, at a
  // safe point) it is also checked, so nothing moves between the check and the change.
  auto run = [this, request, work] {
    bool ok = true;
    std::string result;
    try {
      result = work();
    } catch (const Refused& e) {
      ok = false;
      result = e.what();
    } catch (const JournalError& e) {
      // Left pending: the owner tries again (this process, or the next one).
      logger_.warning("request #" + std::to_string(request.id) + " (" + request.action + " " +
                      request.target + ") postponed: " + e.what());
      takeBack(request.id);
      return;
    } catch (const std::exception& e) {
      ok = false;
      result = e.what();
    }
    logger_.information("request #" + std::to_string(request.id) + " (" + request.action + " " +
                        request.target + ") " + (ok ? "done: " : "refused: ") + result);
    try {
      journal_.controls().finishCommand(request.id, ok, result);
    } catch (const JournalError& e) {
      logger_.warning("request #" + std::to_string(request.id) + ": cannot record the answer: " +
                      e.what());
    }
  };
  bool posted = false;
  if (pipeline_ != nullptr) {
    if (request.action == action::kBackfill || request.action == action::kReplaySetAside) {
      if (SourceRunner* r = pipeline_->sourceRunner(request.target)) posted = r->post(run);
    } else if (request.action == action::kRewind || request.action == action::kPause ||
               request.action == action::kResume) {
      if (SinkRunner* r = pipeline_->sinkRunner(request.target)) posted = r->post(run);
    }
  }
  if (!posted) run();
  if (pipeline_ != nullptr) pipeline_->services().new_events.notify();
}

std::string Operator::backfill(const CommandRequest& request) {
  if (source(request.target) == nullptr)
    throw Refused("no source '" + request.target + "' in " + config_.get().file);
  auto args = argumentsOf(request);
  const std::string from = args->optValue<std::string>("from", "");
  const bool redeliver = args->optValue<bool>("redeliver", false);
  auto ns = parseInstantNs(from);
  if (!ns) throw Refused("--from '" + from + "' is not an instant (e.g. 2025-04-01T00:00:00Z)");
  Cursor cursor;
  cursor.since_ns = *ns / 1000000 * 1000000;
  cursor.since = formatInstantMs(cursor.since_ns);
  auto before = journal_.events().cursor(request.target);
  journal_.events().resetCursor(request.target, cursor, redeliver);
  journal_.controls().setSourceOrigin(request.target, from);
  return "source " + request.target + ": cursor moved from " +
         (before ? before->since : std::string("(none)")) + " to " + cursor.since + "; " +
         (redeliver ? "every version from there on is delivered again"
                    : "versions seen before are not delivered again, new ones are") +
         ". Follow it with `ferry status` (pages, events, position, rate).";
}

std::string Operator::rewind(const CommandRequest& request) {
  const std::string& name = request.target;
  if (sink(name) == nullptr)
    throw Refused("no sink '" + name + "' in " + config_.get().file);
  auto args = argumentsOf(request);
  EventLog& log = journal_.events();
  Controls& controls = journal_.controls();
  const int64_t offset = journal_.ledger().sinkOffset(name);
  const int64_t last = log.lastSequence();
  const int64_t oldest = controls.oldestSequence();
  int64_t target = 0;
  if (args->has("sequence")) {
    target = args->getValue<int64_t>("sequence");
    if (target < 0) throw Refused("--to-sequence must be 0 or more");
  } else {
    const std::string instant = args->optValue<std::string>("instant", "");
    auto ns = parseInstantNs(instant);
    if (!ns) throw Refused("--to '" + instant + "' is not an instant (e.g. 2025-04-01T00:00:00Z)");
    const int64_t first = controls.firstSequenceFetchedFrom(*ns / 1000000);
    if (first == 0)
      throw Refused("sink " + name + ": no retained event was fetched at or after " + instant +
                    " (the last one is sequence " + std::to_string(last) + ")");
    target = first - 1;
  }
  if (target > offset)
    throw Refused("sink " + name + " is at " + std::to_string(offset) + "; a rewind only moves "
                  "back (to " + std::to_string(target) + " would skip events)");
  // Every event after the target must still be in the journal: retention removes the oldest.
  const int64_t first_needed = target + 1;
  if (first_needed <= last && (oldest == 0 || oldest > first_needed)) {
    throw Refused("sink " + name + ": cannot rewind to " + std::to_string(target) +
                  ": events up to " + std::to_string(oldest == 0 ? last : oldest - 1) +
                  " were removed by retention ([host] retention); the oldest retained is " +
                  (oldest == 0 ? std::string("none")
                               : std::to_string(oldest) + fetchedText(controls, oldest)) +
                  ", so rewind to " + std::to_string(oldest == 0 ? last : oldest - 1) +
                  " or later, or backfill the source (ferry sources backfill)");
  }
  controls.setSinkOffset(name, target);
  const int64_t again = log.countAfter(target, sink(name)->from) -
                        log.countAfter(offset, sink(name)->from);
  return "sink " + name + ": rewound from " + std::to_string(offset) + " to " +
         std::to_string(target) + "; " + std::to_string(again) +
         " event(s) are written again" +
         (controls.sinkPaused(name) ? " once it is resumed (it is paused)" : "");
}

std::string Operator::pause(const CommandRequest& request, bool paused) {
  const std::string& name = request.target;
  if (sink(name) == nullptr) throw Refused("no sink '" + name + "' in " + config_.get().file);
  Controls& controls = journal_.controls();
  const bool was = controls.sinkPaused(name);
  // Recorded in the journal, the pause survives restarts, and the sink holds retention from
  // where it stands (Controls::knownSinks) however long it stays paused.
  controls.setSinkPaused(name, paused);
  const int64_t offset = journal_.ledger().sinkOffset(name);
  if (paused)
    return "sink " + name + (was ? " was already paused" : " paused") + " at offset " +
           std::to_string(offset) + "; it keeps its place (and retention keeps its events) "
           "until `ferry sinks resume " + name + "`";
  return "sink " + name + (was ? " resumed" : " was not paused") + " at offset " +
         std::to_string(offset);
}

std::string Operator::forget(const CommandRequest& request) {
  const std::string& name = request.target;
  if (const InstanceConfig* s = sink(name); s != nullptr && s->enabled)
    throw Refused("sink " + name + " is enabled in " + config_.get().file +
                  "; only a disabled or removed sink can be forgotten");
  auto known = journal_.controls().knownSinks();
  if (std::find(known.begin(), known.end(), name) == known.end())
    throw Refused("the journal knows no sink '" + name + "'");
  const int64_t offset = journal_.ledger().sinkOffset(name);
  journal_.controls().forgetSink(name);
  return "sink " + name + " forgotten (it was at offset " + std::to_string(offset) +
         "); it no longer holds retention, and if it comes back it starts from the oldest "
         "retained event";
}

std::string Operator::replay(const CommandRequest& request) {
  if (sink(request.target) == nullptr)
    throw Refused("no sink '" + request.target + "' in " + config_.get().file);
  const std::vector<int64_t> ids = idsOf(argumentsOf(request));
  const int64_t n = journal_.ledger().requestReplay(request.target, ids);
  if (n == 0 && !ids.empty())
    throw Refused("sink " + request.target + " has no dead letter with the id(s) given");
  const bool runs = pipeline_ != nullptr && pipeline_->sinkRunner(request.target) != nullptr;
  return std::to_string(n) + " dead letter(s) of sink " + request.target + " marked for replay: " +
         (runs ? "the running ferry writes them now, ahead of the live feed"
               : "the next `ferry run` writes them first, ahead of the live feed");
}

std::string Operator::drop(const CommandRequest& request) {
  const auto args = argumentsOf(request);
  const std::vector<int64_t> ids = idsOf(args), source_ids = idsOf(args, "source_ids");
  const int64_t n = ids.empty() ? 0 : journal_.controls().dropDeadLetters(ids);
  const int64_t m = source_ids.empty() ? 0 : journal_.events().dropSetAside(source_ids);
  if (n + m == 0) throw Refused("no dead letter with the id(s) given");
  std::string out;
  if (n > 0) out = std::to_string(n) + " dead letter(s) dropped; their events are not written again";
  if (m > 0)
    out += (out.empty() ? "" : "; ") + std::to_string(m) +
           " source dead letter(s) dropped; the items are not read again";
  return out;
}

std::string Operator::replaySetAside(const CommandRequest& request) {
  const std::string& name = request.target;
  if (source(name) == nullptr) throw Refused("no source '" + name + "' in " + config_.get().file);
  const std::vector<int64_t> ids = idsOf(argumentsOf(request));
  const auto before = journal_.events().cursor(name);
  const int64_t n = journal_.events().replaySetAside(name, ids);
  if (n == 0)
    throw Refused("source " + name + " has no dead letter" +
                  (ids.empty() ? "" : " with the id(s) given") + " (see ferry dead-letters list)");
  const auto after = journal_.events().cursor(name);
  const bool moved = after && (!before || before->since_ns != after->since_ns);
  return std::to_string(n) + " dead letter(s) of source " + name + " replayed: " +
         (moved ? "its cursor moved back from " + (before ? before->since : "(none)") + " to " +
                      after->since + ", so it reads those items again"
                : "it reads those items again from where it stands") +
         "; read well now they become events, still unreadable they are set aside again";
}

std::vector<std::string> startFromChanges(const Config& config, Journal& journal, bool record) {
  std::vector<std::string> out;
  std::vector<std::pair<std::string, std::string>> origins;  // recorded in one transaction
  for (const auto& s : config.sources) {
    if (!s.enabled) continue;
    auto origin = journal.controls().sourceOrigin(s.name);
    const bool started = journal.events().cursor(s.name).has_value();
    if (origin && *origin != s.start_from && started) {
      out.push_back("[source." + s.name + "] start_from is " + s.start_from +
                    " but the source started from " + *origin +
                    "; start_from applies only to a new source. To fetch from " + s.start_from +
                    ": ferry sources backfill " + s.name + " --from " + s.start_from +
                    " (add --redeliver to deliver versions already seen again)");
    } else if (record && (!origin || !started)) {
      origins.emplace_back(s.name, s.start_from);
    }
  }
  journal.controls().setSourceOrigins(origins);
  return out;
}

}  // namespace ferry::core
