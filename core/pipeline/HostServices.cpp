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

uint64_t Signal::generation() {
  std::lock_guard lock(mutex_);
  return generation_;
}

}  // namespace ferry::core
