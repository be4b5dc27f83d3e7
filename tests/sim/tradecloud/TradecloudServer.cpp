#include "TradecloudServer.h"

#include <Poco/Base64Decoder.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace ferry::sim::tradecloud {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr int kMaxLimit = 100;

std::int64_t steadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::int64_t wallMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(TradecloudServer* server) : server_(server) {}
  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    server_->handle(request, response);
  }

 private:
  TradecloudServer* server_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(TradecloudServer* server) : server_(server) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
    return new Handler(server_);
  }

 private:
  TradecloudServer* server_;
};

std::string base64Url(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

// A request-body error: the message goes back with a 400.
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Object::Ptr parseObjectBody(const std::string& body, bool empty_ok) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (empty_ok) return new Object;
    throw BadRequest("the request body must be a JSON object");
  }
  Poco::Dynamic::Var parsed;
  try {
    Poco::JSON::Parser parser;
    parsed = parser.parse(body);
  } catch (const std::exception& e) {
    throw BadRequest(std::string("malformed JSON: ") + e.what());
  }
  if (parsed.type() != typeid(Object::Ptr))
    throw BadRequest("the request body must be a JSON object");
  return parsed.extract<Object::Ptr>();
}

void rejectUnknown(const Object::Ptr& object, const std::set<std::string>& allowed,
                   const std::string& where) {
  for (const auto& [name, value] : *object) {
    if (!allowed.count(name)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw BadRequest("unknown field '" + where + name + "' (allowed: " + list + ")");
    }
  }
}

Object::Ptr objectField(const Object::Ptr& object, const std::string& name,
                        const std::string& where) {
  const auto v = object->get(name);
  if (v.isEmpty()) return nullptr;
  if (v.type() != typeid(Object::Ptr)) throw BadRequest("'" + where + name + "' must be an object");
  return v.extract<Object::Ptr>();
}

std::vector<std::string> stringList(const Object::Ptr& object, const std::string& name,
                                    const std::string& where, bool single_allowed) {
  std::vector<std::string> out;
  const auto v = object->get(name);
  if (v.isEmpty()) return out;
  if (single_allowed && v.isString()) {
    out.push_back(v.extract<std::string>());
    return out;
  }
  if (v.type() != typeid(Array::Ptr)) {
    throw BadRequest("'" + where + name + "' must be an array of strings");
  }
  for (const auto& item : *v.extract<Array::Ptr>()) {
    if (!item.isString()) throw BadRequest("'" + where + name + "' must be an array of strings");
    out.push_back(item.extract<std::string>());
  }
  return out;
}

std::optional<std::int64_t> integerField(const Object::Ptr& object, const std::string& name) {
  const auto v = object->get(name);
  if (v.isEmpty()) return std::nullopt;
  if (!v.isInteger()) throw BadRequest("'" + name + "' must be an integer");
  return v.convert<std::int64_t>();
}

std::optional<std::int64_t> afterField(const Object::Ptr& filters) {
  const auto v = filters->get("lastUpdatedAfter");
  if (v.isEmpty()) return std::nullopt;
  if (!v.isString()) throw BadRequest("'filters.lastUpdatedAfter' must be a string");
  auto us = parseIsoUs(v.extract<std::string>());
  if (!us) {
    throw BadRequest(
        "'filters.lastUpdatedAfter' must be an ISO 8601 date-time with a zone, e.g. "
        "2025-04-23T10:01:53.812Z");
  }
  return us;
}

std::string windowName(Window w) { return w == Window::kExclusive ? "exclusive" : "inclusive"; }
std::string emptyName(EmptyLastUpdated e) {
  return e == EmptyLastUpdated::kAbsent ? "absent"
         : e == EmptyLastUpdated::kNull ? "null"
                                        : "present";
}

}  // namespace

std::optional<std::int64_t> parseDurationMs(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double factor;
  if (unit.empty() || unit == "s") {
    factor = 1000;
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "m") {
    factor = 60000;
  } else if (unit == "h") {
    factor = 3600000;
  } else {
    return std::nullopt;
  }
  if (value < 0) return std::nullopt;
  return static_cast<std::int64_t>(value * factor);
}

TradecloudServer::TradecloudServer(const ServerOptions& options)
    : options_(options),
      store_(options.store),
      token_rng_(std::random_device{}() ^ static_cast<std::uint64_t>(wallMs())),
      live_rate_(options.live_rate) {}

TradecloudServer::~TradecloudServer() { stop(); }

void TradecloudServer::start() {
  Poco::Net::ServerSocket socket;
  socket.bind(Poco::Net::SocketAddress("127.0.0.1", options_.port), true);
  socket.listen(256);
  port_ = socket.address().port();
  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);  // unlimited
  params->setKeepAliveTimeout(Poco::Timespan(15, 0));
  params->setTimeout(Poco::Timespan(30, 0));
  params->setMaxThreads(options_.max_threads);
  params->setMaxQueued(256);
  pool_ = std::make_unique<Poco::ThreadPool>(2, options_.max_threads);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), *pool_, socket, params);
  server_->start();
  live_thread_ = std::thread([this] { liveLoop(); });
}

void TradecloudServer::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (live_thread_.joinable()) live_thread_.join();
  if (server_) {
    server_->stopAll(true);
    pool_->joinAll();
  }
  server_.reset();
  pool_.reset();
}

void TradecloudServer::handle(HTTPServerRequest& request, HTTPServerResponse& response) {
  try {
    // Read the whole body first: an unread body would corrupt the next request on a keep-alive
    // connection.
    std::string body;
    Poco::StreamCopier::copyToString(request.stream(), body);
    const std::string& uri = request.getURI();
    if (uri.rfind("/_sim/", 0) == 0) {
      handleControl(request, response, body);
    } else {
      handleApi(request, response, body);
    }
    if (options_.log_requests) {
      std::cerr << request.getMethod() << ' ' << uri << " -> " << response.getStatus() << '\n';
    }
  } catch (const std::exception& e) {
    if (!response.sent()) {
      try {
        sendText(response, 500, "Internal Server Error");
      } catch (...) {
      }
    }
    if (options_.log_requests) std::cerr << "error: " << e.what() << '\n';
  }
}

void TradecloudServer::send(HTTPServerResponse& response, int status, const std::string& body,
                            const std::string& content_type, bool count) {
  if (count) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++by_status_[status];
  }
  response.setStatusAndReason(static_cast<HTTPResponse::HTTPStatus>(status));
  response.setContentType(content_type);
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.sendBuffer(body.data(), body.size());
}

void TradecloudServer::sendText(HTTPServerResponse& response, int status, const std::string& text) {
  send(response, status, text, "text/plain; charset=utf-8");
}

bool TradecloudServer::sleepInterruptibly(int delay_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, std::chrono::milliseconds(delay_ms), [this] { return stopping_; });
}

bool TradecloudServer::checkBasic(const std::string& header) const {
  if (header.rfind("Basic ", 0) != 0) return false;
  std::string decoded;
  try {
    std::istringstream in(header.substr(6));
    Poco::Base64Decoder decoder(in);
    Poco::StreamCopier::copyToString(decoder, decoded);
  } catch (const std::exception&) {
    return false;
  }
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  return accountIndex(decoded.substr(0, colon)).has_value() &&
         decoded.substr(colon + 1) == options_.password;
}

std::optional<int> TradecloudServer::accountIndex(const std::string& email) const {
  if (email == options_.email) return 0;
  const int accounts = options_.store.accounts;
  const auto at = options_.email.find('@');
  if (accounts <= 1 || at == std::string::npos) return std::nullopt;
  const std::string prefix = options_.email.substr(0, at) + "+", domain = options_.email.substr(at);
  if (email.size() <= prefix.size() + domain.size() || email.rfind(prefix, 0) != 0 ||
      email.compare(email.size() - domain.size(), domain.size(), domain) != 0)
    return std::nullopt;
  const std::string digits =
      email.substr(prefix.size(), email.size() - prefix.size() - domain.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const int n = std::stoi(digits);
  if (n < 1 || n > accounts) return std::nullopt;
  return n;
}

std::string TradecloudServer::claimedAccount(const HTTPServerRequest& request) {
  const std::string auth = request.get("Authorization", "");
  if (auth.rfind("Bearer ", 0) == 0) {
    auto it = access_tokens_.find(auth.substr(7));
    if (it != access_tokens_.end()) return it->second.account;
  } else if (auth.rfind("Basic ", 0) == 0) {
    std::string decoded;
    try {
      std::istringstream in(auth.substr(6));
      Poco::Base64Decoder decoder(in);
      Poco::StreamCopier::copyToString(decoder, decoded);
    } catch (const std::exception&) {
    }
    if (auto colon = decoded.find(':'); colon != std::string::npos && colon > 0) {
      return decoded.substr(0, colon);
    }
  }
  if (request.has("Refresh-Token")) {
    auto it = refresh_tokens_.find(request.get("Refresh-Token"));
    if (it != refresh_tokens_.end()) return it->second.account;
  }
  return "anonymous";
}

std::string TradecloudServer::randomToken(std::size_t bytes) {
  std::string raw;
  while (raw.size() < bytes) {
    const std::uint64_t r = token_rng_();
    for (int i = 0; i < 8 && raw.size() < bytes; ++i) raw += static_cast<char>(r >> (8 * i));
  }
  return base64Url(raw);
}

void TradecloudServer::issueTokens(HTTPServerResponse& response, const std::string& account,
                                   std::uint64_t session_id) {
  const std::int64_t now_s = wallMs() / 1000;
  std::string payload = "{\"sub\":";
  appendString(payload, account);
  payload += ",\"companyId\":\"" + options_.store.company_id + "\",\"roles\":[\"integration\"]" +
             ",\"iat\":" + std::to_string(now_s) +
             ",\"exp\":" +
             (options_.access_exp.empty()
                  ? std::to_string(now_s + (options_.access_ttl_ms + 999) / 1000)
                  : options_.access_exp) +
             ",\"jti\":\"" + randomToken(9) + "\"}";
  const std::string access = base64Url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." +
                             base64Url(payload) + "." + randomToken(32);
  const std::string refresh = randomToken(32);
  access_tokens_[access] = {account, steadyMs() + options_.access_ttl_ms, session_id};
  refresh_tokens_[refresh] = {account, session_id, false};
  response.set("Set-Authorization", access);
  response.set("Set-Refresh-Token", refresh);
}

void TradecloudServer::handleApi(HTTPServerRequest& request, HTTPServerResponse& response,
                                 const std::string& body) {
  const std::string path = Poco::URI(request.getURI()).getPath();
  const std::string& method = request.getMethod();
  std::optional<Fault> fault;
  bool limited = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string account = claimedAccount(request);
    const std::int64_t now = steadyMs();
    ++total_;
    // The busiest 1 s window ends at some arrival, so checking at every arrival finds it.
    auto& arrivals = arrivals_[account];
    arrivals.push_back(now);
    while (arrivals.front() <= now - 1000) arrivals.pop_front();
    auto& max = max_per_second_[account];
    max = std::max<std::uint64_t>(max, arrivals.size());
    if (!faults_.empty()) {
      fault = faults_.front();
      if (--faults_.front().remaining <= 0) faults_.pop_front();
      ++faults_injected_;
    } else if (options_.rate_limit > 0) {
      // Only admitted requests fill the window: a client that backs off gets through again
      // within a second.
      auto& admitted = admitted_[account];
      while (!admitted.empty() && admitted.front() <= now - 1000) admitted.pop_front();
      if (admitted.size() >= static_cast<std::size_t>(options_.rate_limit)) {
        limited = true;
        ++rate_limited_;
      } else {
        admitted.push_back(now);
      }
    }
  }
  if (fault) {
    switch (fault->kind) {
      case FaultKind::k429:
        sendText(response, 429, "Too Many Requests");
        return;
      case FaultKind::k429RetryAfter:
        response.set("Retry-After", "1");
        sendText(response, 429, "Too Many Requests");
        return;
      case FaultKind::k500:
        sendText(response, 500, "Internal Server Error");
        return;
      case FaultKind::k502:
        sendText(response, 502, "Bad Gateway");
        return;
      case FaultKind::k503:
        sendText(response, 503, "Service Unavailable");
        return;
      case FaultKind::k401:
        sendText(response, 401, "The supplied authentication is not authorized");
        return;
      case FaultKind::kDrop: {
        // Nothing sent and no keep-alive: Poco closes the socket when the handler returns.
        response.setKeepAlive(false);
        std::lock_guard<std::mutex> lock(mutex_);
        ++dropped_;
        return;
      }
      case FaultKind::kMalformed:
        send(response, 200, "{\"data\":[{\"id\":\"x\",\"version\":1,]],\"total\":");
        return;
      case FaultKind::kTruncated: {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          ++by_status_[200];
        }
        std::string full = "{\"data\":[";
        {
          std::lock_guard<std::mutex> lock(mutex_);
          const auto orders = store_.matchOrders({}, Window::kInclusive);
          for (std::size_t i = 0; i < orders.size() && i < 20; ++i) {
            if (i) full += ',';
            store_.appendOrder(full, *orders[i], false);
          }
        }
        full += "],\"total\":20}";
        response.setKeepAlive(false);
        response.setStatusAndReason(HTTPResponse::HTTP_OK);
        response.setContentType("application/json; charset=utf-8");
        response.setContentLength(static_cast<std::streamsize>(full.size()));
        std::ostream& out = response.send();
        out.write(full.data(), static_cast<std::streamsize>(full.size() / 2));
        out.flush();
        return;
      }
      case FaultKind::kSlow:
        if (!sleepInterruptibly(fault->delay_ms)) return;
        break;  // then answer normally
    }
  }
  if (limited) {
    response.set("Retry-After", "1");
    sendText(response, 429, "Too Many Requests");
    return;
  }

  auto is = [&](const char* p, const char* m) -> int {
    if (path != p) return 0;
    return method == m ? 1 : -1;
  };
  int r;
  if ((r = is("/v2/authentication/login", "GET")) == 1) {
    login(request, response);
  } else if (r == 0 && (r = is("/v2/authentication/refresh", "GET")) == 1) {
    refresh(request, response);
  } else if (r == 0 && (r = is("/v2/authentication/logout", "POST")) == 1) {
    logout(request, response);
  } else if (r == 0 && (r = is("/v2/order-search/poll", "POST")) == 1) {
    poll(Endpoint::kOrders, request, response, body);
  } else if (r == 0 && (r = is("/v2/order-search/poll/single-delivery", "POST")) == 1) {
    poll(Endpoint::kOrdersSingleDelivery, request, response, body);
  } else if (r == 0 && (r = is("/v2/shipment/poll", "POST")) == 1) {
    poll(Endpoint::kShipments, request, response, body);
  } else {
    sendText(response, r == -1 ? 405 : 404, r == -1 ? "Method Not Allowed" : "Not Found");
  }
}

void TradecloudServer::login(HTTPServerRequest& request, HTTPServerResponse& response) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (checkBasic(request.get("Authorization", ""))) {
      ++logins_;
      issueTokens(response, claimedAccount(request), next_session_++);
    } else {
      ++login_failures_;
    }
  }
  if (response.has("Set-Authorization")) {
    send(response, 200, "", "text/plain; charset=utf-8");
  } else {
    sendText(response, 401, "Invalid email or password");
  }
}

void TradecloudServer::refresh(HTTPServerRequest& request, HTTPServerResponse& response) {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = refresh_tokens_.find(request.get("Refresh-Token", ""));
    if (it == refresh_tokens_.end()) {
      error = "Invalid refresh token";
    } else if (it->second.used) {
      // Rotation: each refresh token works once; a replayed one is refused.
      ++refresh_reuse_rejected_;
      error = "Refresh token already used";
    } else {
      it->second.used = true;
      ++refreshes_;
      const RefreshToken old = it->second;
      issueTokens(response, old.account, old.session_id);
    }
  }
  if (error.empty()) {
    send(response, 200, "", "text/plain; charset=utf-8");
  } else {
    sendText(response, 401, error);
  }
}

void TradecloudServer::logout(HTTPServerRequest& request, HTTPServerResponse& response) {
  bool ok = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = refresh_tokens_.find(request.get("Refresh-Token", ""));
    if (it != refresh_tokens_.end() && !it->second.used) {
      // The token is forgotten rather than spent: using it afterwards is an invalid token, not a
      // replay.
      const std::uint64_t session = it->second.session_id;
      refresh_tokens_.erase(it);
      std::erase_if(access_tokens_,
                    [&](const auto& entry) { return entry.second.session_id == session; });
      ++logouts_;
      ok = true;
    }
  }
  if (ok) {
    send(response, 200, "", "text/plain; charset=utf-8");
  } else {
    sendText(response, 401, "Invalid refresh token");
  }
}

void TradecloudServer::poll(Endpoint endpoint, HTTPServerRequest& request,
                            HTTPServerResponse& response, const std::string& body) {
  const std::string auth = request.get("Authorization", "");
  std::string account;  // the email it polls as
  if (auth.rfind("Bearer ", 0) == 0) {
    std::string error;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = access_tokens_.find(auth.substr(7));
      if (it == access_tokens_.end()) {
        error = "Invalid access token";
      } else if (steadyMs() >= it->second.expires_steady_ms) {
        error = "Access token expired";
      } else {
        ++bearer_polls_;
        account = it->second.account;
      }
    }
    if (!error.empty()) {
      sendText(response, 401, error);
      return;
    }
  } else if (auth.rfind("Basic ", 0) == 0) {
    if (!checkBasic(auth)) {
      sendText(response, 401, "Invalid email or password");
      return;
    }
    int delay_ms;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++basic_polls_;
      delay_ms = options_.basic_delay_ms;
      account = claimedAccount(request);
    }
    // Basic auth checks the password on every request: slow on the real platform.
    if (delay_ms > 0 && !sleepInterruptibly(delay_ms)) return;
  } else {
    sendText(response, 401, "Authentication required");
    return;
  }

  OrderFilter order_filter;
  ShipmentFilter shipment_filter;
  order_filter.account = shipment_filter.account = accountIndex(account).value_or(0);
  std::int64_t offset = 0, limit = kMaxLimit;
  bool clamp;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    clamp = options_.clamp_limit;
  }
  try {
    const Object::Ptr root = parseObjectBody(body, false);
    rejectUnknown(root, {"filters", "offset", "limit"}, "");
    if (auto v = integerField(root, "offset")) {
      if (*v < 0) throw BadRequest("'offset' must not be negative");
      offset = *v;
    }
    if (auto v = integerField(root, "limit")) {
      if (*v < 1) throw BadRequest("'limit' must be at least 1");
      if (*v > kMaxLimit && !clamp) throw BadRequest("'limit' must be at most 100");
      limit = std::min<std::int64_t>(*v, kMaxLimit);
    }
    if (const Object::Ptr filters = objectField(root, "filters", "")) {
      if (endpoint == Endpoint::kShipments) {
        rejectUnknown(filters, {"lastUpdatedAfter", "buyerShipment", "status"}, "filters.");
        shipment_filter.after_us = afterField(filters);
        if (auto buyer = objectField(filters, "buyerShipment", "filters.")) {
          rejectUnknown(buyer, {"companyId"}, "filters.buyerShipment.");
          shipment_filter.buyer_company_ids =
              stringList(buyer, "companyId", "filters.buyerShipment.", true);
        }
        if (auto status = objectField(filters, "status", "filters.")) {
          rejectUnknown(status, {"processStatus"}, "filters.status.");
          shipment_filter.process = stringList(status, "processStatus", "filters.status.", false);
        }
      } else {
        rejectUnknown(filters, {"lastUpdatedAfter", "companyId", "status"}, "filters.");
        order_filter.after_us = afterField(filters);
        order_filter.company_ids = stringList(filters, "companyId", "filters.", true);
        if (auto status = objectField(filters, "status", "filters.")) {
          const std::string where = "filters.status.";
          rejectUnknown(
              status,
              {"processStatus", "inProgressStatus", "logisticsStatus", "deliveryLineStatus"},
              where);
          order_filter.process = stringList(status, "processStatus", where, false);
          order_filter.in_progress = stringList(status, "inProgressStatus", where, false);
          order_filter.logistics = stringList(status, "logisticsStatus", where, false);
          order_filter.delivery_line = stringList(status, "deliveryLineStatus", where, false);
        }
      }
    }
  } catch (const BadRequest& e) {
    std::string error = "{\"code\":\"BadRequest\",\"message\":";
    appendString(error, e.what());
    send(response, 400, error + "}");
    return;
  }

  std::string out = "{\"data\":[";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> ids;  // the whole result in order, for change-while-paging
    std::int64_t total = 0, newest_ms = -1;
    if (endpoint == Endpoint::kShipments) {
      const auto all = store_.matchShipments(shipment_filter, options_.window);
      total = static_cast<std::int64_t>(all.size());
      for (std::int64_t i = offset; i < total && i < offset + limit; ++i) {
        if (i > offset) out += ',';
        store_.appendShipment(out, *all[i]);
        newest_ms = all[i]->updated_ms;
      }
      if (paging_change_)
        for (auto* s : all) ids.push_back(s->id);
    } else {
      const auto all = store_.matchOrders(order_filter, options_.window);
      total = static_cast<std::int64_t>(all.size());
      for (std::int64_t i = offset; i < total && i < offset + limit; ++i) {
        if (i > offset) out += ',';
        store_.appendOrder(out, *all[i], endpoint == Endpoint::kOrdersSingleDelivery);
        newest_ms = all[i]->updated_ms;
      }
      if (paging_change_)
        for (auto* o : all) ids.push_back(o->id);
    }
    out += "],\"total\":" + std::to_string(total);
    const auto& after_us =
        endpoint == Endpoint::kShipments ? shipment_filter.after_us : order_filter.after_us;
    if (newest_ms >= 0) {
      out += ",\"lastUpdatedAt\":\"" + formatIsoMs(newest_ms) + "\"";
    } else if (options_.empty_last_updated == EmptyLastUpdated::kNull) {
      out += ",\"lastUpdatedAt\":null";
    } else if (options_.empty_last_updated == EmptyLastUpdated::kPresent) {
      // The request's own lastUpdatedAfter: a client that stores it blindly stays put.
      const std::int64_t us = after_us.value_or(0);
      out += ",\"lastUpdatedAt\":\"" + formatIsoMs(us >= 0 ? us / 1000 : (us - 999) / 1000) + "\"";
    }
    out += '}';
    if (paging_change_ && --paging_change_->remaining_requests <= 0) {
      firePagingChange(endpoint, ids, offset + limit, offset);
    }
  }
  send(response, 200, out);
}

void TradecloudServer::firePagingChange(Endpoint endpoint, const std::vector<std::string>& ids,
                                        std::int64_t page_end, std::int64_t page_start) {
  const PagingChange change = *paging_change_;
  paging_change_.reset();
  paging_fired_ = true;
  // Later pages: the changed items leave their place for the end of the result, which a client
  // that keeps its lastUpdatedAfter and moves its offset still reaches. Served pages: everything
  // behind the changed items slides back by one and one item per change slides into the range
  // already read: a naive offset loop misses it.
  std::int64_t from = change.later ? page_end : page_start;
  std::int64_t to = change.later ? static_cast<std::int64_t>(ids.size()) : page_end;
  to = std::min<std::int64_t>(to, static_cast<std::int64_t>(ids.size()));
  std::vector<std::string> targets;
  // The requests of `change` apply to orders of the buyer company only; an order that cannot
  // take one (no open line, nothing to settle) is passed over for the next.
  int changed = 0;
  for (std::int64_t i = from; i < to && changed < change.count; ++i) {
    const std::string& id = ids[static_cast<std::size_t>(i)];
    if (endpoint == Endpoint::kShipments) {
      if (auto* s = store_.shipmentById(id)) store_.changeShipment(*s);
    } else if (auto* o = store_.orderById(id)) {
      if (change.change == "any") {
        store_.changeOrder(*o);
      } else if (o->buyer_company_id != store_.options().company_id) {
        continue;
      } else if (change.change == "echo" ? store_.echo(*o, "buyer", 1).empty()
                 : change.change == "supplier-then-echo"
                     ? store_.supplierChangeThenEcho(*o, "buyer").empty()
                     : store_.settle(*o).empty()) {
        continue;
      }
    }
    paging_changed_ids_.push_back(id);
    ++changes_applied_;
    ++changed;
  }
}

void TradecloudServer::liveLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (live_rate_ <= 0) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    const auto interval = std::chrono::microseconds(static_cast<std::int64_t>(1e6 / live_rate_));
    if (wake_.wait_for(lock, interval, [this] { return stopping_; })) break;
    if (live_rate_ > 0) {
      store_.randomChange("any");
      ++changes_applied_;
    }
  }
}

void TradecloudServer::handleControl(HTTPServerRequest& request, HTTPServerResponse& response,
                                     const std::string& body) {
  const std::string path = Poco::URI(request.getURI()).getPath();
  const std::string& method = request.getMethod();
  auto reply = [&](int status, const std::string& json) {
    send(response, status, json, "application/json; charset=utf-8", false);
  };
  auto fail = [&](int status, const std::string& message) {
    std::string json = "{\"error\":";
    appendString(json, message);
    reply(status, json + "}");
  };
  try {
    if (method == "GET" && path == "/_sim/state") {
      std::string json;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        json = store_.stateJson();
      }
      reply(200, json);
      return;
    }
    if (method == "GET" && path == "/_sim/requests") {
      std::string json;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        json = "{\"total\":" + std::to_string(total_) + ",\"by_status\":{";
        bool first = true;
        for (const auto& [status, n] : by_status_) {
          json += (first ? "\"" : ",\"") + std::to_string(status) + "\":" + std::to_string(n);
          first = false;
        }
        json += "},\"max_per_second\":{";
        first = true;
        for (const auto& [account, n] : max_per_second_) {
          if (!first) json += ',';
          first = false;
          appendString(json, account);
          json += ':' + std::to_string(n);
        }
        json += "},\"rate_limited\":" + std::to_string(rate_limited_) +
                ",\"logins\":" + std::to_string(logins_) +
                ",\"login_failures\":" + std::to_string(login_failures_) +
                ",\"refreshes\":" + std::to_string(refreshes_) +
                ",\"refresh_reuse_rejected\":" + std::to_string(refresh_reuse_rejected_) +
                ",\"logouts\":" + std::to_string(logouts_) +
                ",\"basic_polls\":" + std::to_string(basic_polls_) +
                ",\"bearer_polls\":" + std::to_string(bearer_polls_) +
                ",\"dropped\":" + std::to_string(dropped_) +
                ",\"faults_injected\":" + std::to_string(faults_injected_) +
                ",\"faults_pending\":" + std::to_string(faults_.size()) +
                ",\"changes_applied\":" + std::to_string(changes_applied_) +
                ",\"change_while_paging\":{\"armed\":" + (paging_change_ ? "true" : "false") +
                ",\"fired\":" + (paging_fired_ ? "true" : "false") + ",\"changed\":[";
        for (std::size_t i = 0; i < paging_changed_ids_.size(); ++i) {
          if (i) json += ',';
          appendString(json, paging_changed_ids_[i]);
        }
        json += "]}}";
      }
      reply(200, json);
      return;
    }
    if (method == "POST" && path == "/_sim/reset-stats") {
      std::lock_guard<std::mutex> lock(mutex_);
      total_ = dropped_ = faults_injected_ = rate_limited_ = 0;
      logins_ = login_failures_ = refreshes_ = refresh_reuse_rejected_ = 0;
      logouts_ = basic_polls_ = bearer_polls_ = changes_applied_ = 0;
      by_status_.clear();
      arrivals_.clear();
      max_per_second_.clear();
      reply(200, "{\"ok\":true}");
      return;
    }
    const bool is_post = method == "POST";
    if (!is_post && method != "GET") {
      fail(405, "method not allowed");
      return;
    }
    if (path == "/_sim/config") {
      const Object::Ptr in = is_post ? parseObjectBody(body, true) : Object::Ptr(new Object);
      rejectUnknown(in,
                    {"window", "empty_last_updated", "access_ttl_ms", "access_exp", "rate_limit",
                     "limit_over_100", "basic_delay_ms", "live_rate"},
                    "");
      std::lock_guard<std::mutex> lock(mutex_);
      ServerOptions next = options_;
      double live = live_rate_;
      if (in->has("window")) {
        const auto w = in->getValue<std::string>("window");
        if (w != "exclusive" && w != "inclusive") throw BadRequest("window: exclusive|inclusive");
        next.window = w == "exclusive" ? Window::kExclusive : Window::kInclusive;
      }
      if (in->has("empty_last_updated")) {
        const auto e = in->getValue<std::string>("empty_last_updated");
        if (e == "absent") {
          next.empty_last_updated = EmptyLastUpdated::kAbsent;
        } else if (e == "null") {
          next.empty_last_updated = EmptyLastUpdated::kNull;
        } else if (e == "present") {
          next.empty_last_updated = EmptyLastUpdated::kPresent;
        } else {
          throw BadRequest("empty_last_updated: absent|null|present");
        }
      }
      if (in->has("limit_over_100")) {
        const auto l = in->getValue<std::string>("limit_over_100");
        if (l != "reject" && l != "clamp") throw BadRequest("limit_over_100: reject|clamp");
        next.clamp_limit = l == "clamp";
      }
      if (auto v = integerField(in, "access_ttl_ms")) {
        if (*v < 1) throw BadRequest("access_ttl_ms must be positive");
        next.access_ttl_ms = *v;
      }
      if (in->has("access_exp")) {
        const auto e = in->getValue<std::string>("access_exp");
        if (e.find_first_not_of("0123456789") != std::string::npos)
          throw BadRequest("access_exp: digits, or \"\" for iat + access_ttl_ms");
        next.access_exp = e;
      }
      if (auto v = integerField(in, "rate_limit")) {
        if (*v < 0) throw BadRequest("rate_limit must not be negative");
        next.rate_limit = static_cast<int>(*v);
      }
      if (auto v = integerField(in, "basic_delay_ms")) {
        if (*v < 0) throw BadRequest("basic_delay_ms must not be negative");
        next.basic_delay_ms = static_cast<int>(*v);
      }
      if (in->has("live_rate")) {
        live = in->getValue<double>("live_rate");
        if (live < 0) throw BadRequest("live_rate must not be negative");
      }
      options_ = next;
      live_rate_ = live;
      wake_.notify_all();
      reply(200, "{\"window\":\"" + windowName(options_.window) + "\",\"empty_last_updated\":\"" +
                     emptyName(options_.empty_last_updated) + "\",\"limit_over_100\":\"" +
                     (options_.clamp_limit ? "clamp" : "reject") +
                     "\",\"access_ttl_ms\":" + std::to_string(options_.access_ttl_ms) +
                     ",\"rate_limit\":" + std::to_string(options_.rate_limit) +
                     ",\"basic_delay_ms\":" + std::to_string(options_.basic_delay_ms) +
                     ",\"live_rate\":" + std::to_string(live_rate_) + ",\"company_id\":\"" +
                     options_.store.company_id + "\"}");
      return;
    }
    if (!is_post) {
      fail(404, "unknown control endpoint " + path);
      return;
    }
    const Object::Ptr in = parseObjectBody(body, true);
    if (path == "/_sim/faults") {
      rejectUnknown(in, {"kind", "count", "delay_ms"}, "");
      static const std::map<std::string, FaultKind> kKinds = {
          {"429", FaultKind::k429},
          {"429-retry-after", FaultKind::k429RetryAfter},
          {"500", FaultKind::k500},
          {"502", FaultKind::k502},
          {"503", FaultKind::k503},
          {"slow", FaultKind::kSlow},
          {"drop", FaultKind::kDrop},
          {"malformed", FaultKind::kMalformed},
          {"truncated", FaultKind::kTruncated},
          {"401", FaultKind::k401}};
      const auto kind_var = in->get("kind");
      const std::string kind = kind_var.isEmpty() ? "" : kind_var.convert<std::string>();
      auto it = kKinds.find(kind);
      if (it == kKinds.end()) {
        throw BadRequest(
            "kind must be one of 429, 429-retry-after, 500, 502, 503, slow, drop, "
            "malformed, truncated, 401");
      }
      const auto n = integerField(in, "count").value_or(1);
      const auto delay = integerField(in, "delay_ms").value_or(6000);
      if (n < 1 || delay < 0) throw BadRequest("count must be ≥ 1 and delay_ms ≥ 0");
      {
        std::lock_guard<std::mutex> lock(mutex_);
        faults_.push_back({it->second, static_cast<int>(n), static_cast<int>(delay)});
      }
      reply(200, "{\"queued\":" + std::to_string(n) + ",\"kind\":\"" + kind + "\"}");
      return;
    }
    if (path == "/_sim/change") {
      rejectUnknown(in, {"count", "kind"}, "");
      const auto n = integerField(in, "count").value_or(1);
      const std::string kind = in->has("kind") ? in->getValue<std::string>("kind") : "any";
      if (kind != "order" && kind != "shipment" && kind != "any") {
        throw BadRequest("kind must be order, shipment or any");
      }
      if (n < 0 || n > 100000) throw BadRequest("count must be between 0 and 100000");
      std::string json = "{\"changed\":[";
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::int64_t i = 0; i < n; ++i) {
          const ChangeRecord rec = store_.randomChange(kind);
          ++changes_applied_;
          if (i) json += ',';
          json += "{\"entity\":\"" + rec.entity + "\",\"id\":\"" + rec.id + "\",\"change\":\"" +
                  rec.change + "\",\"lastUpdatedAt\":\"" + formatIsoMs(rec.updated_ms) + "\"}";
        }
      }
      reply(200, json + "]}");
      return;
    }
    if (path == "/_sim/settle") {
      rejectUnknown(in, {"order_id"}, "");
      std::string json = "{\"settled\":[";
      bool unknown = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<Order*> orders;
        if (in->has("order_id")) {
          Order* o = store_.orderById(in->getValue<std::string>("order_id"));
          if (o) orders.push_back(o);
          unknown = o == nullptr;
        } else {
          orders = store_.allOrders();
        }
        bool first = true;
        for (Order* o : orders) {
          const auto ids = store_.settle(*o);
          if (ids.empty()) continue;
          ++changes_applied_;
          json += std::string(first ? "" : ",") + "{\"order_id\":\"" + o->id +
                  "\",\"line_ids\":[";
          for (std::size_t i = 0; i < ids.size(); ++i) json += (i ? ",\"" : "\"") + ids[i] + "\"";
          json += "],\"lastUpdatedAt\":\"" + formatIsoMs(o->updated_ms) + "\"}";
          first = false;
        }
      }
      if (unknown) fail(404, "no such order");
      else reply(200, json + "]}");
      return;
    }
    if (path == "/_sim/echo") {
      rejectUnknown(in, {"order_id", "role", "lines", "supplier_change_first"}, "");
      const std::string role = in->has("role") ? in->getValue<std::string>("role") : "";
      if (role != "buyer" && role != "supplier") throw BadRequest("role must be buyer or supplier");
      const auto lines = integerField(in, "lines").value_or(1);
      if (lines < 1) throw BadRequest("lines must be at least 1");
      const bool supplier_first =
          in->has("supplier_change_first") && in->getValue<bool>("supplier_change_first");
      std::string json;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        Order* order = in->has("order_id") ? store_.orderById(in->getValue<std::string>("order_id"))
                                           : store_.echoCandidate();
        if (!order) {
          json = "404";
        } else {
          // With supplier_change_first the answer's line_ids are the supplier's line, then the
          // request's.
          const auto ids = supplier_first ? store_.supplierChangeThenEcho(*order, role)
                                          : store_.echo(*order, role, static_cast<int>(lines));
          if (ids.empty()) {
            json = "409";
          } else {
            ++changes_applied_;
            json = "{\"order_id\":\"" + order->id + "\",\"line_ids\":[";
            for (std::size_t i = 0; i < ids.size(); ++i) {
              json += (i ? ",\"" : "\"") + ids[i] + "\"";
            }
            json += "],\"lastUpdatedAt\":\"" + formatIsoMs(order->updated_ms) + "\"}";
          }
        }
      }
      if (json == "404") {
        fail(404, "no such order (or no order with a line open for a request)");
      } else if (json == "409") {
        fail(409, "the order has no line that can take a request");
      } else {
        reply(200, json);
      }
      return;
    }
    if (path == "/_sim/change-while-paging") {
      rejectUnknown(in, {"after_requests", "count", "where", "change"}, "");
      const auto k = integerField(in, "after_requests").value_or(1);
      const auto n = integerField(in, "count").value_or(1);
      const std::string where = in->has("where") ? in->getValue<std::string>("where") : "later";
      const std::string change = in->has("change") ? in->getValue<std::string>("change") : "any";
      if (k < 1 || n < 1) throw BadRequest("after_requests and count must be at least 1");
      if (where != "later" && where != "served") throw BadRequest("where must be later or served");
      if (change != "any" && change != "echo" && change != "supplier-then-echo" &&
          change != "settle")
        throw BadRequest("change must be any, echo, supplier-then-echo or settle");
      {
        std::lock_guard<std::mutex> lock(mutex_);
        paging_change_ =
            PagingChange{static_cast<int>(k), static_cast<int>(n), where == "later", change};
        paging_fired_ = false;
        paging_changed_ids_.clear();
      }
      reply(200, "{\"armed\":true}");
      return;
    }
    fail(404, "unknown control endpoint " + path);
  } catch (const BadRequest& e) {
    fail(400, e.what());
  } catch (const Poco::Exception& e) {
    fail(400, e.displayText());
  }
}

}  // namespace ferry::sim::tradecloud
