// Retry delays: exponential backoff with full jitter and a cap, never shorter than a
// Retry-After the remote asked for.
#pragma once

#include <cstdint>
#include <random>

namespace ferry::core {

struct BackoffPolicy {
  int64_t initial_ms = 1000;
  int64_t max_ms = 300000;
};

// The longest Retry-After honoured, when it exceeds the policy's cap: a server asking for days
// (or a value that overflows) must not park an instance for that long unnoticed.
constexpr int64_t kRetryAfterCeilingMs = 3600 * 1000;

// The delay before attempt number `attempt` (1 for the first retry): uniform in
// [0, min(max_ms, initial_ms * 2^(attempt-1))], then at least `retry_after_ms` when that is >= 0
// (up to the larger of max_ms and kRetryAfterCeilingMs).
int64_t backoffDelayMs(const BackoffPolicy& policy, int attempt, int64_t retry_after_ms,
                       std::mt19937_64& rng);

}  // namespace ferry::core
