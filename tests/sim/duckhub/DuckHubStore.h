#pragma once

// The simulator's data: venues, their orders, the indexes the list endpoint pages over, and the
// changes a test or the live thread applies. Not thread-safe: DuckHubServer holds one mutex
// around every call.

#include <ferry/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::sim::duckhub {

enum class Status : std::uint8_t {
  kNew,
  kConfirmed,
  kPreparing,
  kDelivering,
  kCompleted,
  kCancelled
};

std::string_view statusName(Status status);
std::optional<Status> parseStatus(std::string_view name);
// The state machine of PATCH /v1/orders/:id/status.
bool isLegalTransition(Status from, Status to);
std::vector<Status> legalTargets(Status from);

// Milliseconds since the epoch as `2026-07-05T12:01:05.000Z`.
std::string formatIsoMs(std::int64_t ms);
// Parses an ISO 8601 instant that carries `Z` or `±hh:mm` into microseconds since the epoch.
// Naive timestamps, date-only values and anything malformed give nullopt.
std::optional<std::int64_t> parseIsoUs(std::string_view text);

// JSON string literals, written the SDK's way.
using ferry::json::appendString;

struct Order {
  std::string id;
  std::int64_t order_number = 0;
  Status status = Status::kNew;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t confirmed_ms = -1;  // -1 renders as null
  std::int64_t completed_ms = -1;
  // The fields that never change, pre-rendered once: rendering a page is then a few appends.
  std::string head;  // `"type":…,…,"totalAmount":n,` (between status and createdAt)
  std::string tail;  // `"items":[…],"channel":"…"` (after completedAt)
};

void appendOrderJson(std::string& out, const Order& order);

struct OrderQuery {
  std::int64_t page = 1;
  std::int64_t limit = 20;
  std::optional<Status> status;
  std::optional<std::int64_t> since_us;          // createdAt >= since
  std::optional<std::int64_t> until_us;          // createdAt <= until
  std::optional<std::int64_t> updated_since_us;  // updatedAt >= updatedSince (inclusive)
};

struct Venue {
  std::string name;
  std::string api_key;
  bool paid = true;
  std::vector<std::unique_ptr<Order>> orders;  // in orderNumber order
  std::unordered_map<std::string, Order*> by_id;
  std::vector<Order*> by_updated;  // updatedAt ascending, ties by id ascending
  std::vector<Order*> by_created;  // createdAt descending, ties by id ascending
  std::int64_t next_order_number = 1001;
  std::uint64_t version = 0;  // bumped on every change (invalidates the response cache)
};

struct StoreOptions {
  std::uint64_t seed = 1;
  int venues = 3;
  int orders_per_venue = 50;
  std::int64_t start_ms = 0;  // generated orders lie in the hour before this instant
  bool free_venue = false;
};

class DuckHubStore {
 public:
  explicit DuckHubStore(const StoreOptions& options);

  std::vector<std::unique_ptr<Venue>>& venues() { return venues_; }
  Venue* venueByKey(std::string_view api_key);
  Venue* venueByName(std::string_view name);

  // Every order matching the query's filters, in the order the API sorts them (paging ignored).
  std::vector<const Order*> matching(const Venue& venue, const OrderQuery& query) const;
  // The body of GET /v1/orders for one query.
  std::string renderPage(const Venue& venue, const OrderQuery& query) const;

  // The simulator's clock: the wall clock, but never behind the generated data (when --start
  // lies in the future it runs on from --start at real speed).
  std::int64_t nowMs() const;

  // Moves an order to `to` (legality checked by the caller), stamped with the clock and always
  // strictly later than the order's previous updatedAt.
  void applyTransition(Venue& venue, Order& order, Status to);
  // The venue's staff edit the order's contents: one more item line, the amounts grow with it;
  // updatedAt moves on as for a transition.
  void applyEdit(Venue& venue, Order& order);
  Order& addOrder(Venue& venue);
  // One random change in `venue`: a new order or a legal transition of a random open order.
  std::string randomChange(Venue& venue);
  // A random legal transition of `order` (which must not be terminal).
  void randomTransition(Venue& venue, Order& order);
  std::mt19937_64& changeRng() { return change_rng_; }

 private:
  void generateVenue(Venue& venue, std::uint64_t venue_seed, int count);
  std::unique_ptr<Order> makeOrder(Venue& venue, std::mt19937_64& rng, std::int64_t created_ms);
  void reindexUpdated(Venue& venue, Order& order, std::int64_t new_updated_ms);
  // Stamps a change of `order` with the clock (strictly later than its previous updatedAt) and
  // returns the stamp.
  std::int64_t touch(Venue& venue, Order& order);
  void insertCreated(Venue& venue, Order* order);

  StoreOptions options_;
  std::vector<std::unique_ptr<Venue>> venues_;
  std::mt19937_64 change_rng_;
  std::int64_t launch_wall_ms_ = 0;
};

}  // namespace ferry::sim::duckhub
