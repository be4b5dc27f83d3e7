// A plugin instance as the runners see it: created from a validated config section, then called
// through C++ methods that each return one Outcome. This class and HostApi are the only code of
// the host that touches the C ABI's structs (with the loader, which reads the descriptor).
//
// Threading: one instance is called from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "journal/EventLog.h"
#include "loader/Loader.h"
#include "runtime/HostApi.h"
#include "runtime/Outcome.h"
#include "runtime/PluginServices.h"

namespace ferry::core {

class Instance {
 public:
  // Creates the plugin's instance named `name` ("source" or "sink" `kind`) with the resolved
  // values of the plugin's own options. `where` ("<file>: [source.x]") prefixes a refusal.
  // Throws LoadError(CreateFailed) with the plugin's message.
  static std::unique_ptr<Instance> create(
      std::shared_ptr<const Plugin> plugin, const std::string& where, PluginServices& services,
      const std::string& name, const std::string& kind, std::vector<std::string> secrets,
      const std::vector<std::pair<std::string, std::optional<std::string>>>& resolved);
  // Destroys the plugin's instance before the context it may still use while it goes.
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  const std::string& name() const { return ctx_->name; }

  // A source: one page of items at or after `since` (`since_ms`), skipping `offset`, at most
  // `limit`. The items emitted are appended to `items`, the unreadable ones set aside now (see
  // SetAsideRule) to `set_aside`; Outcome::done is how many the page held. An unreadable item
  // not yet set aside fails the page (Retry), whatever the plugin answered.
  Outcome fetch(const std::string& since, int64_t since_ms, uint32_t offset, uint32_t limit,
                std::vector<FetchedItem>& items, std::vector<SetAsideItem>& set_aside);
  // A source: when unreadable items are set aside (SetAsideRule): after `after_tries` fetches,
  // or at once when `known` says the source already keeps the fingerprint.
  void setSetAsideRule(int64_t after_tries, std::function<bool(const std::string&)> known);
  // A source's poll cycle succeeded: the tries counted so far start again.
  void forgetSetAsideTries();
  // True when the source has a delivered hook and this instance wants it called.
  bool wantsDelivered() const;
  // A source: every routed sink has `event`.
  Outcome delivered(const JournalEvent& event);

  // A sink: writes `events` in order. Fatal names the event at `done` (the ones before it are
  // durable); a Fatal that names no event of the batch is turned into Retry with the reason.
  Outcome write(const std::vector<const JournalEvent*>& events);

  // The shared rate limit the plugin's requests used last ("" when none yet).
  const std::string& rateKey() const { return ctx_->rate_key; }
  // The next request under rate limit `key` takes a grant reserved already ("" drops it).
  void prepay(const std::string& key) { ctx_->prepaid_rate_key = key; }

  // Either kind: the plugin's connectivity check (Ok when it has none).
  Outcome check();

 private:
  Instance() = default;
  // The outcome of a call that answered `status`, with the message and Retry-After it set.
  Outcome outcomeOf(Status status) const;

  std::unique_ptr<ferry_host_ctx> ctx_;
  std::unique_ptr<PluginInstance> instance_;
};

}  // namespace ferry::core
