#include "app/LeaseKeeper.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>

#include "app/Capacity.h"
#include "app/JournalOwner.h"
#include "services/Time.h"

namespace ferry::core {

std::map<std::string, std::vector<std::string>> leaseGroups(const Config& config) {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& source : config.sources) {
    if (!source.enabled) continue;
    const std::string budget = budgetOf(source);
    groups[budget.empty() ? "source " + source.name : "budget " + budget].push_back(source.name);
  }
  for (const auto& sink : config.sinks)
    if (sink.enabled) groups["sink " + sink.name].push_back(sink.name);
  return groups;
}

#if FERRY_POSTGRES_JOURNAL

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

LeaseKeeper::LeaseKeeper(PostgresJournal& journal, const Config& config, Poco::Logger& logger,
                         Metrics& metrics, bool all)
    : journal_(journal),
      logger_(logger),
      metrics_(metrics),
      host_id_(config.host.host_id),
      lease_ms_(config.host.lease_time_ms),
      // The renewal a third of the lease ago may have been sent late: stop writing outside the
      // journal a tenth of the lease before it may run out (by the clock of PostgreSQL, which
      // starts counting no sooner than the request was sent).
      margin_ms_(std::max<int64_t>(500, config.host.lease_time_ms / 10)),
      all_(all),
      groups_(leaseGroups(config)) {
  for (const auto& [group, members] : groups_)
    for (const auto& m : members) group_of_[m] = group;
  if (!groups_.empty()) first_group_ = groups_.begin()->first;
}

LeaseKeeper::~LeaseKeeper() { stop(); }

void LeaseKeeper::start() {
  journal_.defineGroups(groups_);
  {
    std::lock_guard lock(mutex_);
    publishFences();  // nothing held yet: every instance's write is refused until claimed
  }
  tick(true);
  thread_ = std::thread([this] { loop(); });
}

void LeaseKeeper::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaseKeeper::awaitAll(const std::atomic<bool>& stopping) {
  const int64_t until = steadyMs() + lease_ms_ + 5000;
  while (held() < groups_.size() && !stopping.load()) {
    if (steadyMs() >= until) {
      std::string holders;
      for (const auto& l : journal_.leases())
        if (groups_.count(l.group) && l.owner != host_id_)
          holders += (holders.empty() ? "" : ", ") + l.group + " by host " + l.owner;
      throw JournalBusy("journal " + journal_.displayName() +
                        ": run --once needs every source and sink, but other hosts run some (" +
                        holders + "); stop them first, or let them do the work");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void LeaseKeeper::holdFor(const std::string& target) {
  auto g = group_of_.find(target);
  if (g == group_of_.end()) return;
  journal_.defineGroups(groups_);
  const int64_t until = steadyMs() + lease_ms_ + 5000;
  for (;;) {
    const int64_t sent_ms = steadyMs();
    if (auto token = journal_.claim(g->second, lease_ms_)) {
      std::lock_guard lock(mutex_);
      held_[g->second] = Held{*token, sent_ms + lease_ms_ - margin_ms_};
      publishFences();
      return;
    }
    if (steadyMs() >= until) {
      std::string holder = "another host";
      for (const auto& l : journal_.leases())
        if (l.group == g->second) holder = "host " + l.owner;
      throw JournalBusy("journal " + journal_.displayName() + ": " + target + " is run by " +
                        holder + " (lease of " + g->second +
                        "), which is not running but whose lease has not run out yet; try again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void LeaseKeeper::loop() {
  // Claims are looked for about every second (a released group is taken within seconds);
  // renewals every third of the lease.
  const auto step = std::chrono::milliseconds(std::min<int64_t>(1000, lease_ms_ / 6));
  for (;;) {
    {
      std::unique_lock lock(wake_mutex_);
      if (wake_.wait_for(lock, step, [this] { return stop_; })) return;
    }
    try {
      tick(false);
    } catch (const std::exception& e) {
      // PostgreSQL unreachable: the leases run out unrenewed, and valid() says so to the runners.
      logger_.warning(std::string("leases: ") + e.what());
    }
  }
}

void LeaseKeeper::renew() {
  const int64_t sent_ms = steadyMs();
  std::map<std::string, int64_t> tokens;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [group, h] : held_) tokens[group] = h.token;
  }
  journal_.heartbeat(lease_ms_);
  const std::set<std::string> renewed = journal_.renew(tokens, lease_ms_);
  std::lock_guard lock(mutex_);
  next_renew_ms_ = sent_ms + lease_ms_ / 3;
  for (const auto& [group, token] : tokens) {
    auto it = held_.find(group);
    if (it == held_.end() || it->second.token != token) continue;
    if (renewed.count(group))
      it->second.valid_until_ms = sent_ms + lease_ms_ - margin_ms_;
    else if (!handing_.count(group))  // (a group being handed over may be released already)
      lost(group, "it was taken over by another host (this host did not renew it in time)");
  }
}

void LeaseKeeper::lost(const std::string& group, const std::string& why) {
  held_.erase(group);
  handing_.erase(group);
  logger_.warning("lease of " + group + " lost: " + why + "; host " + host_id_ +
                  " stops and writes nothing more for " + joined(groups_.at(group)));
  for (const auto& m : groups_.at(group)) metrics_.set("lease_held", m, 0);
  publishFences();
}

void LeaseKeeper::tick(bool renew_now) {
  if (renew_now || steadyMs() >= next_renew_ms_) renew();
  int64_t db_now = 0;
  const std::vector<LeaseRow> leases = journal_.leases(&db_now);
  size_t live = 0;
  for (const auto& h : journal_.hosts())
    if (h.expires_at_ms > db_now || h.host_id == host_id_) ++live;
  live = std::max<size_t>(live, 1);
  const size_t fair = all_ ? groups_.size() : (groups_.size() + live - 1) / live;

  std::vector<std::string> free;
  {
    std::lock_guard lock(mutex_);
    for (const auto& l : leases) {
      if (!groups_.count(l.group)) continue;  // a group of another config (or an older one)
      if (handing_.count(l.group)) continue;  // being released by handedOver()
      auto it = held_.find(l.group);
      if (it != held_.end()) {
        if (l.owner != host_id_ || l.token != it->second.token)
          lost(l.group, "it is held by " + (l.owner.empty() ? "nobody" : "host " + l.owner) +
                            " now (token " + std::to_string(l.token) + ", this host's was " +
                            std::to_string(it->second.token) + ")");
        continue;
      }
      // A lease of this host_id not held here was its predecessor's (one ferry runs per
      // host_id): a restarted host takes its groups back without waiting for them to expire.
      if (l.owner.empty() || l.expires_at_ms < db_now || l.owner == host_id_)
        free.push_back(l.group);
    }
  }
  // Hosts try the free groups in different orders, so that they do not all race for the same.
  std::sort(free.begin(), free.end(), [this](const std::string& a, const std::string& b) {
    return std::hash<std::string>{}(host_id_ + a) < std::hash<std::string>{}(host_id_ + b);
  });
  for (const auto& group : free) {
    {
      std::lock_guard lock(mutex_);
      if (held_.size() - handing_.size() >= fair) break;
    }
    const int64_t sent_ms = steadyMs();
    if (auto token = journal_.claim(group, lease_ms_)) {
      std::lock_guard lock(mutex_);
      held_[group] = Held{*token, sent_ms + lease_ms_ - margin_ms_};
      logger_.information("lease of " + group + " taken (token " + std::to_string(*token) +
                          "): host " + host_id_ + " runs " + joined(groups_.at(group)));
      publishFences();
    }
  }
  std::lock_guard lock(mutex_);
  // More than a fair share (a host joined): hand the surplus over, last groups first.
  size_t keep = held_.size() - handing_.size();
  for (auto it = held_.rbegin(); it != held_.rend() && keep > fair; ++it) {
    if (handing_.count(it->first)) continue;
    handing_.insert(it->first);
    --keep;
    logger_.information("lease of " + it->first + ": handing it over (" + std::to_string(live) +
                        " live hosts share " + std::to_string(groups_.size()) + " groups)");
  }
  for (const auto& [group, h] : held_)
    for (const auto& m : groups_.at(group)) metrics_.set("lease_held", m, 1);
}

void LeaseKeeper::publishFences() {
  std::map<std::string, std::pair<std::string, int64_t>> fences;
  for (const auto& [group, h] : held_)
    for (const auto& m : groups_.at(group)) fences[m] = {group, h.token};
  journal_.setFences(std::move(fences));
}

LeaseKeeper::Plan LeaseKeeper::plan() {
  std::lock_guard lock(mutex_);
  Plan p;
  for (const auto& [group, h] : held_) {
    if (handing_.count(group)) {
      p.handing[group] = h.token;
      continue;
    }
    for (const auto& m : groups_.at(group)) p.run.insert(m);
  }
  return p;
}

void LeaseKeeper::handedOver(const Plan& plan) {
  // The group stays held and marked as handed over until its lease row is released, so that the
  // keeper's thread neither takes it back nor calls it lost meanwhile.
  for (const auto& [group, token] : plan.handing) {
    {
      std::lock_guard lock(mutex_);
      auto it = held_.find(group);
      if (it == held_.end() || it->second.token != token) continue;
    }
    try {
      journal_.release(group, token);
      logger_.information("lease of " + group + " released");
    } catch (const std::exception& e) {
      logger_.warning("lease of " + group + " not released (it runs out by itself): " + e.what());
    }
    std::lock_guard lock(mutex_);
    held_.erase(group);
    handing_.erase(group);
    publishFences();
    for (const auto& m : groups_.at(group)) metrics_.set("lease_held", m, 0);
  }
}

void LeaseKeeper::releaseAll() {
  stop();
  Plan all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [group, h] : held_) all.handing[group] = h.token;
  }
  handedOver(all);
  try {
    journal_.leave();
  } catch (const std::exception& e) {
    logger_.warning(std::string("leases: ") + e.what());
  }
}

bool LeaseKeeper::valid(const std::string& instance) {
  auto g = group_of_.find(instance);
  if (g == group_of_.end()) return false;
  std::lock_guard lock(mutex_);
  auto it = held_.find(g->second);
  return it != held_.end() && steadyMs() < it->second.valid_until_ms;
}

bool LeaseKeeper::answers(const std::string& target) {
  auto g = group_of_.find(target);
  const std::string group = g == group_of_.end() ? first_group_ : g->second;
  std::lock_guard lock(mutex_);
  return held_.count(group) > 0 && !handing_.count(group);
}

size_t LeaseKeeper::held() {
  std::lock_guard lock(mutex_);
  return held_.size();
}

#else  // no PostgreSQL journal in this build (Windows): nothing ever makes a LeaseKeeper

namespace {
[[noreturn]] void unavailable() {
  throw std::logic_error("this build has no PostgreSQL journal, hence no leases");
}
}  // namespace

LeaseKeeper::LeaseKeeper(PostgresJournal& journal, const Config& config, Poco::Logger& logger,
                         Metrics& metrics, bool all)
    : journal_(journal),
      logger_(logger),
      metrics_(metrics),
      host_id_(config.host.host_id),
      lease_ms_(config.host.lease_time_ms),
      margin_ms_(0),
      all_(all) {
  unavailable();
}
LeaseKeeper::~LeaseKeeper() = default;
void LeaseKeeper::start() { unavailable(); }
void LeaseKeeper::stop() {}
void LeaseKeeper::awaitAll(const std::atomic<bool>&) { unavailable(); }
void LeaseKeeper::holdFor(const std::string&) { unavailable(); }
LeaseKeeper::Plan LeaseKeeper::plan() { unavailable(); }
void LeaseKeeper::handedOver(const Plan&) { unavailable(); }
void LeaseKeeper::releaseAll() {}
bool LeaseKeeper::valid(const std::string&) { return false; }
bool LeaseKeeper::answers(const std::string&) { return false; }
size_t LeaseKeeper::held() { return 0; }

#endif

}  // namespace ferry::core
