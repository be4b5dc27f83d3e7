// The C side of the host: the host-API table every plugin instance gets, and the per-instance
// context behind it. Only core/runtime and core/loader touch ferry_* types.
#pragma once

#include <ferry/abi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

  // Set by Instance::fetch during fetch(); emit() appends to it.
  std::vector<ferry::core::FetchedItem>* page = nullptr;
  std::string emit_error;

  // Requests sent through http_request, so that the host knows when a call into the plugin
  // changed something at the remote (the delivered hook's progress is then saved at once).
  uint64_t http_requests = 0;
  // The shared rate limit of the instance's last rate-limited request ("" when none yet), and
  // the one whose grant its runner reserved for the next request ("" when none).
  std::string rate_key;
  std::string prepaid_rate_key;

};
