#include "TradecloudStore.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <tuple>

namespace ferry::sim::tradecloud {
namespace {

constexpr std::int64_t kDayMs = 86400000;
constexpr std::int64_t kHourMs = 3600000;

// Portable draws: std::uniform_int_distribution differs between standard libraries, and the data
// must be a function of the seed alone.
std::uint64_t below(std::mt19937_64& rng, std::uint64_t n) { return n == 0 ? 0 : rng() % n; }
std::int64_t between(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  return lo + static_cast<std::int64_t>(below(rng, static_cast<std::uint64_t>(hi - lo + 1)));
}
bool chance(std::mt19937_64& rng, int percent) { return below(rng, 100) < std::uint64_t(percent); }
template <typename T, std::size_t N>
const T& pick(std::mt19937_64& rng, const std::array<T, N>& items) {
  return items[below(rng, N)];
}

std::string uuid(std::mt19937_64& rng) {
  const std::uint64_t a = rng(), b = rng();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", unsigned(a >> 32),
                unsigned((a >> 16) & 0xffff), unsigned(a & 0xfff),
                unsigned(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// Howard Hinnant's civil-from-days and days-from-civil.
void civilFromDays(std::int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

std::int64_t daysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// A fixed-point number with `scale` decimals as a JSON number, trailing zeros dropped (12.5).
void appendDecimal(std::string& out, std::int64_t value, int scale) {
  std::int64_t div = 1;
  for (int i = 0; i < scale; ++i) div *= 10;
  if (value < 0) {
    out += '-';
    value = -value;
  }
  out += std::to_string(value / div);
  std::int64_t frac = value % div;
  if (frac == 0) return;
  std::string digits = std::to_string(frac);
  digits.insert(0, static_cast<std::size_t>(scale) - digits.size(), '0');
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  out += '.';
  out += digits;
}

void appendNullable(std::string& out, const std::string& text) {
  if (text.empty()) {
    out += "null";
  } else {
    appendString(out, text);
  }
}

// Realistic text: commas, quotes, semicolons and non-ASCII, as ERP data has.
const std::array<const char*, 14> kItemNames = {
    "Hex bolt M8×40, DIN 933, A2-70",         "Kugellager 6204-2RS \"SKF\", Ø 20 mm",
    "Dichtungsring für Pumpe, Typ „B“",       "Câble d'alimentation 3×2,5 mm², 50 m",
    "Aluminium profile 40×40, anodised, 6 m", "Steel plate S235JR, 10 mm, \"cut to size\"",
    "Hydraulikschlauch DN12, 1/2\", 2 m",     "Válvula de bola 1\", latón",
    "Schaltschrank-Lüfter, 230 V; 120 m³/h",  "Label \"Fragile — handle with care\"",
    "Gasket set NBR, 25 pcs; \"O-ring\" kit", "Ventilator 24 V DC, 80×80×25 mm",
    "Zahnriemen HTD 8M-1200, 30 mm",          "Service: calibration, on site (Åre)",
};
const std::array<const char*, 8> kDescriptions = {
    "Spare parts, Q3 \"rush\"",
    "Rahmenvertrag Abruf Nr. 7, Werk Süd",
    "Production material, line \"A\", week 17",
    "Entretien préventif, site Lyon",
    "Prototype series; deliver to lab, not to stock",
    "Ersatzteile für Anlage „Nord“",
    "Replenishment, safety stock +10%",
    "Pedido urgente, almacén Málaga",
};
const std::array<std::array<const char*, 5>, 4> kPlaces = {{
    {"WH-01", "Warehouse Nord, Gate 3", "Industriestraße 12", "Düsseldorf", "DE"},
    {"PL-02", "Plant \"Süd\"", "Hauptstraße 1", "München", "DE"},
    {"DC-NL", "Distribution Centre Tilburg", "Ringbaan-Oost 102", "Tilburg", "NL"},
    {"SITE-F", "Usine de Lyon, quai 4", "12, rue de l'Industrie", "Lyon", "FR"},
}};
const std::array<const char*, 4> kUnits = {"PCE", "PCE", "KGM", "MTR"};
const std::array<const char*, 4> kTransport = {"Road", "Sea", "Air", "Rail"};
const std::array<const char*, 3> kRejectReasons = {"Wrong quantity, see \"remarks\"",
                                                   "Lieferadresse falsch; bitte prüfen",
                                                   "Date de livraison trop tardive"};

// A delivery line; with_position false: a single-delivery line's statusLine.scheduledDelivery,
// which has no position.
void appendDelivery(std::string& out, const Delivery& d, bool with_position = true) {
  out += with_position ? "{\"position\":" + std::to_string(d.position) + ',' : std::string("{");
  out += "\"date\":\"" + formatDate(d.date_ms) + "\",\"quantity\":";
  appendDecimal(out, d.quantity_milli, 3);
  out += ",\"status\":";
  appendString(out, d.status);
  if (d.has_etd_eta) {
    out += ",\"etd\":\"" + formatDate(d.date_ms - 2 * kDayMs) + "\",\"eta\":\"" +
           formatDate(d.date_ms) + "\"}";
  } else {
    out += ",\"etd\":null,\"eta\":null}";
  }
}

void appendSchedule(std::string& out, const std::vector<Delivery>& schedule, int only_position) {
  out += '[';
  bool first = true;
  for (const auto& d : schedule) {
    if (only_position > 0 && d.position != only_position) continue;
    if (!first) out += ',';
    first = false;
    appendDelivery(out, d);
  }
  out += ']';
}

void appendMoney(std::string& out, std::int64_t cents, const std::string& currency) {
  out += "{\"priceInTransactionCurrency\":{\"value\":";
  appendDecimal(out, cents, 2);
  out += ",\"currencyIso\":\"" + currency + "\"}}";
}

void appendPrices(std::string& out, const Prices& p) {
  out += "{\"grossPrice\":";
  appendMoney(out, p.gross_cents, p.currency);
  out += ",\"discountPercentage\":";
  appendDecimal(out, p.discount_bp, 2);
  out += ",\"netPrice\":";
  appendMoney(out, p.netCents(), p.currency);
  out += ",\"priceUnitOfMeasureIso\":\"" + p.unit_of_measure +
         "\",\"priceUnitQuantity\":" + std::to_string(p.unit_quantity) + '}';
}

// The delivery line at `position` of a schedule.
const Delivery& deliveryAt(const std::vector<Delivery>& schedule, int position) {
  for (const auto& d : schedule)
    if (d.position == position) return d;
  return schedule.front();
}

// only_position 0: a line of the default poll (deliverySchedule[], prices). Otherwise a line of
// the single-delivery poll for that one delivery line: statusLine{scheduledDelivery,
// scheduledDeliveryInclRequests, prices, pricesInclRequests} instead (api-contracts.md).
void appendLine(std::string& out, const Line& line, const std::string& id, int only_position) {
  out += "{\"id\":";
  appendString(out, id);
  out += ",\"lineType\":\"" + line.line_type + "\",";
  out += line.buyer_line_json;
  if (only_position == 0) {
    out += ",\"deliverySchedule\":";
    appendSchedule(out, line.schedule, 0);
    out += ",\"deliveryScheduleIncludingRequests\":";
    appendSchedule(out, line.schedule_requested, 0);
    out += ",\"prices\":";
    appendPrices(out, line.prices);
    out += ",\"pricesIncludingRequests\":";
    appendPrices(out, line.prices_requested);
  } else {
    out += ",\"statusLine\":{\"scheduledDelivery\":";
    appendDelivery(out, deliveryAt(line.schedule, only_position), false);
    out += ",\"scheduledDeliveryInclRequests\":";
    appendDelivery(out, deliveryAt(line.schedule_requested, only_position), false);
    out += ",\"prices\":";
    appendPrices(out, line.prices);
    out += ",\"pricesInclRequests\":";
    appendPrices(out, line.prices_requested);
    out += '}';
  }
  out += ",\"confirmedLine\":";
  if (line.confirmed) {
    out += "{\"deliverySchedule\":";
    appendSchedule(out, line.schedule, only_position);
    out += ",\"prices\":";
    appendPrices(out, line.prices);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\"status\":{\"processStatus\":\"" + line.process_status + "\",\"inProgressStatus\":";
  appendNullable(out, line.in_progress_status);
  out += ",\"logisticsStatus\":\"" + line.logistics_status + "\"},\"lastUpdatedAt\":\"" +
         formatIsoMs(line.updated_ms) + "\"}";
}

bool inList(const std::vector<std::string>& list, const std::string& value) {
  return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
}

bool lineMatches(const Line& line, const OrderFilter& f) {
  if (!inList(f.process, line.process_status)) return false;
  if (!f.in_progress.empty() && !inList(f.in_progress, line.in_progress_status)) return false;
  if (!inList(f.logistics, line.logistics_status)) return false;
  if (f.delivery_line.empty()) return true;
  return std::any_of(line.schedule.begin(), line.schedule.end(),
                     [&](const Delivery& d) { return inList(f.delivery_line, d.status); });
}

bool inWindow(std::int64_t ms, const std::optional<std::int64_t>& after_us, Window window) {
  if (!after_us) return true;
  return window == Window::kExclusive ? ms * 1000 > *after_us : ms * 1000 >= *after_us;
}

// Group sizes of generated change instants: mostly one item per instant, about one instant in
// eight shared by 2–4 items, and one group larger than a page when there are enough items.
std::vector<int> tieGroups(std::mt19937_64& rng, int n, int big) {
  std::vector<int> groups;
  int remaining = n;
  const bool with_big = big > 100 && n >= big + 20;
  if (with_big) remaining -= big;
  while (remaining > 0) {
    int size = chance(rng, 12) ? static_cast<int>(between(rng, 2, 4)) : 1;
    size = std::min(size, remaining);
    groups.push_back(size);
    remaining -= size;
  }
  if (with_big) {
    groups.insert(groups.begin() + static_cast<std::ptrdiff_t>(groups.size() / 2), big);
  }
  return groups;
}

// Instants for `groups` groups spread over [start - 1 h, start), strictly increasing.
std::vector<std::int64_t> spreadInstants(std::mt19937_64& rng, std::size_t groups,
                                         std::int64_t start_ms) {
  std::vector<std::int64_t> out;
  const std::int64_t base = start_ms - kHourMs;
  const double step = static_cast<double>(kHourMs) / static_cast<double>(groups + 1);
  std::int64_t prev = base - 1;
  for (std::size_t i = 0; i < groups; ++i) {
    const double jitter = (static_cast<double>(below(rng, 1000)) / 1000.0 - 0.5) * 0.6;
    auto t = base + static_cast<std::int64_t>((static_cast<double>(i + 1) + jitter) * step);
    t = std::max(t, prev + 1);
    out.push_back(t);
    prev = t;
  }
  return out;
}

}  // namespace

std::string formatIsoMs(std::int64_t ms) {
  const std::int64_t days = floorDiv(ms, kDayMs);
  const std::int64_t in_day = ms - days * kDayMs;
  int y, m, d;
  civilFromDays(days, y, m, d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
                int(in_day / 3600000), int(in_day / 60000 % 60), int(in_day / 1000 % 60),
                int(in_day % 1000));
  return buf;
}

std::string formatDate(std::int64_t ms) {
  int y, m, d;
  civilFromDays(floorDiv(ms, kDayMs), y, m, d);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, d);
  return buf;
}

std::optional<std::int64_t> parseIsoUs(std::string_view t) {
  auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > t.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2),
       s = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 ||
      *mi > 59 || *s > 59) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t frac_us = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (n < 6) frac_us = frac_us * 10 + (t[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (int i = n; i < 6; ++i) frac_us *= 10;
  }
  std::int64_t offset_min = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || pos + 3 >= t.size() || t[pos + 3] != ':' || *oh > 23 || *om > 59) {
      return std::nullopt;
    }
    offset_min = (*oh * 60 + *om) * (t[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  const std::int64_t secs =
      daysFromCivil(*y, *mo, *d) * 86400 + *h * 3600 + *mi * 60 + *s - offset_min * 60;
  return secs * 1000000 + frac_us;
}

TradecloudStore::TradecloudStore(const StoreOptions& options)
    : options_(options), change_rng_(options.seed * 0x9e3779b97f4a7c15ULL + 17) {
  std::mt19937_64 rng(options_.seed);
  for (int i = 0; i < 6; ++i) suppliers_.push_back(uuid(rng));

  const auto groups = tieGroups(rng, options_.orders, options_.big_tie);
  const auto instants = spreadInstants(rng, groups.size(), options_.start_ms);
  // Purchase order numbers are handed out in a shuffled order, so that within a tie the id order
  // differs from the generation order.
  std::vector<std::int64_t> numbers(static_cast<std::size_t>(options_.orders));
  for (std::size_t i = 0; i < numbers.size(); ++i) numbers[i] = next_po_++;
  for (std::size_t i = numbers.size(); i > 1; --i)
    std::swap(numbers[i - 1], numbers[below(rng, i)]);
  std::size_t k = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (int j = 0; j < groups[g]; ++j, ++k) {
      const std::string company = chance(rng, 85) ? options_.company_id : kSisterCompanyId;
      const std::int64_t saved = next_po_;
      next_po_ = numbers[k];
      auto order = makeOrder(rng, company, instants[g]);
      next_po_ = saved;
      order->version = static_cast<int>(between(rng, 1, 4));
      order_by_id_[order->id] = order.get();
      orders_.push_back(std::move(order));
    }
  }

  std::mt19937_64 srng(options_.seed ^ 0x5348495050ULL);
  const auto sgroups = tieGroups(srng, options_.shipments, 0);
  const auto sinstants = spreadInstants(srng, sgroups.size(), options_.start_ms);
  for (std::size_t g = 0; g < sgroups.size(); ++g) {
    for (int j = 0; j < sgroups[g]; ++j) {
      auto shipment = makeShipment(srng, sinstants[g]);
      shipment_by_id_[shipment->id] = shipment.get();
      shipments_.push_back(std::move(shipment));
    }
  }
  last_stamp_ms_ = options_.start_ms - 1;
  for (const auto& o : orders_) last_stamp_ms_ = std::max(last_stamp_ms_, o->updated_ms);
  for (const auto& s : shipments_) last_stamp_ms_ = std::max(last_stamp_ms_, s->updated_ms);
}

std::unique_ptr<Order> TradecloudStore::makeOrder(std::mt19937_64& rng,
                                                  const std::string& buyer_company,
                                                  std::int64_t updated_ms) {
  auto o = std::make_unique<Order>();
  o->purchase_order_number = std::to_string(next_po_++);
  o->buyer_company_id = buyer_company;
  o->id = buyer_company + "-" + o->purchase_order_number;
  const std::size_t supplier = below(rng, suppliers_.size());
  o->supplier_company_id = suppliers_[supplier];
  o->updated_ms = updated_ms;
  const auto& place = pick(rng, kPlaces);
  std::string& f = o->fixed_json;
  f = "\"buyerOrder\":{\"companyId\":\"" + buyer_company + "\",\"purchaseOrderNumber\":\"" +
      o->purchase_order_number + "\",\"supplierAccountNumber\":\"SUP-" +
      std::to_string(10020 + supplier) + "\",\"description\":";
  appendString(f, pick(rng, kDescriptions));
  f += ",\"orderType\":\"Purchase\",\"destination\":{\"code\":";
  appendString(f, place[0]);
  f += ",\"names\":[";
  appendString(f, place[1]);
  f += "],\"addressLines\":[";
  appendString(f, place[2]);
  f += "],\"city\":";
  appendString(f, place[3]);
  f += ",\"countryCodeIso2\":";
  appendString(f, place[4]);
  f += "},\"terms\":{\"incotermsCode\":\"DAP\",\"incotermsPlace\":";
  appendString(f, place[3]);
  f += ",\"paymentTermsCode\":\"N30\",\"paymentTerms\":\"30 days net, 2% discount within 10 "
       "days\"},\"contact\":{\"name\":\"Jürgen O'Neill\",\"email\":\"purchasing@buyer.example\"}}";
  f += ",\"supplierOrder\":{\"companyId\":\"" + o->supplier_company_id +
       "\",\"buyerAccountNumber\":\"CUST-" + std::to_string(700 + supplier) +
       "\",\"salesOrderNumber\":null}";

  const int line_count =
      chance(rng, 8) ? static_cast<int>(between(rng, 6, 20)) : static_cast<int>(between(rng, 1, 5));
  const std::string currency = chance(rng, 90) ? "EUR" : "USD";
  const int changed_lines = static_cast<int>(between(rng, 1, line_count));
  for (int i = 0; i < line_count; ++i) {
    Line l;
    l.position = std::to_string((i + 1) * 10);
    l.id = o->id + "-" + l.position;
    const char* name = pick(rng, kItemNames);
    const bool service = std::string_view(name).rfind("Service", 0) == 0;
    l.line_type = service ? "Service" : "Item";
    const std::string unit = service ? "HUR" : pick(rng, kUnits);
    const std::string number = "ART-" + std::to_string(between(rng, 10000, 99999));
    l.item_json = "{\"number\":\"" + number + "\",\"revision\":\"" +
                  std::string(1, char('A' + below(rng, 3))) + "\",\"name\":";
    appendString(l.item_json, name);
    l.item_json += ",\"purchaseUnitOfMeasureIso\":\"" + unit + "\",\"supplierItemNumber\":\"S-" +
                   std::to_string(between(rng, 1000, 9999)) + "/" +
                   std::to_string(between(rng, 1, 99)) + "\"}";
    l.buyer_line_json = "\"buyerLine\":{\"position\":\"" + l.position +
                        "\",\"item\":" + l.item_json + ",\"description\":";
    appendString(l.buyer_line_json, name);
    l.buyer_line_json += ",\"terms\":{\"contractNumber\":null}}";

    const int deliveries = chance(rng, 70) ? 1 : static_cast<int>(between(rng, 2, 3));
    std::int64_t date = floorDiv(updated_ms, kDayMs) * kDayMs + between(rng, 14, 90) * kDayMs;
    for (int d = 0; d < deliveries; ++d) {
      Delivery del;
      del.position = d + 1;
      del.date_ms = date;
      del.quantity_milli =
          unit == "KGM" ? between(rng, 5, 2000) * 500 : between(rng, 1, 500) * 1000;
      l.schedule.push_back(del);
      date += between(rng, 7, 30) * kDayMs;
    }
    l.prices.currency = currency;
    l.prices.unit_of_measure = unit;
    l.prices.unit_quantity = chance(rng, 15) ? 100 : 1;
    l.prices.gross_cents = between(rng, 50, 250000);
    l.prices.discount_bp = std::array<int, 5>{0, 0, 250, 500, 1000}[below(rng, 5)];

    const auto roll = below(rng, 100);
    if (roll < 35) {
      l.process_status = "Confirmed";
      l.confirmed = true;
      for (auto& d : l.schedule) d.has_etd_eta = true;
      if (chance(rng, 25)) {
        l.logistics_status = chance(rng, 50) ? "Produced" : "Shipped";
        for (auto& d : l.schedule) d.status = l.logistics_status;
      }
    } else if (roll < 40) {
      l.process_status = "Cancelled";
      l.logistics_status = "Cancelled";
      for (auto& d : l.schedule) d.status = "Cancelled";
    }
    l.schedule_requested = l.schedule;
    l.prices_requested = l.prices;
    if (roll >= 40 && roll < 45) {
      // An open proposal from the supplier: the requested values differ from the current ones.
      l.process_status = "InProgress";
      l.in_progress_status = "OpenSupplierProposal";
      for (auto& d : l.schedule_requested) d.date_ms += 14 * kDayMs;
    }
    // The order's last change touched the first lines; the others are as old as the order.
    l.updated_ms = i < changed_lines ? updated_ms : updated_ms - between(rng, 1, 48) * kHourMs;
    o->lines.push_back(std::move(l));
  }
  deriveOrderStatus(*o);
  return o;
}

std::unique_ptr<Shipment> TradecloudStore::makeShipment(std::mt19937_64& rng,
                                                        std::int64_t updated_ms) {
  auto s = std::make_unique<Shipment>();
  s->id = uuid(rng);
  char number[32];
  std::snprintf(number, sizeof number, "SHP-2025-%06d", next_shipment_++);
  s->shipment_number = number;
  s->updated_ms = updated_ms;
  s->created_ms = updated_ms - between(rng, 0, 72) * kHourMs;
  s->transport_mode = pick(rng, kTransport);
  // Lines of one order of the shipment's buyer company (orders are generated first).
  const Order* order = orders_.empty() ? nullptr : orders_[below(rng, orders_.size())].get();
  s->buyer_company_id = order ? order->buyer_company_id : options_.company_id;
  s->supplier_company_id = order ? order->supplier_company_id : suppliers_[0];
  const std::string advice = "DA-" + std::to_string(between(rng, 100000, 999999));
  if (order) {
    const std::size_t count = std::min<std::size_t>(order->lines.size(), between(rng, 1, 4));
    for (std::size_t i = 0; i < count; ++i) {
      const Line& ol = order->lines[i];
      ShipmentLine sl;
      sl.purchase_order_number = order->purchase_order_number;
      sl.purchase_order_line_position = ol.position;
      sl.item_json = ol.item_json;
      sl.despatch_advice_number = advice;
      sl.despatch_quantity_milli = ol.schedule.front().quantity_milli;
      sl.updated_ms = i == 0 ? updated_ms : updated_ms - between(rng, 0, 3) * kHourMs;
      s->lines.push_back(std::move(sl));
    }
  }
  s->identifiers_json =
      "{\"trackAndTraceNumber\":\"1Z" + std::to_string(rng() % 1000000000000ULL) +
      "\",\"containerNumber\":" +
      (s->transport_mode == "Sea" ? "\"MSKU" + std::to_string(between(rng, 1000000, 9999999)) + "\""
                                  : "null") +
      "}";
  s->load_carriers_json = "[";
  const int carriers = static_cast<int>(between(rng, 1, 3));
  for (int i = 0; i < carriers; ++i) {
    if (i) s->load_carriers_json += ',';
    s->load_carriers_json +=
        "{\"id\":\"LC-" + std::to_string(i + 1) + "\",\"type\":\"Pallet\",\"sscc\":\"0087" +
        std::to_string(between(rng, 10000000, 99999999)) + "\",\"grossWeight\":{\"value\":";
    appendDecimal(s->load_carriers_json, between(rng, 500, 90000), 2);
    s->load_carriers_json += ",\"unitOfMeasureIso\":\"KGM\"}}";
  }
  s->load_carriers_json += "]";
  const auto& from = kPlaces[below(rng, kPlaces.size())];
  const auto& to = kPlaces[below(rng, kPlaces.size())];
  auto place = [](const std::array<const char*, 5>& p) {
    std::string out = "{\"code\":";
    appendString(out, p[0]);
    out += ",\"name\":";
    appendString(out, p[1]);
    out += ",\"addressLines\":[";
    appendString(out, p[2]);
    out += "],\"city\":";
    appendString(out, p[3]);
    out += ",\"countryCodeIso2\":";
    appendString(out, p[4]);
    return out + "}";
  };
  // The planned dates of api-contracts.md: locations{departure{location, etdDate, atdDate},
  // destinations[]{location, etaStartDate, etaStartTime, etaEndDate, etaEndTime, ataDate,
  // etdDate, atdDate}}; about one shipment in four has a second destination. Drawn from a
  // generator of their own, seeded by the shipment, so that the rest of the data set stays the
  // same.
  std::mt19937_64 plan(std::hash<std::string>{}(s->id));
  static constexpr std::array<const char*, 3> kStarts = {"06:00:00", "08:00:00", "10:30:00"};
  static constexpr std::array<const char*, 3> kEnds = {"12:00:00", "16:00:00", "18:00:00"};
  const std::int64_t transit_days = s->transport_mode == "Sea"    ? between(plan, 18, 35)
                                    : s->transport_mode == "Rail" ? between(plan, 4, 8)
                                                                  : between(plan, 1, 3);
  const std::int64_t etd = floorDiv(s->created_ms, kDayMs) * kDayMs + between(plan, 0, 3) * kDayMs;
  s->locations_json = "{\"departure\":{\"location\":" + place(from) + ",\"etdDate\":\"" +
                      formatDate(etd) + "\",\"atdDate\":null},\"destinations\":[";
  const int destinations = chance(plan, 25) ? 2 : 1;
  std::int64_t eta = etd + transit_days * kDayMs;
  for (int i = 0; i < destinations; ++i) {
    const std::int64_t eta_end = eta + between(plan, 0, 1) * kDayMs;
    const auto& where = i == 0 ? to : kPlaces[below(plan, kPlaces.size())];
    if (i > 0) s->locations_json += ',';
    s->locations_json += "{\"location\":" + place(where) + ",\"etaStartDate\":\"" +
                         formatDate(eta) + "\",\"etaStartTime\":\"" + pick(plan, kStarts) +
                         "\",\"etaEndDate\":\"" + formatDate(eta_end) + "\",\"etaEndTime\":\"" +
                         pick(plan, kEnds) + "\",\"ataDate\":null,";
    // A stop the goods leave again departs at the end of its window.
    s->locations_json += i + 1 < destinations
                             ? "\"etdDate\":\"" + formatDate(eta_end) + "\",\"atdDate\":null}"
                             : std::string("\"etdDate\":null,\"atdDate\":null}");
    eta = eta_end + between(plan, 1, 3) * kDayMs;
  }
  s->locations_json += "]}";
  const auto roll = below(rng, 100);
  if (roll < 30) {
    s->process_status = "Approved";
  } else if (roll < 40) {
    s->process_status = "Rejected";
    s->process_status_reason = pick(rng, kRejectReasons);
  }
  return s;
}

void TradecloudStore::deriveOrderStatus(Order& order) {
  // One line status for all lines is the order's; any mixture (or any open request) is
  // InProgress. Cancelled lines do not hold an order back.
  std::string process, logistics;
  bool mixed = false, any_open_request = false;
  for (const auto& l : order.lines) {
    if (l.process_status == "InProgress") any_open_request = true;
    if (l.process_status == "Cancelled" && order.lines.size() > 1) continue;
    if (process.empty()) {
      process = l.process_status;
      logistics = l.logistics_status;
    } else if (process != l.process_status) {
      mixed = true;
    }
    if (logistics != l.logistics_status) logistics = "Open";
  }
  if (process.empty()) process = "Cancelled", logistics = "Cancelled";
  order.process_status = mixed || any_open_request ? "InProgress" : process;
  order.logistics_status = logistics;
}

int TradecloudStore::accountOf(const std::string& id) const {
  if (options_.accounts <= 1) return 1;
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: the same on every platform
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ULL;
  return 1 + static_cast<int>(h % static_cast<std::uint64_t>(options_.accounts));
}

namespace {

// The first item of `sorted` (by updated_ms) that can be in the window: polls skip the rest
// without looking at it, so that thousands of accounts polling a large store stay cheap.
template <class T>
typename std::vector<T*>::const_iterator firstInWindow(const std::vector<T*>& sorted,
                                                       const std::optional<std::int64_t>& after_us) {
  if (!after_us) return sorted.begin();
  return std::partition_point(sorted.begin(), sorted.end(),
                              [&](const T* x) { return x->updated_ms * 1000 < *after_us; });
}

}  // namespace

std::vector<const Order*> TradecloudStore::matchOrders(const OrderFilter& filter, Window window) {
  if (orders_dirty_) {
    orders_sorted_.clear();
    for (auto& o : orders_) orders_sorted_.push_back(o.get());
    std::sort(orders_sorted_.begin(), orders_sorted_.end(), [](const Order* a, const Order* b) {
      return std::tie(a->updated_ms, a->id) < std::tie(b->updated_ms, b->id);
    });
    orders_dirty_ = false;
  }
  std::vector<const Order*> out;
  const bool by_line = !filter.process.empty() || !filter.in_progress.empty() ||
                       !filter.logistics.empty() || !filter.delivery_line.empty();
  for (auto it = firstInWindow(orders_sorted_, filter.after_us); it != orders_sorted_.end(); ++it) {
    const Order* o = *it;
    if (!inWindow(o->updated_ms, filter.after_us, window)) continue;
    if (filter.account != 0 && accountOf(o->id) != filter.account) continue;
    if (!filter.company_ids.empty() && !inList(filter.company_ids, o->buyer_company_id) &&
        !inList(filter.company_ids, o->supplier_company_id)) {
      continue;
    }
    if (by_line && std::none_of(o->lines.begin(), o->lines.end(),
                                [&](const Line& l) { return lineMatches(l, filter); })) {
      continue;
    }
    out.push_back(o);
  }
  return out;
}

std::vector<const Shipment*> TradecloudStore::matchShipments(const ShipmentFilter& filter,
                                                             Window window) {
  if (shipments_dirty_) {
    shipments_sorted_.clear();
    for (auto& s : shipments_) shipments_sorted_.push_back(s.get());
    std::sort(shipments_sorted_.begin(), shipments_sorted_.end(),
              [](const Shipment* a, const Shipment* b) {
                return std::tie(a->updated_ms, a->id) < std::tie(b->updated_ms, b->id);
              });
    shipments_dirty_ = false;
  }
  std::vector<const Shipment*> out;
  for (auto it = firstInWindow(shipments_sorted_, filter.after_us); it != shipments_sorted_.end();
       ++it) {
    const Shipment* s = *it;
    if (!inWindow(s->updated_ms, filter.after_us, window)) continue;
    if (filter.account != 0 && accountOf(s->id) != filter.account) continue;
    if (!inList(filter.buyer_company_ids, s->buyer_company_id)) continue;
    if (!inList(filter.process, s->process_status)) continue;
    out.push_back(s);
  }
  return out;
}

void TradecloudStore::appendOrder(std::string& out, const Order& o, bool single_delivery) const {
  out += "{\"id\":";
  appendString(out, o.id);
  out += ",\"version\":" + std::to_string(o.version) + ',';
  out += o.fixed_json;
  out += ",\"status\":{\"processStatus\":\"" + o.process_status + "\",\"logisticsStatus\":\"" +
         o.logistics_status + "\"},\"lastUpdatedAt\":\"" + formatIsoMs(o.updated_ms) +
         "\",\"lines\":[";
  bool first = true;
  for (const auto& l : o.lines) {
    if (!single_delivery) {
      if (!first) out += ',';
      first = false;
      appendLine(out, l, l.id, 0);
      continue;
    }
    for (const auto& d : l.schedule) {
      if (!first) out += ',';
      first = false;
      appendLine(out, l, l.id + "-" + std::to_string(d.position), d.position);
    }
  }
  out += "]}";
}

void TradecloudStore::appendShipment(std::string& out, const Shipment& s) const {
  out += "{\"id\":\"" + s.id + "\",\"identifiers\":" + s.identifiers_json +
         ",\"transportMode\":\"" + s.transport_mode + "\",\"supplierShipment\":{\"companyId\":\"" +
         s.supplier_company_id + "\",\"shipmentNumber\":\"" + s.shipment_number +
         "\"},\"buyerShipment\":{\"companyId\":\"" + s.buyer_company_id +
         "\"},\"loadCarriers\":" + s.load_carriers_json + ",\"lines\":[";
  for (std::size_t i = 0; i < s.lines.size(); ++i) {
    const auto& l = s.lines[i];
    if (i) out += ',';
    out += "{\"purchaseOrderNumber\":\"" + l.purchase_order_number +
           "\",\"purchaseOrderLinePosition\":\"" + l.purchase_order_line_position +
           "\",\"item\":" + l.item_json + ",\"supplierLine\":{\"despatchAdviceNumber\":\"" +
           l.despatch_advice_number + "\",\"despatchQuantity\":";
    appendDecimal(out, l.despatch_quantity_milli, 3);
    out += "},\"meta\":{\"lastUpdatedAt\":\"" + formatIsoMs(l.updated_ms) + "\"}}";
  }
  out += "],\"locations\":" + s.locations_json + ",\"status\":{\"processStatus\":\"" +
         s.process_status + "\",\"processStatusReason\":";
  appendNullable(out, s.process_status_reason);
  out += "},\"meta\":{\"lastUpdatedAt\":\"" + formatIsoMs(s.updated_ms) + "\",\"createdAt\":\"" +
         formatIsoMs(s.created_ms) + "\",\"version\":" + std::to_string(s.version) + "}}";
}

std::string TradecloudStore::stateJson() {
  std::string out = "{\"company_id\":\"" + options_.company_id + "\",\"orders\":[";
  const auto orders = matchOrders({}, Window::kInclusive);
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const Order& o = *orders[i];
    if (i) out += ',';
    out += "{\"id\":\"" + o.id + "\",\"companyId\":\"" + o.buyer_company_id +
           "\",\"supplierCompanyId\":\"" + o.supplier_company_id +
           "\",\"version\":" + std::to_string(o.version) + ",\"processStatus\":\"" +
           o.process_status + "\",\"lastUpdatedAt\":\"" + formatIsoMs(o.updated_ms) +
           "\",\"lines\":[";
    for (std::size_t j = 0; j < o.lines.size(); ++j) {
      const Line& l = o.lines[j];
      if (j) out += ',';
      out += "{\"id\":\"" + l.id + "\",\"lastUpdatedAt\":\"" + formatIsoMs(l.updated_ms) +
             "\",\"processStatus\":\"" + l.process_status + "\",\"inProgressStatus\":";
      appendNullable(out, l.in_progress_status);
      out += ",\"deliveries\":" + std::to_string(l.schedule.size()) + '}';
    }
    out += "]}";
  }
  out += "],\"shipments\":[";
  const auto shipments = matchShipments({}, Window::kInclusive);
  for (std::size_t i = 0; i < shipments.size(); ++i) {
    const Shipment& s = *shipments[i];
    if (i) out += ',';
    out += "{\"id\":\"" + s.id + "\",\"buyerCompanyId\":\"" + s.buyer_company_id +
           "\",\"processStatus\":\"" + s.process_status + "\",\"lastUpdatedAt\":\"" +
           formatIsoMs(s.updated_ms) + "\",\"lines\":[";
    for (std::size_t j = 0; j < s.lines.size(); ++j) {
      const auto& l = s.lines[j];
      if (j) out += ',';
      out += "{\"purchaseOrderNumber\":\"" + l.purchase_order_number +
             "\",\"purchaseOrderLinePosition\":\"" + l.purchase_order_line_position +
             "\",\"lastUpdatedAt\":\"" + formatIsoMs(l.updated_ms) + "\"}";
    }
    out += "]}";
  }
  return out + "]}";
}

Order* TradecloudStore::orderById(const std::string& id) {
  auto it = order_by_id_.find(id);
  return it == order_by_id_.end() ? nullptr : it->second;
}

Shipment* TradecloudStore::shipmentById(const std::string& id) {
  auto it = shipment_by_id_.find(id);
  return it == shipment_by_id_.end() ? nullptr : it->second;
}

std::int64_t TradecloudStore::stamp() {
  using namespace std::chrono;
  const std::int64_t wall =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  last_stamp_ms_ = std::max(wall, last_stamp_ms_ + 1);
  return last_stamp_ms_;
}

void TradecloudStore::touchOrder(Order& order, std::int64_t ms) {
  order.updated_ms = ms;
  ++order.version;
  deriveOrderStatus(order);
  orders_dirty_ = true;
}

// The supplier confirms the line; an open request is settled with its requested values.
static void confirmLine(Line& l, std::int64_t ms) {
  l.schedule = l.schedule_requested;
  l.prices = l.prices_requested;
  for (auto& d : l.schedule) d.has_etd_eta = true;
  l.schedule_requested = l.schedule;
  l.confirmed = true;
  l.process_status = "Confirmed";
  l.in_progress_status.clear();
  l.updated_ms = ms;
}

// A price change by the supplier: the current and the requested price move together.
static void changePrice(std::mt19937_64& rng, Line& l, std::int64_t ms) {
  const std::int64_t delta = std::max<std::int64_t>(1, l.prices.gross_cents / 20);
  const std::int64_t sign = chance(rng, 50) ? 1 : -1;
  l.prices.gross_cents = std::max<std::int64_t>(1, l.prices.gross_cents + sign * delta);
  l.prices_requested.gross_cents =
      std::max<std::int64_t>(1, l.prices_requested.gross_cents + sign * delta);
  l.updated_ms = ms;
}

ChangeRecord TradecloudStore::changeOrder(Order& order) {
  auto& rng = change_rng_;
  std::vector<Line*> confirmable, open;
  for (auto& l : order.lines) {
    if (l.process_status == "Issued" || l.process_status == "InProgress") confirmable.push_back(&l);
    if (l.process_status != "Cancelled" && l.process_status != "Completed") open.push_back(&l);
  }
  if (open.empty()) open.push_back(&order.lines.front());
  const std::int64_t ms = stamp();
  ChangeRecord rec{"order", order.id, "", ms};
  const auto roll = below(rng, 3);
  if (!confirmable.empty() && roll == 0) {
    confirmLine(*confirmable[below(rng, confirmable.size())], ms);
    rec.change = "line-confirmed";
  } else if (roll == 1) {
    Line& l = *open[below(rng, open.size())];
    const std::int64_t shift = between(rng, 1, 10) * kDayMs;
    for (auto& d : l.schedule) d.date_ms += shift;
    for (auto& d : l.schedule_requested) d.date_ms += shift;
    l.updated_ms = ms;
    rec.change = "delivery-date";
  } else {
    changePrice(rng, *open[below(rng, open.size())], ms);
    rec.change = "price";
  }
  touchOrder(order, ms);
  return rec;
}

ChangeRecord TradecloudStore::changeShipment(Shipment& s) {
  auto& rng = change_rng_;
  const std::int64_t ms = stamp();
  ChangeRecord rec{"shipment", s.id, "", ms};
  if (s.process_status == "Issued") {
    if (chance(rng, 75)) {
      s.process_status = "Approved";
    } else {
      s.process_status = "Rejected";
      s.process_status_reason = pick(rng, kRejectReasons);
    }
    rec.change = "shipment-status";
  } else if (!s.lines.empty()) {
    // The supplier corrects a despatch quantity; a rejected shipment is issued again.
    auto& l = s.lines[below(rng, s.lines.size())];
    l.despatch_quantity_milli += 1000;
    l.updated_ms = ms;
    if (s.process_status == "Rejected") {
      s.process_status = "Issued";
      s.process_status_reason.clear();
    }
    rec.change = "shipment-line";
  } else {
    s.process_status = "Issued";
    rec.change = "shipment-status";
  }
  s.updated_ms = ms;
  ++s.version;
  shipments_dirty_ = true;
  return rec;
}

ChangeRecord TradecloudStore::randomChange(const std::string& kind) {
  auto& rng = change_rng_;
  const bool order = kind == "order" || (kind != "shipment" && chance(rng, 70));
  if (order) {
    if (orders_.empty() || chance(rng, 20)) {
      auto o = makeOrder(rng, options_.company_id, stamp());
      for (auto& l : o->lines) l.updated_ms = o->updated_ms;  // every line is new
      last_stamp_ms_ = o->updated_ms;
      ChangeRecord rec{"order", o->id, "new-order", o->updated_ms};
      order_by_id_[o->id] = o.get();
      orders_.push_back(std::move(o));
      orders_dirty_ = true;
      return rec;
    }
    return changeOrder(*orders_[below(rng, orders_.size())]);
  }
  if (shipments_.empty() || chance(rng, 20)) {
    auto s = makeShipment(rng, stamp());
    for (auto& l : s->lines) l.updated_ms = s->updated_ms;
    s->created_ms = s->updated_ms;
    ChangeRecord rec{"shipment", s->id, "new-shipment", s->updated_ms};
    shipment_by_id_[s->id] = s.get();
    shipments_.push_back(std::move(s));
    shipments_dirty_ = true;
    return rec;
  }
  return changeShipment(*shipments_[below(rng, shipments_.size())]);
}

static bool echoable(const Line& l) {
  return l.process_status == "Issued" || l.process_status == "Confirmed";
}

Order* TradecloudStore::echoCandidate() {
  if (orders_.empty()) return nullptr;
  const std::size_t start = below(change_rng_, orders_.size());
  for (std::size_t i = 0; i < orders_.size(); ++i) {
    Order* o = orders_[(start + i) % orders_.size()].get();
    if (o->buyer_company_id == options_.company_id &&
        std::any_of(o->lines.begin(), o->lines.end(), echoable)) {
      return o;
    }
  }
  return nullptr;
}

// The request's values go to *IncludingRequests only: the line keeps its current schedule and
// prices until the other party accepts.
static void openRequest(Line& l, bool buyer, std::int64_t ms) {
  l.schedule_requested = l.schedule;
  for (auto& d : l.schedule_requested) d.date_ms += (buyer ? 7 : 5) * kDayMs;
  l.prices_requested = l.prices;
  l.prices_requested.gross_cents =
      std::max<std::int64_t>(1, l.prices.gross_cents * (buyer ? 98 : 103) / 100);
  l.process_status = "InProgress";
  l.in_progress_status = buyer ? "OpenBuyerReopenRequest" : "OpenSupplierProposal";
  l.updated_ms = ms;
}

std::vector<std::string> TradecloudStore::echo(Order& order, const std::string& role,
                                               int line_count) {
  std::vector<std::string> ids;
  std::int64_t ms = 0;
  for (auto& l : order.lines) {
    if (static_cast<int>(ids.size()) >= line_count) break;
    if (!echoable(l)) continue;
    if (ms == 0) ms = stamp();
    openRequest(l, role == "buyer", ms);
    ids.push_back(l.id);
  }
  if (ms != 0) touchOrder(order, ms);
  return ids;
}

std::vector<std::string> TradecloudStore::supplierChangeThenEcho(Order& order,
                                                                 const std::string& role) {
  Line* request = nullptr;
  Line* supplier = nullptr;
  for (auto& l : order.lines) {
    if (request == nullptr && echoable(l)) request = &l;
  }
  for (auto& l : order.lines) {
    if (supplier == nullptr && &l != request && l.process_status != "Cancelled" &&
        l.process_status != "Completed")
      supplier = &l;
  }
  if (request == nullptr || supplier == nullptr) return {};
  const std::int64_t first = stamp();
  changePrice(change_rng_, *supplier, first);
  touchOrder(order, first);
  const std::int64_t second = stamp();
  openRequest(*request, role == "buyer", second);
  touchOrder(order, second);
  return {supplier->id, request->id};
}

std::vector<std::string> TradecloudStore::settle(Order& order) {
  std::vector<std::string> ids;
  std::int64_t ms = 0;
  for (auto& l : order.lines) {
    if (l.in_progress_status.empty()) continue;
    if (ms == 0) ms = stamp();
    confirmLine(l, ms);
    ids.push_back(l.id);
  }
  if (ms != 0) touchOrder(order, ms);
  return ids;
}

std::vector<Order*> TradecloudStore::allOrders() {
  std::vector<Order*> out;
  for (auto& o : orders_) out.push_back(o.get());
  return out;
}

}  // namespace ferry::sim::tradecloud
