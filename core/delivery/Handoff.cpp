#include "delivery/Handoff.h"

#include <algorithm>

namespace ferry::core {
namespace {

// What an event counts against the hand-off's budget.
size_t footprint(const JournalEvent& e) {
  return e.body.size() + e.key.size() + e.version.size() + e.meta.size() + sizeof(JournalEvent);
}

}  // namespace

int64_t Handoff::commitAndPublish(const std::string& source, std::vector<NewEvent>& events,
                                  int64_t fetched_at_ms, const std::function<int64_t()>& commit) {
  std::lock_guard<std::mutex> publishing(publish_mutex_);
  const int64_t last = commit();
  if (events.empty()) return last;
  if (disabled_) {
    events.clear();
    return last;
  }
  const int64_t first = last - static_cast<int64_t>(events.size()) + 1;

  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t held_last = events_.empty() ? covered_from_ : events_.back()->sequence;
  if (covered_from_ < 0 || first != held_last + 1) {
    // The first publish, or a gap: something else wrote to the journal in between (another
    // process, an operator command). Memory cannot vouch for the gap, so it starts over after
    // it; sinks before that point read the journal.
    events_.clear();
    bytes_ = 0;
    covered_from_ = first - 1;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    NewEvent& n = events[i];
    auto e = std::make_shared<JournalEvent>();
    e->sequence = first + static_cast<int64_t>(i);
    e->source = source;
    e->entity = std::move(n.entity);
    e->key = std::move(n.key);
    e->version = std::move(n.version);
    e->previous = std::move(n.previous);
    e->body = std::move(n.body);
    e->echo = n.echo;
    e->fetched_at_ms = fetched_at_ms;
    e->meta = std::move(n.meta);
    bytes_ += footprint(*e);
    events_.push_back(std::move(e));
  }
  events.clear();
  while (bytes_ > max_bytes_ && !events_.empty()) {
    const JournalEvent& oldest = *events_.front();
    bytes_ -= footprint(oldest);
    covered_from_ = oldest.sequence;
    events_.pop_front();
  }
  return last;
}

size_t Handoff::indexAfter(int64_t after) const {
  return static_cast<size_t>(after - covered_from_);
}

bool Handoff::wanted(const JournalEvent& e, const std::vector<std::string>& sources) {
  return sources.empty() || std::find(sources.begin(), sources.end(), e.source) != sources.end();
}

std::optional<EventBatch> Handoff::readAfter(int64_t after, const std::vector<std::string>& sources,
                                             size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (disabled_ || covered_from_ < 0 || after < covered_from_) return std::nullopt;
  EventBatch batch;
  for (size_t i = indexAfter(after); i < events_.size() && batch.size() < limit; ++i)
    if (wanted(*events_[i], sources)) batch.push_back(events_[i]);
  return batch;
}

std::optional<int64_t> Handoff::countAfter(int64_t after, const std::vector<std::string>& sources) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (disabled_ || covered_from_ < 0 || after < covered_from_) return std::nullopt;
  int64_t count = 0;
  for (size_t i = indexAfter(after); i < events_.size(); ++i) count += wanted(*events_[i], sources);
  return count;
}

EventBatch readFeed(Handoff& handoff, EventLog& events, int64_t after,
                    const std::vector<std::string>& sources, size_t limit) {
  if (auto batch = handoff.readAfter(after, sources, limit)) return std::move(*batch);
  EventBatch batch;
  for (auto& e : events.readAfter(after, sources, limit))
    batch.push_back(std::make_shared<const JournalEvent>(std::move(e)));
  return batch;
}

int64_t countFeed(Handoff& handoff, EventLog& events, int64_t after,
                  const std::vector<std::string>& sources) {
  if (auto count = handoff.countAfter(after, sources)) return *count;
  return events.countAfter(after, sources);
}

}  // namespace ferry::core
