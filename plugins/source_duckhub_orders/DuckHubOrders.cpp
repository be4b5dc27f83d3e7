// source_duckhub_orders: every DuckHub order change of one venue, through the host's cursor
// algorithm (updatedSince, inclusive; keyset paging by the host), with an optional confirmation
// of new orders once every sink has them.
#include <ferry/instant.hpp>
#include <ferry/json.hpp>
#include <ferry/plugin.hpp>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("base_url")
        .defaultsTo("https://api.duck-hub.com/v1")
        .help("API base URL, up to and including /v1"),
    ferry::Option("api_key")
        .required()
        .secret()
        .help("the venue's API key: dk_live_… or dk_test_… (use ${system.env.NAME})"),
    ferry::Option("interval", FERRY_OPT_DURATION)
        .defaultsTo("20s")
        .help("time between poll cycles (DuckHub recommends 15-30 s)"),
    ferry::Option("page_size", FERRY_OPT_INT).defaultsTo("100").help("orders per page, 1-100"),
    ferry::Option("start_from", FERRY_OPT_INSTANT)
        .defaultsTo("now")
        .help("first cursor: orders updated at or after this instant (backfill from a date)"),
    ferry::Option("status")
        .choices("new|confirmed|preparing|delivering|completed|cancelled")
        .help("only orders in this status (unset: every order; a filter misses later changes)"),
    ferry::Option("confirm_delivered_as")
        .choices("confirmed|preparing|delivering|completed|cancelled")
        .help("after every sink has a NEW order, move it to this status (PATCH …/status)"),
    ferry::Option("timeout", FERRY_OPT_DURATION).defaultsTo("30s").help("HTTP timeout"),
    ferry::Option("rate_limit", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("keep within DuckHub's per-IP limits (10/1 s, 50/10 s, 300/60 s), shared by every "
              "venue on this API host; off only for a local simulator"),
};

// DuckHub counts 10/1 s, 50/10 s and 300/60 s by ARRIVAL at its server; the host's limiter spaces
// GRANTS exactly that far apart. A client running at the limit then has two requests exactly one
// window apart at its end, and any difference in their transit time (a new connection, a busy
// core, the server's millisecond clock) puts both inside one window at the server: 11 in 1 s and
// a 429. Each window is therefore declared a little longer than the server's; this costs under
// 2 % of the long-run rate, which the 50/10 s window bounds anyway.
constexpr std::array<ferry_rate_rule, 3> kRateRules{{{10, 1150}, {50, 10300}, {300, 60600}}};

bool validKey(const std::string& key) {
  if (key.rfind("dk_live_", 0) != 0 && key.rfind("dk_test_", 0) != 0) return false;
  if (key.size() != 8 + 32) return false;
  for (size_t i = 8; i < key.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

std::string urlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// "scheme://host:port" of a URL: the rate limit is per client IP, so every venue polled from
// this host through the same API host shares one budget.
std::string origin(const std::string& url) {
  auto scheme_end = url.find("://");
  auto host_end = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  return url.substr(0, host_end);
}

// The API's error message ({"message": "..."}) with a validation error's reasons
// ({"errors": ["..."]}: "Validation failed" alone does not say what to fix), or the body's start
// when it is not JSON.
std::string apiMessage(const ferry::HttpResponse& r) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string body(r.body());
  if (!parser.parse(body).get(doc)) {
    std::string_view message;
    if (!doc["message"].get(message)) {
      std::string text = "HTTP " + std::to_string(r.status()) + ": " + std::string(message);
      simdjson::dom::array errors;
      if (!doc["errors"].get(errors)) {
        std::string reasons;
        for (auto e : errors) {
          std::string_view reason;
          if (e.get(reason)) continue;
          reasons += (reasons.empty() ? "" : "; ") + std::string(reason);
        }
        if (!reasons.empty()) text += " (" + reasons.substr(0, 500) + ")";
      }
      return text;
    }
  }
  return r.describe();
}

// The timestamp field a PATCH to `status` sets (the first time), besides status and updatedAt.
std::string timestampFieldOf(std::string_view status) {
  if (status == "confirmed") return "confirmedAt";
  if (status == "completed") return "completedAt";
  return "";
}

// FNV-1a, 64 bits, over `text` and a separator byte that UTF-8 JSON text never contains.
void mixInto(uint64_t& hash, std::string_view text) {
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  hash = (hash ^ 0xFFu) * 1099511628211ULL;
}

class DuckHubOrders : public ferry::Source {
 public:
  DuckHubOrders(ferry::Host host, const ferry::Options& options)
      : ferry::Source(host),
        base_url_(options.string("base_url")),
        api_key_(options.string("api_key")),
        status_(options.string("status")),
        confirm_as_(options.string("confirm_delivered_as")),
        confirm_stamp_(timestampFieldOf(confirm_as_)),
        timeout_ms_(options.durationMs("timeout")) {
    while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
    if (base_url_.rfind("http://", 0) != 0 && base_url_.rfind("https://", 0) != 0)
      throw ferry::Fatal("base_url must start with https:// (or http:// for a local simulator)");
    if (!validKey(api_key_))
      throw ferry::Fatal(
          "api_key has the wrong format: expected dk_live_ or dk_test_ followed by 32 "
          "characters (A-Z, a-z, 0-9, - and _)");
    int64_t page_size = options.integer("page_size");
    if (page_size < 1 || page_size > 100)
      throw ferry::Fatal("page_size must be between 1 and 100 (DuckHub's limit), got " +
                         std::to_string(page_size));
    if (options.boolean("rate_limit")) {
      rate_key_ = "duckhub:" + origin(base_url_);
      host.defineRateLimit(rate_key_, kRateRules);
    }
    loadEchoes();
  }

  uint32_t fetch(const ferry::FetchRequest& request) override {
    // The host pages by keyset; within one instant it pages by whole pages, so the offset is a
    // multiple of the limit. Should it not be, the first page covering it is asked for and the
    // items before the offset are skipped.
    const uint32_t page = request.offset / request.limit + 1;
    const uint32_t skip = request.offset % request.limit;
    std::string url = base_url_ + "/orders?updatedSince=" + urlEncode(request.since) +
                      "&limit=" + std::to_string(request.limit) + "&page=" + std::to_string(page);
    if (!status_.empty()) url += "&status=" + urlEncode(status_);
    ferry::HttpResponse r = call("GET", url, "");
    if (!r.ok()) fail(r, "GET /orders");

    // One pass of simdjson's On-Demand parser over the page: each item's id and updatedAt are
    // read where they stand, and the item's raw text (from its '{' to its '}') becomes the event
    // body, untouched. Its buffers are released after the page: a host runs a thousand venues,
    // and buffers sized for the largest page each ever read would add up.
    struct Release {
      DuckHubOrders& s;
      ~Release() {
        s.ondemand_ = simdjson::ondemand::parser();
        s.body_ = std::string();
      }
    } release{*this};
    body_.assign(r.body());
    body_.reserve(body_.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    simdjson::ondemand::array items;
    if (ondemand_.iterate(body_.data(), body_.size(), body_.capacity()).get(doc) ||
        doc["items"].get_array().get(items))
      throw ferry::Retry("GET /orders answered malformed JSON (no items array): " +
                         std::string(r.body().substr(0, 200)));
    uint32_t received = 0;
    for (auto element : items) {
      simdjson::ondemand::value value;
      simdjson::ondemand::json_type type;
      const char* start = nullptr;
      const char* end = nullptr;
      std::string_view id, updated_at, number;
      auto malformed = [&] {
        return ferry::Retry("GET /orders answered malformed JSON at item " +
                            std::to_string(received) + " (truncated or not JSON)");
      };
      if (element.get(value) || value.current_location().get(start) || value.type().get(type))
        throw malformed();
      // What makes an order unreadable (a value of the wrong type, no id): it is handed to the
      // host with its text, which sets it aside, and the page goes on.
      std::string unreadable;
      if (type != simdjson::ondemand::json_type::object) {
        std::string_view raw;
        simdjson::ondemand::array array;
        if (type != simdjson::ondemand::json_type::array) raw = value.raw_json_token();
        else if (value.get_array().get(array) || array.raw_json().get(raw)) throw malformed();
        if (received++ < skip) continue;
        host().setAside(ferry::json::trimmed(raw),
                        "GET /orders answered an item that is not an object at position " +
                            std::to_string(received - 1));
        continue;
      }
      simdjson::ondemand::object object;
      if (value.get_object().get(object)) throw malformed();
      // A string field: false on a broken document; a value of another type is noted.
      auto readString = [&](simdjson::ondemand::value v, std::string_view& out,
                            const char* name) {
        const auto error = v.get_string().get(out);
        if (error == simdjson::INCORRECT_TYPE) {
          if (unreadable.empty())
            unreadable = std::string(name) + " is " +
                         std::string(ferry::json::trimmed(v.raw_json_token())).substr(0, 40) +
                         ", not a string";
          return true;
        }
        return !error;
      };
      bool complete = true;
      for (auto field : object) {
        if (!complete) break;
        simdjson::ondemand::raw_json_string name;
        simdjson::ondemand::value v;
        if (field.key().get(name) || field.value().get(v)) {
          complete = false;
        } else if (name == "id") {
          complete = readString(v, id, "id");
        } else if (name == "updatedAt") {
          complete = readString(v, updated_at, "updatedAt");
        } else if (name == "orderNumber") {
          // An integer's digits as they stand; a string's text.
          if (v.get_string().get(number)) {
            number = ferry::json::trimmed(v.raw_json_token());
            if (number.empty() || number.find_first_not_of("-0123456789") != std::string_view::npos)
              number = {};
          }
        }
      }
      // The object is consumed: the parser stands on what follows it (',' or ']').
      if (!complete || doc.current_location().get(end)) throw malformed();
      while (end > start && end[-1] != '}') --end;
      const std::string_view raw(start, static_cast<size_t>(end - start));
      if (received++ < skip) continue;
      if (unreadable.empty() && (id.empty() || updated_at.empty()))
        unreadable = id.empty() ? "no id" : "no updatedAt";
      if (!unreadable.empty()) {
        host().setAside(raw, "GET /orders answered an order that cannot be read: " + unreadable);
        continue;
      }
      emitOrder(raw, id, updated_at, number);
    }
    return received > skip ? received - skip : 0;
  }

  void delivered(const ferry::Event& event) override {
    // Only NEW orders are confirmed: a change of an order we already had is not ours to move.
    if (confirm_as_.empty() || !event.previous().empty() || event.echo()) return;
    simdjson::dom::element order;
    std::string body(event.body());
    std::string_view status;
    if (dom_.parse(body).get(order) || order["status"].get(status) || status != "new") return;
    auto delivered_ns = ferry::instant::parseNs(event.version());
    if (!delivered_ns) return;  // the host compared it as an instant: cannot happen
    std::string id(event.key());
    // Remembered (durably) BEFORE the PATCH: whenever the process dies from here on, the version
    // the PATCH produces is still recognised as ours.
    echoes_[id] = Echo{*delivered_ns, std::string(event.version()), fingerprint(order)};
    saveEchoes();
    std::string url = base_url_ + "/orders/" + urlEncode(id) + "/status";
    ferry::HttpResponse r = call("PATCH", url, "{\"status\":\"" + confirm_as_ + "\"}");
    if (r.status() == 422) {
      // The order moved on (or was cancelled) meanwhile: nothing to confirm, nothing to retry.
      forgetEcho(id);
      host().warning("order " + id + " not moved to " + confirm_as_ + ": " + apiMessage(r));
      return;
    }
    if (!r.ok()) {
      // Refused for good: nothing was written. A transient failure keeps the memory for the
      // retry.
      if (r.status() != 0 && !r.transient()) forgetEcho(id);
      fail(r, "PATCH /orders/" + id + "/status");
    }
    host().count("orders_confirmed_total");
    host().info("order " + id + " moved to " + confirm_as_);
  }

  bool wantsDelivered() const override { return !confirm_as_.empty(); }

  void check() override {
    ferry::HttpResponse r = call("GET", base_url_ + "/orders?limit=1", "");
    if (!r.ok()) fail(r, "GET /orders");
  }

 private:
  ferry::HttpResponse call(const std::string& method, const std::string& url,
                           const std::string& body) {
    ferry::HttpRequest q;
    q.method = method;
    q.url = url;
    q.headers = {{"Authorization", "Bearer " + api_key_}, {"Accept", "application/json"}};
    if (!body.empty()) q.headers.emplace_back("Content-Type", "application/json");
    q.body = body;
    q.timeout_ms = timeout_ms_;
    q.rate_key = rate_key_;
    return host().http(q);
  }

  // What a failed answer becomes: 401/403 stop the source, 400 and other 4xx are errors that
  // retrying cannot fix, no answer that asking again cannot change (an untrusted certificate)
  // stops it too; the rest (429, 5xx, a timeout, a refused or dropped connection) is transient.
  [[noreturn]] static void fail(const ferry::HttpResponse& r, const std::string& what) {
    std::string message = what + ": " + (r.status() == 0 ? r.describe() : apiMessage(r));
    if (r.status() == 401 || r.status() == 403) throw ferry::AuthError(message);
    if (r.status() == 0 && !r.transient()) throw ferry::Stop(message);
    if (r.status() == 0 || r.transient()) throw ferry::Retry(message, r.retryAfterMs());
    throw ferry::Fatal(message);
  }

  void emitOrder(std::string_view raw, std::string_view id, std::string_view updated_at,
                 std::string_view number) {
    bool echo = false;
    if (!echoes_.empty()) {
      if (auto ours = echoes_.find(std::string(id)); ours != echoes_.end()) {
        auto version_ns = ferry::instant::parseNs(updated_at);
        if (version_ns && *version_ns > ours->second.delivered_ns) {
          // A later version than the one we delivered and confirmed. It is our echo only if it
          // differs from that one in nothing but what our PATCH sets.
          simdjson::dom::element order;
          std::string_view status;
          item_.assign(raw);
          echo = !dom_.parse(item_).get(order) && !order["status"].get(status) &&
                 status == confirm_as_ && fingerprint(order) == ours->second.fingerprint;
          // An echo stays remembered: this page may yet be fetched again (a crash before it
          // commits), and must then be recognised again. Anything else is a change of the
          // venue's, which every later version carries too: none of them can be our echo, so
          // the memory can go now, whatever happens to this page.
          if (!echo) forgetEcho(std::string(id));
        }
      }
    }
    metaOf(number);
    host().emit(ferry::Item{"order", id, updated_at, raw, echo, meta_});
  }

  // The event metadata: {"numbers":["<order number>"]}, the number `ferry trace` finds the order
  // by; "" without one.
  void metaOf(std::string_view number) {
    meta_.clear();
    if (number.empty()) return;
    meta_ = "{\"numbers\":[";
    ferry::json::appendString(meta_, number);
    meta_ += "]}";
  }

  // A digest of everything in an order that our PATCH does not set: every field but status,
  // updatedAt and the target status's timestamp, by name, values as minified JSON.
  uint64_t fingerprint(simdjson::dom::element order) const {
    simdjson::dom::object object;
    if (order.get(object)) return 0;
    std::vector<std::pair<std::string_view, std::string>> fields;
    for (auto field : object) {
      if (field.key == "status" || field.key == "updatedAt" || field.key == confirm_stamp_)
        continue;
      fields.emplace_back(field.key, simdjson::minify(field.value));
    }
    std::sort(fields.begin(), fields.end());  // JSON objects are unordered
    uint64_t hash = 14695981039346656037ULL;
    for (const auto& [name, value] : fields) {
      mixInto(hash, name);
      mixInto(hash, value);
    }
    return hash;
  }

  // Our own PATCHes, kept as ONE durable state value (lines "id\tdelivered version\tdigest") and
  // in memory: a backfill then costs no state lookup per order, and a restart still recognises
  // the echoes of confirmations made before it. Written before each PATCH; an entry goes when a
  // later version of the order turns out not to be ours, when the PATCH is refused, or, beyond
  // kMaxEchoes entries, oldest delivered version first.
  struct Echo {
    int64_t delivered_ns = 0;       // the version delivered (and confirmed), as an instant
    std::string delivered_version;  // the same, as received
    uint64_t fingerprint = 0;       // fingerprint() of that version
  };

  void loadEchoes() {
    auto text = host().state("echoes");
    if (!text) return;
    size_t start = 0;
    while (start < text->size()) {
      size_t end = text->find('\n', start);
      if (end == std::string::npos) end = text->size();
      const std::string line = text->substr(start, end - start);
      start = end + 1;
      // Lines of an older format ("id\tversion of our PATCH") are dropped: such an echo, if it
      // is still to come, arrives once as a change.
      size_t tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
      if (tab1 == std::string::npos || tab2 == std::string::npos) continue;
      Echo e;
      e.delivered_version = line.substr(tab1 + 1, tab2 - tab1 - 1);
      auto ns = ferry::instant::parseNs(e.delivered_version);
      char* parsed_to = nullptr;
      e.fingerprint = std::strtoull(line.c_str() + tab2 + 1, &parsed_to, 16);
      if (!ns || parsed_to != line.c_str() + line.size()) continue;
      e.delivered_ns = *ns;
      echoes_[line.substr(0, tab1)] = std::move(e);
    }
  }

  void forgetEcho(const std::string& id) {
    if (echoes_.erase(id) > 0) saveEchoes();
  }

  void saveEchoes() {
    while (echoes_.size() > kMaxEchoes) {
      auto oldest =
          std::min_element(echoes_.begin(), echoes_.end(), [](const auto& a, const auto& b) {
            return a.second.delivered_ns < b.second.delivered_ns;
          });
      echoes_.erase(oldest);
    }
    std::string text;
    text.reserve(echoes_.size() * 72);
    char digest[17];
    for (const auto& [id, e] : echoes_) {
      std::snprintf(digest, sizeof digest, "%016llx",
                    static_cast<unsigned long long>(e.fingerprint));
      text += id + '\t' + e.delivered_version + '\t' + digest + '\n';
    }
    host().setState("echoes", text);
  }

  static constexpr size_t kMaxEchoes = 10000;

  std::string base_url_;
  std::string api_key_;
  std::string status_;
  std::string confirm_as_;
  std::string confirm_stamp_;  // the timestamp field our PATCH sets: confirmedAt, completedAt, ""
  int64_t timeout_ms_;
  std::string rate_key_;
  simdjson::ondemand::parser ondemand_;
  simdjson::dom::parser dom_;
  std::string body_;
  std::string item_;
  std::string meta_;  // the metadata of the item being emitted
  std::map<std::string, Echo> echoes_;  // order id -> the version we confirmed
};

}  // namespace

FERRY_SOURCE_PLUGIN(DuckHubOrders, "source_duckhub_orders", "1.0.0",
                    "DuckHub orders of one venue (GET /v1/orders?updatedSince=…)", kOptions)
