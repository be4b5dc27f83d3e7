// The C side of the host: the host-API table every plugin instance gets, and the per-instance
// context behind it. Only core/runtime and core/loader touch ferry_* types.
#pragma once

#include <ferry/abi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "journal/EventLog.h"
#include "runtime/PluginServices.h"
#include "services/Http.h"

namespace ferry::core {

// One emitted item of the page being fetched.
struct FetchedItem {
  std::string entity;
  std::string key;
  std::string version;
  int64_t version_ns = 0;
  std::string body;
  std::string meta;  // "" or the source's metadata object
  bool echo = false;
};

// What becomes of the unreadable items of a source (ferry_host_api.set_aside, a refused emit):
// an item is set aside once the page holding it was fetched `after_tries` times (the remote may
// be in the middle of a change, or the plugin about to be upgraded), or at once when the source
// already keeps it (`known`, by fingerprint: the look-back reads it again every cycle). Until
// then the page fails at its end and is fetched again.
struct SetAsideRule {
  int64_t after_tries = 3;
  std::function<bool(const std::string& fingerprint)> known;
  // Fetches of each item so far; cleared when a poll cycle succeeds.
  std::unordered_map<std::string, int64_t> tries;
};

// A host string lent to a plugin for the duration of a call.
inline ferry_host_str lend(std::string_view s) { return ferry_host_str{s.data(), s.size()}; }

// The C host-API table, the same for every instance.
const ferry_host_api* hostApi();

}  // namespace ferry::core

// The per-instance context handed to a plugin as an opaque pointer. One instance is called from
// one thread at a time, so the fields below need no lock.
struct ferry_host_ctx {
  ferry_host_ctx(ferry::core::PluginServices& services, std::string name, std::string kind,
                 std::vector<std::string> secrets);

  ferry::core::PluginServices& services;
  std::string name;  // instance name from the config
  std::string kind;  // "source" | "sink"
  std::vector<std::string> secrets;

  // The message and Retry-After of the last non-OK answer; cleared before each call.
  std::string last_error;
  int64_t retry_after_ms = -1;
  void clearError() {
    last_error.clear();
    retry_after_ms = -1;
  }

  // Set by Instance::fetch during fetch(); emit() appends to it, set_aside() to `set_aside`.
  std::vector<ferry::core::FetchedItem>* page = nullptr;
  std::vector<ferry::core::SetAsideItem>* set_aside = nullptr;
  std::string emit_error;
  // Unreadable items the plugin handed over during this fetch (set aside now, already, or not
  // yet), and why the page must be fetched again when one is not set aside yet.
  uint32_t unreadable = 0;
  std::string set_aside_wait;
  ferry::core::SetAsideRule set_aside_rule;
  // The ABI minor the plugin needs (its descriptor): answers differ from 2.1 on.
  uint32_t plugin_minor = 0;

  // Requests sent through http_request, so that the host knows when a call into the plugin
  // changed something at the remote (the delivered hook's progress is then saved at once).
  uint64_t http_requests = 0;
  // The shared rate limit of the instance's last rate-limited request ("" when none yet), and
  // the one whose grant its runner reserved for the next request ("" when none).
  std::string rate_key;
  std::string prepaid_rate_key;

};
