#include "pipeline/HostServices.h"

#include <chrono>

namespace ferry::core {

void Signal::notify() {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
  }
  cv_.notify_all();
  if (listener_) listener_();
}

uint64_t Signal::waitFor(uint64_t seen, int64_t timeout_ms) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return generation_ != seen; });
  return generation_;
}

std::optional<InstanceActivity> HostServices::storedActivity(const std::string& kind,
                                                            const std::string& name) {
  std::lock_guard lock(activities_mutex_);
  if (!activities_) {
    std::map<std::string, InstanceActivity> all;
    for (auto& a : controls.activities()) all[a.kind + "/" + a.name] = std::move(a);
    activities_ = std::move(all);
  }
  auto it = activities_->find(kind + "/" + name);
  if (it == activities_->end()) return std::nullopt;
  return it->second;
}

void HostServices::forgetActivities() {
  std::lock_guard lock(activities_mutex_);
  activities_.reset();
}

uint64_t Signal::generation() {
  std::lock_guard lock(mutex_);
  return generation_;
}

}  // namespace ferry::core
