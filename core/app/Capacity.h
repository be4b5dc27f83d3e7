// What `ferry check` says about request budgets: sources that share a remote's limit (DuckHub:
// 300 requests per 60 s per client IP, shared by every venue polled from this host; Tradecloud:
// 10 requests per second per account, shared by its orders and shipments sources) and cannot all
// be polled at their interval within it. The host's rate limiter keeps them within the limit
// anyway; this tells the operator, before running, how far their polls will stretch.
#pragma once

#include <string>
#include <vector>

#include "config/Config.h"

namespace ferry::core {

// The request budget `source` draws on ("duckhub <origin>", "tradecloud <base url> <login>"), ""
// for a plugin without a known shared budget. Sources of one budget are leased together
// (LeaseKeeper.h), so that one budget lives on one host.
std::string budgetOf(const InstanceConfig& source);

// One line per budget that the enabled sources of `config` (validated) would exceed, e.g.
// "120 venues at 20 s need 360 requests/min; DuckHub allows 300/min per IP: each venue will be
// polled about every 24 s". Empty when every budget suffices. Linear in the number of sources.
std::vector<std::string> budgetWarnings(const Config& config);

}  // namespace ferry::core
