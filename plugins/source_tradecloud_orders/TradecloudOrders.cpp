// source_tradecloud_orders: every change of the account's Tradecloud purchase orders, through
// POST /v2/order-search/poll (or /poll/single-delivery) and the host's cursor algorithm. The API's
// lastUpdatedAfter is most likely exclusive, so each page asks from one millisecond before the
// host's `since`; an inclusive server then repeats a few orders, which the host's dedupe drops.
// Versions come from the orders themselves, never from the response-level lastUpdatedAt (absent
// or null on an empty page).
//
// Echo: an order change is our own echo only when everything that changed since the version
// delivered before is our own open request. The plugin learns which version of each order has
// been delivered from the host's delivered() hook (called once every sink has it, so the version
// is certainly journalled: the host's `previous` is that version or a newer one) and keeps it in
// its durable state. Without a delivered version (first sight, or a version not yet through every
// sink) nothing is an echo; a delivered version older than `previous` only makes the rule
// stricter, never takes a real change for an echo.
#include <ferry/mapping.hpp>
#include <ferry/common/StateMap.h>
#include <ferry/instant.hpp>
#include <ferry/json.hpp>
#include <ferry/common/Tradecloud.h>
#include <ferry/plugin.hpp>

#include <optional>
#include <string>
#include <vector>

namespace {

namespace tc = ferry::tradecloud;

constexpr ferry_option_def kOptions[] = {
    tc::option::kBaseUrl,
    tc::option::kEmail,
    tc::option::kPassword,
    tc::option::kAuth,
    tc::option::kCompanyId,
    tc::option::kRole,
    ferry::Option("variant")
        .defaultsTo("default")
        .choices("default|single-delivery")
        .help("default: POST /order-search/poll; single-delivery: /order-search/poll/"
              "single-delivery, one line per delivery line"),
    ferry::Option("process_status", FERRY_OPT_LIST)
        .help("only orders with a line in one of these process statuses (Issued, InProgress, "
              "Confirmed, Rejected, Completed, Cancelled); unset: all"),
    ferry::Option("in_progress_status", FERRY_OPT_LIST)
        .help("only orders with a line in one of these in-progress statuses; unset: all"),
    ferry::Option("logistics_status", FERRY_OPT_LIST)
        .help("only orders with a line in one of these logistics statuses; unset: all"),
    ferry::Option("delivery_line_status", FERRY_OPT_LIST)
        .help("only orders with a delivery line in one of these statuses; unset: all"),
    ferry::Option("echo")
        .defaultsTo("open-requests")
        .choices("open-requests|in-progress|off")
        .help("mark an order change as echo when every changed line is one of the role's own "
              "open requests (open-requests), or InProgress (in-progress); off: never"),
    tc::option::kInterval,
    tc::option::kStartFrom,
    tc::option::kPageSize,
    tc::option::kTimeout,
};

class TradecloudOrders : public ferry::Source {
 public:
  TradecloudOrders(ferry::Host host, const ferry::Options& options)
      : ferry::Source(host),
        session_(host, tc::accountFrom(options)),
        role_(tc::parseRole(options.string("role", "buyer"))),
        echo_(tc::parseEchoRule(options.string("echo", "open-requests"))),
        path_(options.string("variant", "default") == "single-delivery"
                  ? "/order-search/poll/single-delivery"
                  : "/order-search/poll"),
        page_size_(tc::pageSizeFrom(options)),
        delivered_(host, "delivered/") {
    // The filters never change: build that part of the body once.
    const std::string company = tc::companyIdFrom(options);
    if (!company.empty()) filters_ += ",\"companyId\":" + ferry::json::quote(company);
    std::string status;
    for (const auto& [option, field] :
         {std::pair{"process_status", "processStatus"}, {"in_progress_status", "inProgressStatus"},
          {"logistics_status", "logisticsStatus"}, {"delivery_line_status", "deliveryLineStatus"}}) {
      const auto values = options.list(option);
      if (values.empty()) continue;
      tc::checkWords(option, values);
      status += std::string(status.empty() ? "" : ",") + "\"" + field + "\":" +
                tc::jsonStrings(values);
    }
    if (!status.empty()) filters_ += ",\"status\":{" + status + "}";
  }

  ~TradecloudOrders() override {
    try {
      delivered_.flush();
    } catch (...) {
      // Losing the last delivered versions only makes the echo rule stricter until they return.
    }
  }

  uint32_t fetch(const ferry::FetchRequest& request) override {
    delivered_.flush();
    // "After since - 1 ms" is "at or after since" for an exclusive server; the host asks for
    // inclusive windows and drops what it has seen.
    const int64_t after_ms = request.since_ms - 1;
    const std::string body =
        "{\"filters\":{\"lastUpdatedAfter\":\"" + ferry::instant::formatMs(after_ms * 1000000) +
        "\"" + filters_ + "},\"offset\":" + std::to_string(request.offset) +
        ",\"limit\":" + std::to_string(std::min(request.limit, page_size_)) + "}";
    ferry::HttpResponse r = session_.post(path_, body);
    const std::string what = "POST " + path_;
    if (!r.ok()) session_.fail(r, what);
    return reader_.read(r.body(), what, host(), [&](std::string_view raw,
                                                     simdjson::dom::element order) {
      std::string_view id, updated_at;
      if (order["id"].get(id) || order["lastUpdatedAt"].get(updated_at) || id.empty())
        return host().setAside(raw, what + " answered an order without a string id or "
                                           "lastUpdatedAt");
      const bool echo = tc::isEchoOrder(order, echo_, role_, deliveredMs(id));
      // The buyer's purchase-order number and the supplier's sales-order number, and the lines
      // that are our own open requests, for `ferry trace` and the sinks (README: "Metadata").
      const std::string meta =
          tc::eventMeta({tc::numberAt(order, "/buyerOrder/purchaseOrderNumber"),
                         tc::numberAt(order, "/supplierOrder/salesOrderNumber")},
                        tc::ownLines(order, echo_, role_));
      host().emit(ferry::Item{"order", id, updated_at, raw, echo, meta});
    });
  }

  // Every sink has this version: remember it (the newest per order) for the echo rule.
  void delivered(const ferry::Event& event) override {
    int64_t ms = 0;
    if (!ferry::mapping::parseInstantMs(event.version(), ms)) return;
    const std::string key(event.key());
    if (auto known = deliveredMs(key); known && *known >= ms) return;
    delivered_.put(key, std::to_string(ms));
    if (delivered_.pending() >= kFlushEvery) delivered_.flush();
  }
  bool wantsDelivered() const override { return echo_ != tc::EchoRule::kOff; }

  void check() override {
    ferry::HttpResponse r = session_.post(path_, "{\"offset\":0,\"limit\":1}");
    if (!r.ok()) session_.fail(r, "POST " + path_);
  }

 private:
  tc::Session session_;
  tc::Role role_;
  tc::EchoRule echo_;
  std::string path_;
  uint32_t page_size_;
  std::string filters_;  // ,"companyId":…,"status":{…} after lastUpdatedAfter
  tc::PageReader reader_;
  // Order id -> lastUpdatedAt (ms) of its newest version every sink has. Flushed before each
  // page, every kFlushEvery versions, and at shutdown.
  ferry::common::StateMap delivered_;
  static constexpr size_t kFlushEvery = 1000;

  std::optional<int64_t> deliveredMs(std::string_view id) const {
    const std::string* v = delivered_.find(std::string(id));
    if (v == nullptr) return std::nullopt;
    return std::stoll(*v);
  }
};

}  // namespace

FERRY_SOURCE_PLUGIN(TradecloudOrders, "source_tradecloud_orders", "1.0.0",
                    "Tradecloud purchase orders (POST /v2/order-search/poll)", kOptions)
