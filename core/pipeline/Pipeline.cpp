#include "pipeline/Pipeline.h"

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "delivery/Delivery.h"
#include "services/Time.h"

namespace ferry::core {

Pipeline::Pipeline(const Config& config, const PluginRegistry& plugins, Journal& journal,
                   Poco::Logger& logger)
    : config_(config),
      plugins_(plugins),
      services_(std::make_unique<HostServices>(journal, logger)) {}

Pipeline::~Pipeline() {
  stop();
  // Fixed order: sources first (they may hold shared state the sinks never touch), then sinks.
  // The runners' destructors destroy the instances; the libraries go when the registry does.
  sources_.clear();
  sinks_.clear();
}

std::unique_ptr<Instance> Pipeline::createInstance(const InstanceConfig& instance) {
  auto plugin = plugins_.find(instance.plugin);
  if (!plugin)
    throw ConfigError(config_.file + ": [" + instance.section + "] plugin: unknown plugin '" +
                      instance.plugin + "'");
  // The plugin's refusal names the option; the config file and section say where it is.
  return Instance::create(plugin, config_.file + ": [" + instance.section + "]", *services_,
                          instance.name, instance.kind, instance.secret_values, instance.resolved);
}

void Pipeline::create() {
  BackoffPolicy backoff{config_.host.retry_initial_ms, config_.host.retry_max_ms};
  for (const auto& sink : config_.sinks) {
    if (!sink.enabled) continue;
    sinks_.push_back(std::make_unique<SinkRunner>(sink, createInstance(sink), *services_, backoff,
                                                  sink.from));
  }
  for (const auto& source : config_.sources) {
    if (!source.enabled) continue;
    std::vector<std::string> routed = routedSinks(config_, source.name);
    CycleSettings cycle;
    cycle.lookback_ms = source.lookback_ms;
    cycle.page_size = static_cast<uint32_t>(std::max<int64_t>(1, source.page_size));
    cycle.commit_pages = config_.host.commit_pages;
    cycle.commit_interval_ms = config_.host.commit_interval_ms;
    cycle.start_from = source.start_from;
    sources_.push_back(std::make_unique<SourceRunner>(source, createInstance(source), *services_,
                                                      cycle, backoff, routed));
  }
  // Instances of one plugin usually poll one API under one rate budget (DuckHub: per client
  // IP): spread their first cycles evenly over the interval.
  std::map<std::string, std::vector<std::pair<SourceRunner*, int64_t>>> by_plugin;
  size_t i = 0;
  for (const auto& source : config_.sources) {
    if (!source.enabled) continue;
    by_plugin[source.plugin].emplace_back(sources_[i++].get(), source.interval_ms);
  }
  for (auto& [plugin, runners] : by_plugin)
    for (size_t k = 0; k < runners.size(); ++k)
      runners[k].first->setPhase(runners[k].second * static_cast<int64_t>(k) /
                                 static_cast<int64_t>(runners.size()));
}

void Pipeline::start() {
  started_ = true;
  for (auto& s : sinks_) s->start();
  for (auto& s : sources_) s->start(false);
}

void Pipeline::requestStop() {
  services_->stopping = true;
  for (auto& s : sources_) s->interrupt();
  services_->new_events.notify();
  services_->sink_advanced.notify();
}

void Pipeline::stop() {
  if (!started_) return;
  requestStop();
  // Sources first: a page in flight finishes (or fails) and what is complete is committed.
  for (auto& s : sources_) s->join();
  // Then the sinks: a batch in flight finishes and its offset is committed.
  for (auto& s : sinks_) s->join();
  started_ = false;
}

SourceRunner* Pipeline::sourceRunner(const std::string& name) {
  for (auto& s : sources_)
    if (s->name() == name) return s.get();
  return nullptr;
}

SinkRunner* Pipeline::sinkRunner(const std::string& name) {
  for (auto& s : sinks_)
    if (s->name() == name) return s.get();
  return nullptr;
}

int Pipeline::runOnce(const std::function<void()>& tick) {
  started_ = true;
  for (auto& s : sinks_) s->start();
  for (auto& s : sources_) s->start(true);
  auto all_done = [&] {
    for (auto& s : sources_)
      if (!s->finished()) return false;
    if (!services_->sources_finished.exchange(true)) services_->new_events.notify();
    for (auto& s : sinks_)
      if (!s->finished() && !s->drained()) return false;
    return true;
  };
  uint64_t seen = services_->sink_advanced.generation();
  while (!services_->stopping.load() && !all_done()) {
    seen = services_->sink_advanced.waitFor(seen, 200);
    if (tick) tick();
  }
  // The source threads are done (joined here), so the hooks run on this thread without racing
  // a fetch; the sinks have drained, so every event has reached every routed sink. A stop
  // request (signal) skips them: they run again on the next start.
  for (auto& s : sources_) s->join();
  if (!services_->stopping.load())
    for (auto& s : sources_) s->processDelivered();
  stop();
  applyRetention();
  return anyFailed() ? 1 : 0;
}

std::vector<std::pair<std::string, std::string>> Pipeline::checkAll() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& s : sources_) out.emplace_back("[source." + s->name() + "]", s->check());
  for (auto& s : sinks_) out.emplace_back("[sink." + s->name() + "]", s->check());
  return out;
}

bool Pipeline::anyFailed() const {
  for (const auto& s : sources_)
    if (s->failed()) return true;
  for (const auto& s : sinks_)
    if (s->failed()) return true;
  return false;
}

void Pipeline::applyRetention() {
  EventLog& log = services_->event_log;
  SinkLedger& ledger = services_->ledger;
  int64_t up_to = lowWaterMark(log, ledger, retentionHolders(config_, services_->controls));
  // A source with a delivered hook still needs its events until the hook has run.
  for (const auto& source : sources_)
    if (source->hasDeliveredHook()) up_to = std::min(up_to, ledger.deliveredUpTo(source->name()));
  int64_t removed = log.purge(up_to, nowMs() - config_.host.retention_ms);
  if (removed > 0)
    services_->logger.information("retention: removed " + std::to_string(removed) +
                                  " event(s) every sink has passed");
}

}  // namespace ferry::core
