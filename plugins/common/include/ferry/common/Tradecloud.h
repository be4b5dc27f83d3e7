// What source_tradecloud_orders and source_tradecloud_shipments share: the account's session
// (login, refresh, re-login, Basic), its request budget, the poll page reader, the echo rules and
// the event metadata. See plugins/common/README.md ("Tradecloud").
//
// Threading: a Session belongs to one plugin instance (never called concurrently). Sessions of
// different instances for the same account (same base URL and email) share the tokens through
// the host's shared state under one scope, and take the scope's lock around login and refresh:
// a refresh token works once, so two instances refreshing with the same one would lose the
// session.
#pragma once

#include <ferry/plugin.hpp>
#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::tradecloud {

// ------------------------------------------------------------------------------------------------
// Echo rules
// ------------------------------------------------------------------------------------------------

enum class Role { kBuyer, kSupplier };

// How an integration recognises its own writes coming back:
//   kOpenRequests  a line whose status.inProgressStatus is one of the role's own open requests
//                  (buyer: OpenBuyerReopenRequest, OpenBuyerReconfirmationRequest; supplier:
//                  OpenSupplierProposal, OpenSupplierReopenRequest,
//                  OpenSupplierShipmentRescheduleRequest)
//   kInProgress    the simpler rule for integrations that never handle requests: a line whose
//                  status.processStatus is InProgress
//   kOff           nothing is an echo
enum class EchoRule { kOff, kOpenRequests, kInProgress };

// "buyer"/"supplier" and "open-requests"/"in-progress"/"off"; throws ferry::Fatal otherwise.
Role parseRole(std::string_view text);
EchoRule parseEchoRule(std::string_view text);

// The inProgressStatus values that are this role's own open requests.
const std::vector<std::string>& ownOpenRequests(Role role);

// Whether a line with these statuses is an echo line under `rule`.
bool isEchoLine(EchoRule rule, Role role, std::string_view process_status,
                std::string_view in_progress_status);

// Whether an order is an echo as a whole: every line that changed since the version of the
// order delivered before (`delivered_ms`, its lastUpdatedAt) is an echo line, and at least one
// line changed. A line changed when its lastUpdatedAt is after `delivered_ms` (or unreadable).
// Never an echo without a delivered version (an order seen for the first time, or whose earlier
// versions have not reached every sink yet): what the ERP does not have yet is never taken for
// its own write. False for kOff and for a body without lines.
bool isEchoOrder(simdjson::dom::element order, EchoRule rule, Role role,
                 std::optional<int64_t> delivered_ms);

// The positions (0-based) of the order's lines that are echo lines under `rule`, whether they
// changed or not: the metadata's "own_lines", which sinks leave out (sink_erp_csv's
// skip_echo_lines). Empty for kOff and for a body without lines.
std::vector<uint64_t> ownLines(simdjson::dom::element order, EchoRule rule, Role role);

// ------------------------------------------------------------------------------------------------
// Event metadata (ferry_item.meta)
// ------------------------------------------------------------------------------------------------

// The text of a business number at `pointer` in `doc`: a string as it is, an integer in decimal;
// "" when missing, null or anything else.
std::string numberAt(simdjson::dom::element doc, std::string_view pointer);

// {"numbers":[…],"own_lines":[…]}: `numbers` without empty and repeated ones (in order, at most
// kMaxNumbersBytes of them: the metadata stays small), "own_lines" only when there are any. ""
// when both are empty.
std::string eventMeta(const std::vector<std::string>& numbers,
                      const std::vector<uint64_t>& own_lines = {});
inline constexpr size_t kMaxNumbersBytes = 4096;

// ------------------------------------------------------------------------------------------------
// Options both sources declare (each plugin lists them in its own table)
// ------------------------------------------------------------------------------------------------

namespace option {
inline constexpr ferry_option_def kBaseUrl =
    ferry::Option("base_url")
        .defaultsTo("https://api.tradecloud1.com/v2")
        .help("API base up to and including /v2; acceptance: https://api.accp.tradecloud1.com/v2");
inline constexpr ferry_option_def kEmail =
    ferry::Option("email").required().help(
        "the Tradecloud user (with the integration role), e.g. ${system.env.TRADECLOUD_EMAIL}");
inline constexpr ferry_option_def kPassword =
    ferry::Option("password").required().secret().help(
        "the user's password, e.g. ${system.env.TRADECLOUD_PASSWORD}");
inline constexpr ferry_option_def kAuth =
    ferry::Option("auth")
        .defaultsTo("token")
        .choices("token|basic")
        .help("token: log in once, Bearer tokens, refreshed before they expire; basic: the "
              "credentials on every request (slow: about 1 s per request)");
inline constexpr ferry_option_def kCompanyId = ferry::Option("company_id").help(
    "only this company's documents (uuid); unset: every company the user may see");
inline constexpr ferry_option_def kRole =
    ferry::Option("role").defaultsTo("buyer").choices("buyer|supplier").help(
        "which side this integration is on: decides the own open requests (echo) and the "
        "company filter of shipments");
inline constexpr ferry_option_def kInterval =
    ferry::Option("interval", FERRY_OPT_DURATION)
        .defaultsTo("5m")
        .help("time between poll cycles (Tradecloud recommends about 5 minutes)");
inline constexpr ferry_option_def kStartFrom =
    ferry::Option("start_from", FERRY_OPT_INSTANT)
        .defaultsTo("now")
        .help("first cursor: documents changed at or after this instant (a date backfills)");
inline constexpr ferry_option_def kPageSize =
    ferry::Option("page_size", FERRY_OPT_INT).defaultsTo("100").help("documents per page, 1-100");
inline constexpr ferry_option_def kTimeout =
    ferry::Option("timeout", FERRY_OPT_DURATION)
        .defaultsTo("30s")
        .help("HTTP timeout per request (the server gives up after 5 s itself)");
}  // namespace option

// The page size option checked against the API's limit; throws ferry::Fatal.
uint32_t pageSizeFrom(const ferry::Options& options);
// The company_id option checked for the uuid form (36 characters, hex digits and '-'); "" when
// unset. Throws ferry::Fatal.
std::string companyIdFrom(const ferry::Options& options);

// ------------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------------

struct Account {
  std::string base_url;  // up to and including /v2, no trailing '/'
  std::string email;
  std::string password;
  bool basic = false;    // auth = basic: credentials on every request, no tokens
  int64_t timeout_ms = 0;
};

// Checks and normalises the account options (base_url scheme and trailing '/', email present);
// throws ferry::Fatal with the option's name.
Account accountFrom(const ferry::Options& options);

class Session {
 public:
  // Defines the account's request budget (10 per second, shared with every instance naming the
  // same account).
  Session(ferry::Host host, Account account);

  // POSTs `body` (JSON) to base_url + `path`, authenticated. With tokens: logs in (or refreshes)
  // first when needed, and on a 401 logs in again once and repeats the request. Returns the
  // answer, whatever its status. Throws ferry::AuthError when the login is refused,
  // ferry::Retry when the login or refresh could not be done now.
  ferry::HttpResponse post(const std::string& path, const std::string& body);

  // What a failed poll answer becomes: 401/403 stop the source (AuthError), 429/5xx/no answer
  // are transient (Retry, with Retry-After), other 4xx cannot be fixed by retrying (Fatal).
  [[noreturn]] void fail(const ferry::HttpResponse& r, const std::string& what) const;

  // `text` without the password or any token this process holds for the account: for
  // messages built from answers.
  std::string scrub(std::string text) const;

  const std::string& scope() const { return scope_; }

 private:
  ferry::HttpResponse send(const std::string& method, const std::string& url,
                           std::vector<std::pair<std::string, std::string>> headers,
                           const std::string& body) const;
  std::string basicHeader() const;
  // The current access token, logging in or refreshing first when needed. Holds the scope's
  // lock while it does.
  std::string accessToken();
  // Logs in and stores the tokens (caller holds the lock).
  void login();
  // Refreshes (caller holds the lock); false when the session must log in instead.
  bool refresh();
  void store(const ferry::HttpResponse& r);
  std::string shared(const char* key) const;

  ferry::Host host_;
  Account account_;
  std::string scope_;     // "tradecloud:<base>:<email>": the session and the rate limit
  std::string rate_key_;
};

// ------------------------------------------------------------------------------------------------
// Poll pages
// ------------------------------------------------------------------------------------------------

// Reads a poll answer ({"data": [...], ...}) and calls `item` with each element's raw JSON text,
// exactly as received, and its parsed DOM (valid during the call). Ignores every other field,
// including the response-level lastUpdatedAt (absent, null or present alike). Returns the
// number of elements. An element that is not an object, or does not parse on its own, is handed
// to `host` as unreadable (Host::setAside) and the page goes on. Throws ferry::Retry for a body
// that is not such an answer (truncated, malformed): the page is fetched again. The parsers'
// buffers are released after each page: a host runs thousands of instances, each polling now and
// then, and buffers sized for the largest page each ever read would add up to gigabytes.
class PageReader {
 public:
  uint32_t read(std::string_view body, const std::string& what, const ferry::Host& host,
                const std::function<void(std::string_view raw, simdjson::dom::element item)>& item);

 private:
  simdjson::ondemand::parser ondemand_;
  simdjson::dom::parser dom_;
  std::string body_;
  std::string item_;
};

// A JSON array of string literals.
std::string jsonStrings(const std::vector<std::string>& list);
// Checks that every value of a status filter option is a plain word ([A-Za-z0-9_]); throws
// ferry::Fatal naming the option.
void checkWords(const std::string& option, const std::vector<std::string>& values);

}  // namespace ferry::tradecloud
