#include <ferry/mapping.hpp>
#include <ferry/common/Tradecloud.h>
#include <ferry/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>

namespace ferry::tradecloud {

namespace {

// Tradecloud allows 10 requests per second per account, orders and shipments together, counted
// at its server by arrival. The host's limiter spaces grants exactly one window apart, and a
// difference in transit time then puts 11 into one server-side second: the window is declared a
// little longer than the server's (as for DuckHub), which costs about 13 % of the peak rate.
constexpr std::array<ferry_rate_rule, 1> kRateRules{{{10, 1150}}};

// Refresh at half the access token's lifetime, and never later than 9 minutes after it was
// issued (the documentation says tokens live between 10 minutes and an hour).
constexpr int64_t kRefreshCapMs = 9 * 60 * 1000;
// Lifetime assumed when the token's exp/iat cannot be read: the documented minimum.
constexpr int64_t kDefaultLifetimeMs = 10 * 60 * 1000;
// The longest lifetime believed: the documented maximum.
constexpr int64_t kMaxLifetimeMs = 60 * 60 * 1000;

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

// base64url (JWT segments, no padding); stops at the first character outside the alphabet.
std::string base64UrlDecode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-' || c == '+') v = 62;
    else if (c == '_' || c == '/') v = 63;
    else break;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// The access token's lifetime from its payload (exp - iat, in seconds), at most
// kMaxLifetimeMs; the default when the claims are unreadable, negative or exp is not after iat.
// The clamp keeps the arithmetic in range: a huge exp (99999999999999999999, or one that only
// overflows once in milliseconds) would otherwise come out negative and refresh before every poll.
int64_t lifetimeMs(std::string_view jwt) {
  const size_t a = jwt.find('.');
  const size_t b = a == std::string_view::npos ? a : jwt.find('.', a + 1);
  if (b == std::string_view::npos) return kDefaultLifetimeMs;
  std::string payload = base64UrlDecode(jwt.substr(a + 1, b - a - 1));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  double exp = 0, iat = 0;  // any JSON number, however large, without overflow
  if (parser.parse(payload).get(doc) || doc["exp"].get(exp) || doc["iat"].get(iat) || iat < 0 ||
      !(exp > iat))
    return kDefaultLifetimeMs;
  return static_cast<int64_t>(std::min((exp - iat) * 1000, double{kMaxLifetimeMs}));
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Echo rules
// ------------------------------------------------------------------------------------------------

Role parseRole(std::string_view text) {
  if (text == "buyer") return Role::kBuyer;
  if (text == "supplier") return Role::kSupplier;
  throw ferry::Fatal("role: '" + std::string(text) + "' is not buyer or supplier");
}

EchoRule parseEchoRule(std::string_view text) {
  if (text == "open-requests") return EchoRule::kOpenRequests;
  if (text == "in-progress") return EchoRule::kInProgress;
  if (text == "off") return EchoRule::kOff;
  throw ferry::Fatal("echo: '" + std::string(text) + "' is not open-requests, in-progress or off");
}

const std::vector<std::string>& ownOpenRequests(Role role) {
  static const std::vector<std::string> kBuyer{"OpenBuyerReopenRequest",
                                               "OpenBuyerReconfirmationRequest"};
  static const std::vector<std::string> kSupplier{"OpenSupplierProposal",
                                                  "OpenSupplierReopenRequest",
                                                  "OpenSupplierShipmentRescheduleRequest"};
  return role == Role::kBuyer ? kBuyer : kSupplier;
}

bool isEchoLine(EchoRule rule, Role role, std::string_view process_status,
                std::string_view in_progress_status) {
  switch (rule) {
    case EchoRule::kOff:
      return false;
    case EchoRule::kInProgress:
      return process_status == "InProgress";
    case EchoRule::kOpenRequests: {
      const auto& own = ownOpenRequests(role);
      return std::find(own.begin(), own.end(), in_progress_status) != own.end();
    }
  }
  return false;
}

bool isEchoOrder(simdjson::dom::element order, EchoRule rule, Role role,
                 std::optional<int64_t> delivered_ms) {
  // Never on first sight: what the ERP never had cannot come back to it.
  if (rule == EchoRule::kOff || !delivered_ms) return false;
  simdjson::dom::array lines;
  if (order["lines"].get(lines)) return false;
  bool any = false;
  for (simdjson::dom::element line : lines) {
    std::string_view at;
    int64_t ms = 0;
    // A line without a readable change time may have changed.
    if (!line["lastUpdatedAt"].get(at) && mapping::parseInstantMs(at, ms) && ms <= *delivered_ms)
      continue;
    any = true;
    std::string_view process, in_progress;
    if (line.at_pointer("/status/processStatus").get(process)) process = {};
    if (line.at_pointer("/status/inProgressStatus").get(in_progress)) in_progress = {};
    if (!isEchoLine(rule, role, process, in_progress)) return false;
  }
  return any;
}

std::vector<uint64_t> ownLines(simdjson::dom::element order, EchoRule rule, Role role) {
  std::vector<uint64_t> out;
  simdjson::dom::array lines;
  if (rule == EchoRule::kOff || order["lines"].get(lines)) return out;
  uint64_t position = 0;
  for (simdjson::dom::element line : lines) {
    std::string_view process, in_progress;
    if (line.at_pointer("/status/processStatus").get(process)) process = {};
    if (line.at_pointer("/status/inProgressStatus").get(in_progress)) in_progress = {};
    if (isEchoLine(rule, role, process, in_progress)) out.push_back(position);
    ++position;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Event metadata
// ------------------------------------------------------------------------------------------------

std::string numberAt(simdjson::dom::element doc, std::string_view pointer) {
  simdjson::dom::element v;
  if (doc.at_pointer(pointer).get(v)) return {};
  std::string_view text;
  if (!v.get(text)) return std::string(text);
  int64_t n = 0;
  if (!v.get(n)) return std::to_string(n);
  return {};
}

std::string eventMeta(const std::vector<std::string>& numbers,
                      const std::vector<uint64_t>& own_lines) {
  std::string list;
  std::vector<std::string_view> seen;
  for (const std::string& n : numbers) {
    if (n.empty() || std::find(seen.begin(), seen.end(), n) != seen.end()) continue;
    if (list.size() + n.size() > kMaxNumbersBytes) break;
    seen.push_back(n);
    if (!list.empty()) list += ',';
    ferry::json::appendString(list, n);
  }
  std::string out;
  if (!list.empty()) out = "\"numbers\":[" + list + "]";
  if (!own_lines.empty()) {
    out += out.empty() ? "\"own_lines\":[" : ",\"own_lines\":[";
    for (size_t i = 0; i < own_lines.size(); ++i)
      out += (i ? "," : "") + std::to_string(own_lines[i]);
    out += ']';
  }
  return out.empty() ? out : "{" + out + "}";
}

// ------------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------------

Account accountFrom(const ferry::Options& options) {
  Account a;
  a.base_url = options.string("base_url");
  while (!a.base_url.empty() && a.base_url.back() == '/') a.base_url.pop_back();
  if (a.base_url.rfind("https://", 0) != 0 && a.base_url.rfind("http://", 0) != 0)
    throw ferry::Fatal("base_url must start with https:// (http:// only for a local simulator), "
                       "e.g. https://api.tradecloud1.com/v2");
  a.email = options.string("email");
  if (a.email.empty()) throw ferry::Fatal("email: empty; the Tradecloud user's e-mail address");
  a.password = options.string("password");
  if (a.password.empty()) throw ferry::Fatal("password: empty");
  a.basic = options.string("auth", "token") == "basic";
  a.timeout_ms = options.durationMs("timeout");
  return a;
}

uint32_t pageSizeFrom(const ferry::Options& options) {
  const int64_t n = options.integer("page_size");
  if (n < 1 || n > 100)
    throw ferry::Fatal("page_size must be between 1 and 100 (Tradecloud's limit), got " +
                       std::to_string(n));
  return static_cast<uint32_t>(n);
}

std::string companyIdFrom(const ferry::Options& options) {
  const std::string id = options.string("company_id");
  if (id.empty()) return id;
  const bool uuid = id.size() == 36 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) || c == '-';
  });
  if (!uuid)
    throw ferry::Fatal("company_id: '" + id +
                       "' is not a company uuid such as 6f1c0e52-3a9b-4d7e-9f10-2b5c8d4e7a31");
  return id;
}

Session::Session(ferry::Host host, Account account)
    : host_(host),
      account_(std::move(account)),
      scope_("tradecloud:" + lower(account_.base_url) + ":" + lower(account_.email)),
      rate_key_(scope_) {
  host_.defineRateLimit(rate_key_, kRateRules);
}

std::string Session::scrub(std::string text) const {
  auto cut = [&](const std::string& secret) {
    if (secret.size() < 4) return;
    for (size_t p = text.find(secret); p != std::string::npos; p = text.find(secret, p + 3))
      text.replace(p, secret.size(), "***");
  };
  cut(account_.password);
  cut(base64(account_.email + ":" + account_.password));
  cut(shared("access"));
  cut(shared("refresh"));
  return text;
}

std::string Session::shared(const char* key) const {
  return host_.shared(scope_, key).value_or("");
}

std::string Session::basicHeader() const {
  return "Basic " + base64(account_.email + ":" + account_.password);
}

ferry::HttpResponse Session::send(const std::string& method, const std::string& url,
                                  std::vector<std::pair<std::string, std::string>> headers,
                                  const std::string& body) const {
  ferry::HttpRequest q;
  q.method = method;
  q.url = url;
  q.headers = std::move(headers);
  q.body = body;
  q.timeout_ms = account_.timeout_ms;
  q.rate_key = rate_key_;
  return host_.http(q);
}

void Session::store(const ferry::HttpResponse& r) {
  std::string access(r.header("Set-Authorization").value_or(""));
  if (access.rfind("Bearer ", 0) == 0) access.erase(0, 7);
  const std::string refresh(r.header("Set-Refresh-Token").value_or(""));
  // A glitch (a proxy's page, a cut answer) rather than a wrong base_url, which answers 404.
  if (access.empty() || refresh.empty())
    throw ferry::Retry("Tradecloud answered the authentication with HTTP " +
                       std::to_string(r.status()) +
                       " but without Set-Authorization and Set-Refresh-Token headers: is "
                       "base_url the API (…/v2)?");
  const int64_t now = steadyMs();
  const int64_t lifetime = lifetimeMs(access);
  host_.setShared(scope_, "access", access);
  host_.setShared(scope_, "refresh", refresh);
  host_.setShared(scope_, "refresh_at_ms", std::to_string(now + std::min(kRefreshCapMs, lifetime / 2)));
  host_.setShared(scope_, "expires_at_ms", std::to_string(now + lifetime));
}

void Session::login() {
  ferry::HttpResponse r = send("GET", account_.base_url + "/authentication/login",
                               {{"Authorization", basicHeader()}, {"Accept", "*/*"}}, "");
  if (r.ok()) {
    store(r);
    host_.count("tradecloud_logins_total");
    host_.info("logged in to " + account_.base_url + " as " + account_.email);
    return;
  }
  // The session is gone either way: nobody may go on with the old tokens.
  host_.setShared(scope_, "access", "");
  host_.setShared(scope_, "refresh", "");
  const std::string answer = scrub(r.describe());
  if (r.status() == 401 || r.status() == 403)
    throw ferry::AuthError("Tradecloud refused the login of " + account_.email + " at " +
                           account_.base_url + " (" + answer +
                           "): check email and password, and that the user has the "
                           "integration role");
  if (r.status() == 0 && !r.transient())
    throw ferry::Stop("login to " + account_.base_url + ": " + answer);
  if (r.status() == 0 || r.transient())
    throw ferry::Retry("login to " + account_.base_url + ": " + answer, r.retryAfterMs());
  throw ferry::Fatal("login to " + account_.base_url + ": " + answer + "; check base_url");
}

bool Session::refresh() {
  const std::string token = shared("refresh");
  if (token.empty()) return false;
  ferry::HttpResponse r = send("GET", account_.base_url + "/authentication/refresh",
                               {{"Refresh-Token", token}, {"Accept", "*/*"}}, "");
  if (r.ok()) {
    store(r);
    host_.count("tradecloud_refreshes_total");
    host_.debug("refreshed the access token");
    return true;
  }
  if (r.status() == 0) {
    // No answer: the server may have spent the token. A refresh token works once, so it is
    // never sent again; the session logs in instead.
    host_.setShared(scope_, "refresh", "");
    host_.info("refresh got no answer (" + scrub(r.describe()) + "); logging in again");
    return false;
  }
  if (r.transient()) {
    // Refused before it was looked at (429, 5xx): the token is still good. Go on with the
    // access token while it lives, and refresh at the next request.
    const std::string expires = shared("expires_at_ms");
    if (!expires.empty() && steadyMs() < std::stoll(expires)) return true;
    throw ferry::Retry("refresh of the access token: " + scrub(r.describe()), r.retryAfterMs());
  }
  host_.info("refresh refused (" + scrub(r.describe()) + "); logging in again");
  return false;
}

std::string Session::accessToken() {
  auto lock = host_.lockShared(scope_);
  if (shared("access").empty()) {
    login();
  } else {
    const std::string at = shared("refresh_at_ms");
    if (at.empty() || steadyMs() >= std::stoll(at)) {
      if (!refresh()) login();
    }
  }
  return shared("access");
}

ferry::HttpResponse Session::post(const std::string& path, const std::string& body) {
  const std::string url = account_.base_url + path;
  for (int attempt = 0;; ++attempt) {
    std::string token;
    std::string authorization;
    if (account_.basic) {
      authorization = basicHeader();
    } else {
      token = accessToken();
      authorization = "Bearer " + token;
    }
    ferry::HttpResponse r = send("POST", url,
                                 {{"Authorization", authorization},
                                  {"Content-Type", "application/json"},
                                  {"Accept", "application/json"}},
                                 body);
    if (r.status() != 401 || account_.basic || attempt > 0) return r;
    host_.info("POST " + path + " answered " + scrub(r.describe()) + "; logging in again");
    auto lock = host_.lockShared(scope_);
    // Another instance of the account may have logged in meanwhile: then its token is used.
    if (shared("access") == token) login();
  }
}

void Session::fail(const ferry::HttpResponse& r, const std::string& what) const {
  const std::string message = what + ": " + scrub(r.describe());
  if (r.status() == 401)
    throw ferry::AuthError(message + (account_.basic
                                          ? ": check email and password"
                                          : ": refused again right after a new login; check "
                                            "that the user has the integration role"));
  if (r.status() == 403)
    throw ferry::AuthError(message + ": the user may not read this (integration role, company)");
  // No answer that asking again cannot change (an untrusted certificate): the operator must act.
  if (r.status() == 0 && !r.transient()) throw ferry::Stop(message);
  if (r.status() == 0 || r.transient()) throw ferry::Retry(message, r.retryAfterMs());
  throw ferry::Fatal(message);
}

// ------------------------------------------------------------------------------------------------
// Pages
// ------------------------------------------------------------------------------------------------

uint32_t PageReader::read(
    std::string_view body, const std::string& what, const ferry::Host& host,
    const std::function<void(std::string_view raw, simdjson::dom::element item)>& item) {
  // On-Demand hands each element's raw text out untouched (the event body); the element is then
  // parsed again, cheaply, for the fields the plugin needs.
  struct Release {
    PageReader& r;
    ~Release() {
      r.ondemand_ = simdjson::ondemand::parser();
      r.dom_ = simdjson::dom::parser();
      r.body_ = std::string();
      r.item_ = std::string();
    }
  } release{*this};
  body_.assign(body);
  body_.reserve(body_.size() + simdjson::SIMDJSON_PADDING);
  auto malformed = [&](const std::string& why) {
    return ferry::Retry(what + " answered " + why + ": " + std::string(body.substr(0, 200)));
  };
  simdjson::ondemand::document doc;
  simdjson::ondemand::value data;
  if (ondemand_.iterate(body_.data(), body_.size(), body_.capacity()).get(doc) ||
      doc.find_field_unordered("data").get(data))
    throw malformed("JSON without a data field");
  bool null = false;
  if (data.is_null().get(null)) throw malformed("malformed JSON");
  if (null) return 0;
  simdjson::ondemand::array items;
  if (data.get_array().get(items)) throw malformed("a data field that is not an array");
  uint32_t received = 0;
  for (auto element : items) {
    simdjson::ondemand::value value;
    simdjson::ondemand::json_type type;
    std::string_view raw;
    if (element.get(value) || value.type().get(type))
      throw malformed("malformed JSON at item " + std::to_string(received));
    const std::string position = std::to_string(received++);
    if (type == simdjson::ondemand::json_type::object) {
      simdjson::ondemand::object object;
      if (value.get_object().get(object) || object.raw_json().get(raw))
        throw malformed("malformed JSON at item " + position);
    } else if (type == simdjson::ondemand::json_type::array) {
      simdjson::ondemand::array array;
      if (value.get_array().get(array) || array.raw_json().get(raw))
        throw malformed("malformed JSON at item " + position);
    } else {
      raw = value.raw_json_token();
    }
    raw = ferry::json::trimmed(raw);
    if (type != simdjson::ondemand::json_type::object) {
      host.setAside(raw, what + " answered an item that is not an object at position " + position);
      continue;
    }
    item_.assign(raw);
    simdjson::dom::element parsed;
    if (const auto error = dom_.parse(item_).get(parsed)) {
      host.setAside(raw, what + " answered an item that does not parse at position " + position +
                             ": " + simdjson::error_message(error));
      continue;
    }
    item(raw, parsed);
  }
  return received;
}

std::string jsonStrings(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) out += (i ? "," : "") + ferry::json::quote(list[i]);
  return out + "]";
}

void checkWords(const std::string& option, const std::vector<std::string>& values) {
  for (const auto& v : values) {
    const bool word = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!word)
      throw ferry::Fatal(option + ": '" + v +
                         "' is not a status name (letters and digits, e.g. Confirmed)");
  }
}

}  // namespace ferry::tradecloud
