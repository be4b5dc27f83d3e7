#include "services/Backoff.h"

#include <algorithm>

namespace ferry::core {

int64_t backoffDelayMs(const BackoffPolicy& policy, int attempt, int64_t retry_after_ms,
                       std::mt19937_64& rng) {
  const int64_t max_ms = std::max<int64_t>(0, policy.max_ms);
  const int64_t initial_ms = std::max<int64_t>(0, policy.initial_ms);
  const int shift = std::max(attempt, 1) - 1;
  // initial_ms << shift overflows (undefined behaviour) long before a retry loop that has run
  // for days reaches attempt 64; compare against the cap shifted the other way instead.
  int64_t ceiling = max_ms;
  if (shift < 62 && initial_ms <= (max_ms >> shift)) ceiling = initial_ms << shift;
  // Full jitter (uniform in [0, ceiling]): clients that failed together do not retry together.
  int64_t delay = std::uniform_int_distribution<int64_t>(0, ceiling)(rng);
  // The server's Retry-After is a floor, not subject to the cap: asking earlier earns a 429.
  if (retry_after_ms >= 0)
    delay = std::max(delay, std::min(retry_after_ms, std::max(max_ms, kRetryAfterCeilingMs)));
  return delay;
}

}  // namespace ferry::core
