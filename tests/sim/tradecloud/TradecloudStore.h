#pragma once

// The Tradecloud simulator's data: purchase orders and shipments of one buyer account, the
// filters the poll endpoints apply, and the changes a test (or the live thread) makes. Not
// thread-safe: TradecloudServer holds one mutex around every call.

#include <ferry/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::sim::tradecloud {

// Milliseconds since the epoch as `2025-04-23T10:01:53.812Z`.
std::string formatIsoMs(std::int64_t ms);
// Milliseconds since the epoch as `2025-04-23`.
std::string formatDate(std::int64_t ms);
// Parses an ISO 8601 instant carrying `Z` or `±hh:mm` (any number of fraction digits) into
// microseconds since the epoch. Naive or malformed text gives nullopt.
std::optional<std::int64_t> parseIsoUs(std::string_view text);
// JSON string literals, written the SDK's way.
using ferry::json::appendString;

struct Delivery {
  int position = 1;
  std::int64_t date_ms = 0;  // rendered yyyy-MM-dd
  std::int64_t quantity_milli = 0;
  std::string status = "Open";
  bool has_etd_eta = false;  // etd/eta are null until the supplier confirms
};

struct Prices {
  std::int64_t gross_cents = 0;
  int discount_bp = 0;  // hundredths of a percent
  std::string currency = "EUR";
  std::string unit_of_measure = "PCE";
  int unit_quantity = 1;
  std::int64_t netCents() const { return gross_cents * (10000 - discount_bp) / 10000; }
};

struct Line {
  std::string id;        // <orderId>-<position>
  std::string position;  // "10", "20", …
  std::string line_type = "Item";
  std::string buyer_line_json;  // the never-changing `"buyerLine":{…}`, rendered once
  std::string item_json;        // `{"number":…}`, what shipments repeat
  std::vector<Delivery> schedule, schedule_requested;
  Prices prices, prices_requested;
  bool confirmed = false;
  std::string process_status = "Issued";
  std::string in_progress_status;  // empty renders as null
  std::string logistics_status = "Open";
  std::int64_t updated_ms = 0;
};

struct Order {
  std::string id;  // <buyerCompanyId>-<purchaseOrderNumber>
  std::string purchase_order_number;
  std::string buyer_company_id, supplier_company_id;
  std::string fixed_json;  // `"buyerOrder":{…},"supplierOrder":{…}`, rendered once
  int version = 1;
  std::string process_status = "Issued";
  std::string logistics_status = "Open";
  std::int64_t updated_ms = 0;
  std::vector<Line> lines;
};

struct ShipmentLine {
  std::string purchase_order_number, purchase_order_line_position;
  std::string item_json;  // `{"number":…}`, rendered once
  std::string despatch_advice_number;
  std::int64_t despatch_quantity_milli = 0;
  std::int64_t updated_ms = 0;
};

struct Shipment {
  std::string id;
  std::string shipment_number;
  std::string buyer_company_id, supplier_company_id;
  std::string transport_mode;
  std::string identifiers_json, load_carriers_json, locations_json;  // rendered once
  std::string process_status = "Issued";
  std::string process_status_reason;  // empty renders as null
  int version = 1;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::vector<ShipmentLine> lines;
};

enum class Window { kExclusive, kInclusive };

struct OrderFilter {
  std::optional<std::int64_t> after_us;
  std::vector<std::string> company_ids;  // buyer or supplier company; empty: any
  // Line-level: an order matches when one of its lines passes every non-empty list.
  std::vector<std::string> process, in_progress, logistics, delivery_line;
  int account = 0;  // 1..StoreOptions::accounts: only that account's share; 0: every order
};

struct ShipmentFilter {
  std::optional<std::int64_t> after_us;
  std::vector<std::string> buyer_company_ids;  // empty: any
  std::vector<std::string> process;            // shipment status.processStatus; empty: any
  int account = 0;  // as in OrderFilter
};

struct StoreOptions {
  std::uint64_t seed = 1;
  int orders = 100;
  int shipments = 40;
  std::int64_t start_ms = 0;  // generated data lies in the hour before this instant
  std::string company_id = "6f1c0e52-3a9b-4d7e-9f10-2b5c8d4e7a31";
  int big_tie = 105;  // size of the one tie group larger than a page (when orders allow it)
  // Accounts that share the data: each order and shipment belongs to one of 1..accounts (by a
  // hash of its id), and an account's polls see only its own.
  int accounts = 1;
};

// The sister company: a second buyer company the account sees, so that company filters matter.
inline constexpr const char* kSisterCompanyId = "a3d5e7f9-1b2c-4d6e-8f0a-1c3e5a7b9d20";

// What one change did: for the control API's answers.
struct ChangeRecord {
  std::string entity;  // "order" | "shipment"
  std::string id;
  std::string change;  // "line-confirmed", "delivery-date", "price", "new-order", …
  std::int64_t updated_ms = 0;
};

class TradecloudStore {
 public:
  explicit TradecloudStore(const StoreOptions& options);

  const StoreOptions& options() const { return options_; }
  const std::vector<std::string>& supplierCompanyIds() const { return suppliers_; }

  // The account (1..accounts) an order or shipment id belongs to.
  int accountOf(const std::string& id) const;

  // Matches in the API's order: lastUpdatedAt ascending, ties by id ascending.
  std::vector<const Order*> matchOrders(const OrderFilter& filter, Window window);
  std::vector<const Shipment*> matchShipments(const ShipmentFilter& filter, Window window);

  // single_delivery: each line with k delivery lines becomes k lines with one each.
  void appendOrder(std::string& out, const Order& order, bool single_delivery) const;
  void appendShipment(std::string& out, const Shipment& shipment) const;
  // GET /_sim/state.
  std::string stateJson();

  Order* orderById(const std::string& id);
  Shipment* shipmentById(const std::string& id);

  // The clock of every change: the wall clock, but strictly later than every stamp given so far
  // (and than the generated data), so each change gets a new, larger lastUpdatedAt.
  std::int64_t stamp();

  // kind: "order", "shipment" or "any".
  ChangeRecord randomChange(const std::string& kind);
  ChangeRecord changeOrder(Order& order);  // an existing order: confirm, date or price
  ChangeRecord changeShipment(Shipment& shipment);
  // The ERP's own update opening a request on 1..line_count open lines (role "buyer" or
  // "supplier"). Returns the changed line ids (empty when the order has no open line).
  std::vector<std::string> echo(Order& order, const std::string& role, int line_count);
  // A random order with a line that can take a request, or nullptr.
  Order* echoCandidate();
  // The supplier changes one line's price, then the ERP's own update opens a request (role
  // "buyer" or "supplier") on another line: two changes, two stamps. Returns {the supplier's
  // line, the request's line}, or nothing when the order has no two such lines.
  std::vector<std::string> supplierChangeThenEcho(Order& order, const std::string& role);
  // The other party accepts every open request of the order: each such line takes its requested
  // schedule and prices and becomes Confirmed, with one new stamp. Returns the settled lines.
  std::vector<std::string> settle(Order& order);
  // Every order, in poll order (for settling them all).
  std::vector<Order*> allOrders();

 private:
  std::unique_ptr<Order> makeOrder(std::mt19937_64& rng, const std::string& buyer_company,
                                   std::int64_t updated_ms);
  std::unique_ptr<Shipment> makeShipment(std::mt19937_64& rng, std::int64_t updated_ms);
  void touchOrder(Order& order, std::int64_t ms);
  static void deriveOrderStatus(Order& order);

  StoreOptions options_;
  std::vector<std::string> suppliers_;
  std::vector<std::unique_ptr<Order>> orders_;
  std::vector<std::unique_ptr<Shipment>> shipments_;
  std::unordered_map<std::string, Order*> order_by_id_;
  std::unordered_map<std::string, Shipment*> shipment_by_id_;
  std::vector<Order*> orders_sorted_;
  std::vector<Shipment*> shipments_sorted_;
  bool orders_dirty_ = true, shipments_dirty_ = true;
  std::int64_t next_po_ = 4500001000;
  int next_shipment_ = 1;
  std::int64_t last_stamp_ms_ = 0;
  std::mt19937_64 change_rng_;
};

}  // namespace ferry::sim::tradecloud
