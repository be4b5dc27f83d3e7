#include "runtime/PluginServices.h"

namespace ferry::core {

std::shared_ptr<SharedScope> PluginServices::scope(const std::string& name) {
  std::lock_guard lock(scopes_mutex_);
  auto& s = scopes_[name];
  if (!s) s = std::make_shared<SharedScope>();
  return s;
}

}  // namespace ferry::core
