#include "runtime/PluginServices.h"

namespace ferry::core {

std::shared_ptr<SharedScope> PluginServices::scope(const std::string& name) {
  std::lock_guard lock(scopes_mutex_);
  auto& s = scopes_[name];
  if (!s) s = std::make_shared<SharedScope>();
  return s;
}

HttpClient& PluginServices::httpClient(bool verified) {
  std::lock_guard lock(http_mutex_);
  auto& client = verified ? http_ : http_unverified_;
  if (!client) {
    HttpSettings settings = http_settings;
    if (!verified) settings.tls_verify = false;
    client = std::make_unique<HttpClient>(settings);
  }
  return *client;
}

}  // namespace ferry::core
