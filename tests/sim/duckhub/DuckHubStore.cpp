#include "DuckHubStore.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>

namespace ferry::sim::duckhub {
namespace {

constexpr std::int64_t kHourMs = 3600 * 1000;

// splitmix64: turns (seed, venue) into independent, well-mixed RNG seeds, so that venue v1's data
// does not depend on how many venues there are.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::int64_t uniform(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {  // [lo, hi]
  return lo + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(hi - lo + 1));
}

bool chance(std::mt19937_64& rng, int percent) { return uniform(rng, 0, 99) < percent; }

template <typename T, std::size_t N>
const T& pick(std::mt19937_64& rng, const std::array<T, N>& values) {
  return values[rng() % N];
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp + (mp < 10 ? 3 : -9);
  y += m <= 2;
}

struct Product {
  const char* external_id;
  const char* name;
  std::int64_t price;
};

// Names with commas, quotes and non-ASCII letters on purpose: sinks must quote and encode them.
constexpr std::array<Product, 12> kMenu = {{
    {"p-101", "Margherita", 890},
    {"p-102", "Pizza \"Diavola\"", 1190},
    {"p-103", "Käsespätzle", 1150},
    {"p-104", "Crème brûlée", 650},
    {"p-105", "Bún chả", 1290},
    {"p-106", "Smørrebrød, 2 pcs", 990},
    {"p-107", "Coca-Cola 0,33l", 320},
    {"p-108", "Pad Thai", 1250},
    {"p-109", "Ćevapčići", 1390},
    {"p-110", "Flammkuchen \"Elsässer Art\"", 1090},
    {"p-111", "Tiramisù", 590},
    {"p-112", "Wasser, still", 250},
}};

constexpr std::array<const char*, 16> kNames = {
    "Jürgen Müller",         "Zoë Dubois",        "José García",
    "Søren Østergaard",      "Łukasz Wiśniewski", "Anna Schmidt",
    "Ömer Yılmaz",           "Chloé Lefèvre",     "O'Brien, Seán",
    "Ana \"Nina\" Petrović", "Max Mustermann",    "Björk Guðmundsdóttir",
    "=SUM(A1:A9)",           "-Lena Hoffmann",    "Émile Zola",
    "François Ça Va"};

constexpr std::array<const char*, 10> kStreets = {"Hauptstraße 12, 10115 Berlin",
                                                  "Rue de Rivoli 5, 75001 Paris",
                                                  "Calle Mayor 3, 28013 Madrid",
                                                  "Königsallee 27, 40212 Düsseldorf",
                                                  "Marktgasse 4, 3011 Bern",
                                                  "Ulica Długa 8, 80-827 Gdańsk",
                                                  "Östra Hamngatan 1, 411 10 Göteborg",
                                                  "Via Roma 10, 00184 Roma",
                                                  "Nørrebrogade 52, 2200 København",
                                                  "Baker Street 221b, London"};

constexpr std::array<const char*, 10> kNotes = {"3rd floor, door on the left",
                                                "Leave at \"reception\"",
                                                "Gate code 1234\nthen 2nd door",
                                                "-2 floor (basement)",
                                                "Bitte klingeln: Müller",
                                                "Don't ring, baby sleeps",
                                                "=cmd|' /C calc'!A0",
                                                "Back entrance, next to the café",
                                                "Call on arrival",
                                                ""};

constexpr std::array<const char*, 10> kComments = {
    "Extra spicy, please",  "Ring twice — the bell is \"broken\"",
    "No onions\nNo garlic", "Allergic to nuts!",
    "-1 fork, no straws",   "Cutlery for 3, please",
    "+49 is my prefix",     "Geburtstag 🎂, bitte Kerze",
    "@kitchen: well done",  "Merci beaucoup, à bientôt"};

constexpr std::array<const char*, 4> kModifiers = {"Extra cheese", "Gluten-free base",
                                                   "Sauce \"piccante\"", "Ohne Zwiebeln"};

constexpr std::array<const char*, 4> kCurrencies = {"EUR", "EUR", "CHF", "GBP"};

void appendInt(std::string& out, std::int64_t v) { out += std::to_string(v); }

void appendNullableString(std::string& out, const char* key, const std::string* value) {
  out += '"';
  out += key;
  out += "\":";
  if (value) {
    appendString(out, *value);
  } else {
    out += "null";
  }
  out += ',';
}

void appendNullableTime(std::string& out, const char* key, std::int64_t ms) {
  out += '"';
  out += key;
  out += "\":";
  if (ms >= 0) {
    out += '"';
    out += formatIsoMs(ms);
    out += '"';
  } else {
    out += "null";
  }
}

bool updatedLess(const Order* a, const Order* b) {
  return a->updated_ms != b->updated_ms ? a->updated_ms < b->updated_ms : a->id < b->id;
}

bool createdLess(const Order* a, const Order* b) {
  return a->created_ms != b->created_ms ? a->created_ms > b->created_ms : a->id < b->id;
}

bool isTerminal(Status s) { return s == Status::kCompleted || s == Status::kCancelled; }

std::int64_t wallMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

bool matchesFilters(const Order& o, const OrderQuery& q) {
  if (q.status && o.status != *q.status) return false;
  if (q.since_us && o.created_ms * 1000 < *q.since_us) return false;
  if (q.until_us && o.created_ms * 1000 > *q.until_us) return false;
  if (q.updated_since_us && o.updated_ms * 1000 < *q.updated_since_us) return false;
  return true;
}

}  // namespace

std::string_view statusName(Status status) {
  switch (status) {
    case Status::kNew:
      return "new";
    case Status::kConfirmed:
      return "confirmed";
    case Status::kPreparing:
      return "preparing";
    case Status::kDelivering:
      return "delivering";
    case Status::kCompleted:
      return "completed";
    case Status::kCancelled:
      return "cancelled";
  }
  return "new";
}

std::optional<Status> parseStatus(std::string_view name) {
  for (Status s : {Status::kNew, Status::kConfirmed, Status::kPreparing, Status::kDelivering,
                   Status::kCompleted, Status::kCancelled}) {
    if (statusName(s) == name) return s;
  }
  return std::nullopt;
}

std::vector<Status> legalTargets(Status from) {
  switch (from) {
    case Status::kNew:
      return {Status::kConfirmed, Status::kCancelled};
    case Status::kConfirmed:
      return {Status::kPreparing, Status::kCancelled};
    case Status::kPreparing:
      return {Status::kDelivering, Status::kCompleted, Status::kCancelled};
    case Status::kDelivering:
      return {Status::kCompleted, Status::kCancelled};
    default:
      return {};
  }
}

bool isLegalTransition(Status from, Status to) {
  const auto targets = legalTargets(from);
  return std::find(targets.begin(), targets.end(), to) != targets.end();
}

std::string formatIsoMs(std::int64_t ms) {
  // Hand-written digits: a page of 100 orders formats 400 timestamps, and snprintf was a tenth
  // of the serving time.
  std::int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  const std::int64_t rest = ms - days * 86400000;
  std::int64_t y;
  unsigned m, d;
  civilFromDays(days, y, m, d);
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t at, std::int64_t value, int width) {
    for (int k = width - 1; k >= 0; --k) {
      out[at + static_cast<std::size_t>(k)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, y < 0 ? 0 : y % 10000, 4);
  put(5, m, 2);
  put(8, d, 2);
  put(11, rest / 3600000, 2);
  put(14, rest / 60000 % 60, 2);
  put(17, rest / 1000 % 60, 2);
  put(20, rest % 1000, 3);
  return out;
}

std::optional<std::int64_t> parseIsoUs(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&](std::size_t n, int& value) {
    if (i + n > s.size()) return false;
    value = 0;
    for (std::size_t k = 0; k < n; ++k) {
      char c = s[i + k];
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    i += n;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int year, month, day, hour, minute, second = 0;
  if (!digits(4, year) || !expect('-') || !digits(2, month) || !expect('-') || !digits(2, day))
    return std::nullopt;
  if (!expect('T') && !expect('t')) return std::nullopt;
  if (!digits(2, hour) || !expect(':') || !digits(2, minute)) return std::nullopt;
  std::int64_t micros = 0;
  if (expect(':')) {
    if (!digits(2, second)) return std::nullopt;
    if (expect('.') || expect(',')) {
      int n = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (n < 6) micros = micros * 10 + (s[i] - '0');
        ++n;
        ++i;
      }
      if (n == 0) return std::nullopt;
      for (int k = n; k < 6; ++k) micros *= 10;
    }
  }
  std::int64_t offset_s = 0;
  if (expect('Z') || expect('z')) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i] == '-' ? -1 : 1;
    ++i;
    int oh, om;
    if (!digits(2, oh) || !expect(':') || !digits(2, om) || oh > 23 || om > 59) return std::nullopt;
    offset_s = sign * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;  // naive: no timezone
  }
  if (i != s.size()) return std::nullopt;
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysIn[month - 1] || hour > 23 || minute > 59 ||
      second > 59)
    return std::nullopt;
  const std::int64_t secs =
      daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000000 + micros;
}

void appendOrderJson(std::string& out, const Order& o) {
  out += "{\"id\":\"";
  out += o.id;
  out += "\",\"orderNumber\":";
  appendInt(out, o.order_number);
  out += ",\"status\":\"";
  out += statusName(o.status);
  out += "\",";
  out += o.head;
  appendNullableTime(out, "createdAt", o.created_ms);
  out += ',';
  appendNullableTime(out, "updatedAt", o.updated_ms);
  out += ',';
  appendNullableTime(out, "confirmedAt", o.confirmed_ms);
  out += ',';
  appendNullableTime(out, "completedAt", o.completed_ms);
  out += ',';
  out += o.tail;
  out += '}';
}

DuckHubStore::DuckHubStore(const StoreOptions& options)
    : options_(options), change_rng_(mix(options.seed ^ 0xc4a9e5ULL)), launch_wall_ms_(wallMs()) {
  const int total = options.venues + (options.free_venue ? 1 : 0);
  for (int v = 0; v < total; ++v) {
    auto venue = std::make_unique<Venue>();
    const bool is_free = v == options.venues;
    venue->name = is_free ? "free" : "v" + std::to_string(v + 1);
    venue->paid = !is_free;
    const std::uint64_t venue_seed = mix(options.seed * 1000003ULL + static_cast<std::uint64_t>(v));
    std::mt19937_64 key_rng(mix(venue_seed ^ 0x6b6579ULL));
    static constexpr char kB64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    venue->api_key = "dk_test_";
    for (int k = 0; k < 32; ++k) venue->api_key += kB64[key_rng() % 64];
    generateVenue(*venue, venue_seed, options.orders_per_venue);
    venues_.push_back(std::move(venue));
  }
}

Venue* DuckHubStore::venueByKey(std::string_view api_key) {
  for (auto& v : venues_)
    if (v->api_key == api_key) return v.get();
  return nullptr;
}

Venue* DuckHubStore::venueByName(std::string_view name) {
  for (auto& v : venues_)
    if (v->name == name) return v.get();
  return nullptr;
}

std::unique_ptr<Order> DuckHubStore::makeOrder(Venue& venue, std::mt19937_64& rng,
                                               std::int64_t created_ms) {
  auto order = std::make_unique<Order>();
  static constexpr char kB36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  do {
    order->id = "c";
    for (int k = 0; k < 24; ++k) order->id += kB36[rng() % 36];
  } while (venue.by_id.count(order->id));
  order->order_number = venue.next_order_number++;
  order->created_ms = created_ms;
  order->updated_ms = created_ms;

  const int type_roll = static_cast<int>(uniform(rng, 0, 9));
  const char* type = type_roll < 6 ? "delivery" : type_roll < 9 ? "pickup" : "dine_in";
  const bool delivery = type_roll < 6;
  std::string& h = order->head;
  h.reserve(512);
  h += "\"type\":\"";
  h += type;
  h += "\",";
  std::string name = pick(rng, kNames);
  std::string phone = "+49 1" + std::to_string(uniform(rng, 500000000, 799999999));
  std::string email;
  for (char c : name)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) email += static_cast<char>(c | 0x20);
  email += "@example.com";
  appendNullableString(h, "customerName", chance(rng, 8) ? nullptr : &name);
  appendNullableString(h, "customerPhone", chance(rng, 15) ? nullptr : &phone);
  appendNullableString(h, "customerEmail", chance(rng, 30) ? nullptr : &email);
  std::string address = pick(rng, kStreets);
  appendNullableString(h, "deliveryAddress", delivery ? &address : nullptr);
  std::string notes = pick(rng, kNotes);
  appendNullableString(h, "deliveryNotes", delivery && chance(rng, 60) ? &notes : nullptr);
  static constexpr std::array<const char*, 3> kPay = {"cash", "terminal", "online"};
  const std::string payment = pick(rng, kPay);
  h += "\"paymentMethod\":\"" + payment + "\",";
  std::string comment = pick(rng, kComments);
  appendNullableString(h, "comment", chance(rng, 40) ? &comment : nullptr);

  std::string items = "\"items\":[";
  std::int64_t subtotal = 0;
  const int lines = static_cast<int>(uniform(rng, 1, 4));
  for (int l = 0; l < lines; ++l) {
    const Product& p = pick(rng, kMenu);
    const std::int64_t quantity = uniform(rng, 1, 3);
    std::string modifiers = "[";
    std::int64_t unit = p.price;
    if (chance(rng, 25)) {
      const std::int64_t extra = 50 * uniform(rng, 1, 4);
      modifiers += "{\"name\":";
      appendString(modifiers, pick(rng, kModifiers));
      modifiers += ",\"price\":" + std::to_string(extra) + "}";
      unit += extra;
    }
    modifiers += "]";
    if (l) items += ',';
    items += "{\"productExternalId\":\"";
    items += p.external_id;
    items += "\",\"productName\":";
    appendString(items, p.name);
    items +=
        ",\"quantity\":" + std::to_string(quantity) + ",\"unitPrice\":" + std::to_string(unit) +
        ",\"totalPrice\":" + std::to_string(unit * quantity) + ",\"modifiers\":" + modifiers + "}";
    subtotal += unit * quantity;
  }
  items += "]";
  const std::int64_t fee = delivery ? (chance(rng, 50) ? 250 : 390) : 0;
  const std::int64_t discount = chance(rng, 20) ? subtotal / 10 : 0;
  const std::int64_t total = subtotal + fee - discount;
  h += "\"changeFromAmount\":";
  h += payment == "cash" && chance(rng, 50) ? std::to_string((total / 1000 + 1) * 1000) : "null";
  h += ",\"scheduledFor\":";
  if (chance(rng, 15)) {
    h += '"' + formatIsoMs((created_ms / 60000 + uniform(rng, 60, 180)) * 60000) + '"';
  } else {
    h += "null";
  }
  const std::size_t venue_index =
      static_cast<std::size_t>(venue.name[0] == 'v' ? std::stoi(venue.name.substr(1)) : 0);
  h += ",\"currency\":\"";
  h += kCurrencies[venue_index % kCurrencies.size()];
  h += "\",\"subtotalAmount\":" + std::to_string(subtotal) +
       ",\"deliveryFee\":" + std::to_string(fee) +
       ",\"discountAmount\":" + std::to_string(discount) +
       ",\"totalAmount\":" + std::to_string(total) + ",";
  static constexpr std::array<const char*, 3> kChannels = {"web", "app", "pos"};
  order->tail = items + ",\"channel\":\"" + pick(rng, kChannels) + "\"";
  return order;
}

void DuckHubStore::generateVenue(Venue& venue, std::uint64_t venue_seed, int count) {
  std::mt19937_64 rng(venue_seed);
  const std::int64_t begin = options_.start_ms - kHourMs;
  const std::int64_t last = options_.start_ms - 1;
  venue.orders.reserve(static_cast<std::size_t>(count));
  venue.by_id.reserve(static_cast<std::size_t>(count) * 2);
  const Order* previous = nullptr;
  for (int i = 0; i < count; ++i) {
    const std::int64_t slot = kHourMs * i / std::max(count, 1);
    auto order = makeOrder(venue, rng, begin + slot + uniform(rng, 0, kHourMs / count / 2 + 1));
    Order& o = *order;
    if (previous && chance(rng, 10)) {
      // Orders taken in the same millisecond (a POS batch): every timestamp and the status are
      // shared, so ties on createdAt and updatedAt exist in every data set.
      o.created_ms = previous->created_ms;
      o.updated_ms = previous->updated_ms;
      o.confirmed_ms = previous->confirmed_ms;
      o.completed_ms = previous->completed_ms;
      o.status = previous->status;
    } else {
      const int roll = static_cast<int>(uniform(rng, 0, 99));
      o.status = roll < 20   ? Status::kNew
                 : roll < 35 ? Status::kConfirmed
                 : roll < 50 ? Status::kPreparing
                 : roll < 60 ? Status::kDelivering
                 : roll < 90 ? Status::kCompleted
                             : Status::kCancelled;
      // The steps from creation to the current status; an order created shortly before --start
      // gets a faster kitchen rather than timestamps piled up at --start.
      enum Step { kConfirm, kOther, kComplete };
      std::vector<std::pair<Step, std::int64_t>> steps;
      auto add = [&](Step step, std::int64_t lo_s, std::int64_t hi_s) {
        steps.emplace_back(step, uniform(rng, lo_s * 1000, hi_s * 1000));
      };
      if (o.status == Status::kCancelled) {
        if (chance(rng, 50)) add(kConfirm, 30, 300);
        add(kOther, 60, 900);
      } else if (o.status != Status::kNew) {
        add(kConfirm, 30, 300);
        if (o.status != Status::kConfirmed) add(kOther, 60, 600);
        if (o.status == Status::kDelivering || o.status == Status::kCompleted)
          add(kOther, 300, 1200);
        if (o.status == Status::kCompleted) add(kComplete, 300, 1500);
      }
      std::int64_t needed = 0;
      for (const auto& step : steps) needed += step.second;
      const std::int64_t available = last - o.created_ms;
      std::int64_t budget = needed;
      if (needed > available) budget = available * uniform(rng, 30, 95) / 100;
      std::int64_t t = o.created_ms;
      for (const auto& [step, delta] : steps) {
        t += needed > 0 ? delta * budget / needed : 0;
        if (step == kConfirm) o.confirmed_ms = t;
        if (step == kComplete) o.completed_ms = t;
      }
      o.updated_ms = t;
    }
    previous = &o;
    venue.by_id.emplace(o.id, &o);
    venue.by_updated.push_back(&o);
    venue.by_created.push_back(&o);
    venue.orders.push_back(std::move(order));
  }
  std::sort(venue.by_updated.begin(), venue.by_updated.end(), updatedLess);
  std::sort(venue.by_created.begin(), venue.by_created.end(), createdLess);
}

std::vector<const Order*> DuckHubStore::matching(const Venue& venue, const OrderQuery& q) const {
  std::vector<const Order*> out;
  if (q.updated_since_us) {
    const std::int64_t from_ms = (*q.updated_since_us + 999) / 1000;  // ceil: ms >= us/1000
    Order probe;
    probe.updated_ms = from_ms;
    auto it =
        std::lower_bound(venue.by_updated.begin(), venue.by_updated.end(), &probe, updatedLess);
    for (; it != venue.by_updated.end(); ++it)
      if (matchesFilters(**it, q)) out.push_back(*it);
  } else {
    for (const Order* o : venue.by_created)
      if (matchesFilters(*o, q)) out.push_back(o);
  }
  return out;
}

std::string DuckHubStore::renderPage(const Venue& venue, const OrderQuery& q) const {
  // The common cases (a bare cursor query, or no filter at all) are a binary search and a slice;
  // anything else filters the whole list.
  const bool only_cursor = !q.status && !q.since_us && !q.until_us;
  std::size_t total = 0;
  std::vector<const Order*> filtered;
  const Order* const* base = nullptr;
  if (only_cursor && q.updated_since_us) {
    const std::int64_t from_ms = (*q.updated_since_us + 999) / 1000;
    Order probe;
    probe.updated_ms = from_ms;
    auto it =
        std::lower_bound(venue.by_updated.begin(), venue.by_updated.end(), &probe, updatedLess);
    base = venue.by_updated.data() + (it - venue.by_updated.begin());
    total = static_cast<std::size_t>(venue.by_updated.end() - it);
  } else if (only_cursor) {
    base = venue.by_created.data();
    total = venue.by_created.size();
  } else {
    filtered = matching(venue, q);
    base = filtered.data();
    total = filtered.size();
  }
  const std::uint64_t offset =
      static_cast<std::uint64_t>(q.page - 1) * static_cast<std::uint64_t>(q.limit);
  std::string out;
  out.reserve(1024 * static_cast<std::size_t>(q.limit) + 64);
  out += "{\"items\":[";
  for (std::uint64_t k = offset; k < total && k < offset + static_cast<std::uint64_t>(q.limit);
       ++k) {
    if (k != offset) out += ',';
    appendOrderJson(out, *base[k]);
  }
  out += "],\"total\":";
  appendInt(out, static_cast<std::int64_t>(total));
  out += ",\"totalPages\":";
  appendInt(out, static_cast<std::int64_t>((total + static_cast<std::size_t>(q.limit) - 1) /
                                           static_cast<std::size_t>(q.limit)));
  out += '}';
  return out;
}

std::int64_t DuckHubStore::nowMs() const {
  const std::int64_t wall = wallMs();
  return std::max(wall, options_.start_ms + (wall - launch_wall_ms_));
}

void DuckHubStore::reindexUpdated(Venue& venue, Order& order, std::int64_t new_updated_ms) {
  auto it = std::lower_bound(venue.by_updated.begin(), venue.by_updated.end(), &order, updatedLess);
  if (it != venue.by_updated.end() && *it == &order) venue.by_updated.erase(it);
  order.updated_ms = new_updated_ms;
  it = std::lower_bound(venue.by_updated.begin(), venue.by_updated.end(), &order, updatedLess);
  venue.by_updated.insert(it, &order);
}

void DuckHubStore::insertCreated(Venue& venue, Order* order) {
  auto it = std::lower_bound(venue.by_created.begin(), venue.by_created.end(), order, createdLess);
  venue.by_created.insert(it, order);
}

std::int64_t DuckHubStore::touch(Venue& venue, Order& order) {
  const std::int64_t stamp = std::max(nowMs(), order.updated_ms + 1);
  reindexUpdated(venue, order, stamp);
  ++venue.version;
  return stamp;
}

void DuckHubStore::applyTransition(Venue& venue, Order& order, Status to) {
  const std::int64_t stamp = touch(venue, order);
  order.status = to;
  if (to == Status::kConfirmed && order.confirmed_ms < 0) order.confirmed_ms = stamp;
  if (to == Status::kCompleted && order.completed_ms < 0) order.completed_ms = stamp;
}

void DuckHubStore::applyEdit(Venue& venue, Order& order) {
  // One more item line; the amounts grow by its price. The pre-rendered head ends with
  // `"subtotalAmount":s,"deliveryFee":f,"discountAmount":d,"totalAmount":t,` and the tail starts
  // with the items array.
  const Product& extra = kMenu[static_cast<std::size_t>(order.order_number) % kMenu.size()];
  auto addTo = [&](const std::string& field) {
    const std::string key = "\"" + field + "\":";
    const std::size_t at = order.head.rfind(key) + key.size();
    const std::size_t end = order.head.find(',', at);
    const std::int64_t value = std::stoll(order.head.substr(at, end - at)) + extra.price;
    order.head.replace(at, end - at, std::to_string(value));
  };
  addTo("subtotalAmount");
  addTo("totalAmount");
  std::string line = ",{\"productExternalId\":\"";
  line += extra.external_id;
  line += "\",\"productName\":";
  appendString(line, extra.name);
  line += ",\"quantity\":1,\"unitPrice\":" + std::to_string(extra.price) +
          ",\"totalPrice\":" + std::to_string(extra.price) + ",\"modifiers\":[]}";
  order.tail.insert(order.tail.find("],\"channel\":"), line);
  touch(venue, order);
}

Order& DuckHubStore::addOrder(Venue& venue) {
  auto order = makeOrder(venue, change_rng_, nowMs());
  Order* raw = order.get();
  venue.by_id.emplace(raw->id, raw);
  venue.orders.push_back(std::move(order));
  insertCreated(venue, raw);
  auto it = std::lower_bound(venue.by_updated.begin(), venue.by_updated.end(), raw, updatedLess);
  venue.by_updated.insert(it, raw);
  ++venue.version;
  return *raw;
}

void DuckHubStore::randomTransition(Venue& venue, Order& order) {
  const auto targets = legalTargets(order.status);
  if (targets.empty()) return;
  // Mostly forward progress; a cancellation now and then.
  std::vector<Status> forward;
  for (Status s : targets)
    if (s != Status::kCancelled) forward.push_back(s);
  Status to = Status::kCancelled;
  if (!forward.empty() && !chance(change_rng_, 10)) to = forward[change_rng_() % forward.size()];
  applyTransition(venue, order, to);
}

std::string DuckHubStore::randomChange(Venue& venue) {
  if (!venue.orders.empty() && !chance(change_rng_, 30)) {
    Order* target = nullptr;
    for (int attempt = 0; attempt < 64 && !target; ++attempt) {
      Order* o = venue.orders[change_rng_() % venue.orders.size()].get();
      if (!isTerminal(o->status)) target = o;
    }
    for (std::size_t k = 0; k < venue.orders.size() && !target; ++k)
      if (!isTerminal(venue.orders[k]->status)) target = venue.orders[k].get();
    if (target) {
      randomTransition(venue, *target);
      return target->id;
    }
  }
  return addOrder(venue).id;
}

}  // namespace ferry::sim::duckhub
