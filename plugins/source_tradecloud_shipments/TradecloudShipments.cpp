// source_tradecloud_shipments: every change of the account's Tradecloud shipments, through
// POST /v2/shipment/poll and the host's cursor algorithm. A shipment's change time is
// meta.lastUpdatedAt (it has no top-level lastUpdatedAt). Paging as in source_tradecloud_orders:
// lastUpdatedAfter one millisecond before the host's `since`, versions from the items only.
#include <ferry/instant.hpp>
#include <ferry/json.hpp>
#include <ferry/common/Tradecloud.h>
#include <ferry/plugin.hpp>

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
    ferry::Option("process_status", FERRY_OPT_LIST)
        .help("only shipments in one of these process statuses (Issued, Approved, Rejected); "
              "unset: all"),
    tc::option::kInterval,
    tc::option::kStartFrom,
    tc::option::kPageSize,
    tc::option::kTimeout,
};

class TradecloudShipments : public ferry::Source {
 public:
  TradecloudShipments(ferry::Host host, const ferry::Options& options)
      : ferry::Source(host),
        session_(host, tc::accountFrom(options)),
        page_size_(tc::pageSizeFrom(options)) {
    const std::string company = tc::companyIdFrom(options);
    if (!company.empty()) {
      // The API filters by the buyer's company only; a supplier's is matched here, on
      // supplierShipment.companyId.
      if (tc::parseRole(options.string("role", "buyer")) == tc::Role::kBuyer)
        filters_ += ",\"buyerShipment\":{\"companyId\":" + ferry::json::quote(company) + "}";
      else
        supplier_company_ = company;
    }
    const auto statuses = options.list("process_status");
    if (!statuses.empty()) {
      tc::checkWords("process_status", statuses);
      filters_ += ",\"status\":{\"processStatus\":" + tc::jsonStrings(statuses) + "}";
    }
  }

  uint32_t fetch(const ferry::FetchRequest& request) override {
    const int64_t after_ms = request.since_ms - 1;
    const std::string body =
        "{\"filters\":{\"lastUpdatedAfter\":\"" + ferry::instant::formatMs(after_ms * 1000000) +
        "\"" + filters_ + "},\"offset\":" + std::to_string(request.offset) +
        ",\"limit\":" + std::to_string(std::min(request.limit, page_size_)) + "}";
    const std::string what = "POST /shipment/poll";
    ferry::HttpResponse r = session_.post("/shipment/poll", body);
    if (!r.ok()) session_.fail(r, what);
    // Every shipment the API returned counts for paging, also one filtered out here.
    return reader_.read(r.body(), what, host(), [&](std::string_view raw,
                                                     simdjson::dom::element s) {
      std::string_view id, updated_at;
      if (s["id"].get(id) || s.at_pointer("/meta/lastUpdatedAt").get(updated_at) || id.empty())
        return host().setAside(raw, what + " answered a shipment without a string id or "
                                           "meta.lastUpdatedAt");
      if (!supplier_company_.empty()) {
        std::string_view supplier;
        if (s.at_pointer("/supplierShipment/companyId").get(supplier) ||
            supplier != supplier_company_)
          return;
      }
      // The shipment number and the purchase-order numbers of its lines, for `ferry trace`.
      std::vector<std::string> numbers{tc::numberAt(s, "/supplierShipment/shipmentNumber")};
      simdjson::dom::array lines;
      if (!s["lines"].get(lines))
        for (simdjson::dom::element line : lines)
          numbers.push_back(tc::numberAt(line, "/purchaseOrderNumber"));
      host().emit(ferry::Item{"shipment", id, updated_at, raw, false, tc::eventMeta(numbers)});
    });
  }

  void check() override {
    ferry::HttpResponse r = session_.post("/shipment/poll", "{\"offset\":0,\"limit\":1}");
    if (!r.ok()) session_.fail(r, "POST /shipment/poll");
  }

 private:
  tc::Session session_;
  uint32_t page_size_;
  std::string filters_;          // ,"buyerShipment":{…},"status":{…} after lastUpdatedAfter
  std::string supplier_company_;  // role = supplier with company_id: filtered here
  tc::PageReader reader_;
};

}  // namespace

FERRY_SOURCE_PLUGIN(TradecloudShipments, "source_tradecloud_shipments", "1.0.0",
                    "Tradecloud shipments (POST /v2/shipment/poll)", kOptions)
