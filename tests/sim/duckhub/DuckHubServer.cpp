#include "DuckHubServer.h"

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

namespace ferry::sim::duckhub {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr std::size_t kMaxCacheBytes = std::size_t{512} << 20;
constexpr const char* kStatusList = "new, confirmed, preparing, delivering, completed, cancelled";

std::int64_t steadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(DuckHubServer* server) : server_(server) {}
  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    server_->handle(request, response);
  }

 private:
  DuckHubServer* server_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(DuckHubServer* server) : server_(server) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
    return new Handler(server_);
  }

 private:
  DuckHubServer* server_;
};

// Parses a query-string integer the way the API's validation does: digits only.
std::optional<std::int64_t> parseInteger(const std::string& text) {
  if (text.empty() || text.size() > 12) return std::nullopt;
  std::int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// A `hold` fault's delay for the request this thread is answering: sendJson waits this long
// before sending, after the request took effect.
thread_local int t_hold_ms = 0;

std::uint64_t countSince(const std::deque<std::int64_t>& hits, std::int64_t after) {
  return static_cast<std::uint64_t>(hits.end() - std::upper_bound(hits.begin(), hits.end(), after));
}

Poco::JSON::Object::Ptr parseControlBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return new Poco::JSON::Object;
  Poco::JSON::Parser parser;
  auto result = parser.parse(body);
  auto object = result.extract<Poco::JSON::Object::Ptr>();
  if (!object) throw std::runtime_error("body must be a JSON object");
  return object;
}

}  // namespace

DuckHubServer::DuckHubServer(const ServerOptions& options)
    : options_(options), store_(options.store), live_rate_(options.live_rate) {}

DuckHubServer::~DuckHubServer() { stop(); }

void DuckHubServer::start() {
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
  params->setMaxQueued(512);
  pool_ = std::make_unique<Poco::ThreadPool>(2, options_.max_threads);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), *pool_, socket, params);
  server_->start();
  live_thread_ = std::thread([this] { liveLoop(); });
}

void DuckHubServer::stop() {
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

std::string DuckHubServer::keysJson() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out = "{\"venues\":[";
  bool first = true;
  for (auto& v : store_.venues()) {
    if (!first) out += ',';
    first = false;
    out += "{\"venue\":";
    appendString(out, v->name);
    out += ",\"api_key\":";
    appendString(out, v->api_key);
    out += v->paid ? ",\"plan\":\"paid\"}" : ",\"plan\":\"free\"}";
  }
  return out + "]}";
}

void DuckHubServer::handle(HTTPServerRequest& request, HTTPServerResponse& response) {
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
        sendJson(response, 500, "{\"statusCode\":500,\"message\":\"Internal server error\"}");
      } catch (...) {
      }
    }
    if (options_.log_requests) std::cerr << "error: " << e.what() << '\n';
  }
}

void DuckHubServer::countStatus(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++by_status_[status];
}

void DuckHubServer::sendJson(HTTPServerResponse& response, int status, const std::string& body,
                             bool count) {
  if (count) countStatus(status);
  if (count && t_hold_ms > 0 && !sleepInterruptibly(t_hold_ms)) return;
  response.setStatusAndReason(static_cast<HTTPResponse::HTTPStatus>(status));
  response.setContentType("application/json; charset=utf-8");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.sendBuffer(body.data(), body.size());
}

void DuckHubServer::sendError(HTTPServerResponse& response, int status, const std::string& message,
                              const std::string& path, const std::vector<std::string>& errors) {
  std::string body = "{\"statusCode\":" + std::to_string(status) + ",\"message\":";
  appendString(body, message);
  body += ",\"timestamp\":\"" + formatIsoMs(store_.nowMs()) + "\",\"path\":";
  appendString(body, path);
  if (!errors.empty()) {
    body += ",\"errors\":[";
    for (std::size_t i = 0; i < errors.size(); ++i) {
      if (i) body += ',';
      appendString(body, errors[i]);
    }
    body += ']';
  }
  body += '}';
  sendJson(response, status, body);
}

int DuckHubServer::recordArrival(const std::string& client) {
  const std::int64_t now = steadyMs();
  ClientWindows& w = clients_[client];
  ++total_requests_;
  for (auto* hits : {&w.limiter_hits, &w.stats_hits}) {
    hits->push_back(now);
    while (!hits->empty() && hits->front() <= now - 60000) hits->pop_front();
  }
  // The busiest window of each size ends at some arrival, so checking at every arrival finds the
  // maximum over all sliding windows.
  max_in_1s_ = std::max(max_in_1s_, countSince(w.stats_hits, now - 1000));
  max_in_10s_ = std::max(max_in_10s_, countSince(w.stats_hits, now - 10000));
  max_in_60s_ = std::max(max_in_60s_, countSince(w.stats_hits, now - 60000));
  if (!options_.rate_limit) return -1;
  // Like NestJS's throttler, every request counts, the rejected ones included.
  static constexpr std::pair<std::int64_t, std::uint64_t> kLimits[] = {
      {1000, 10}, {10000, 50}, {60000, 300}};
  std::int64_t wait_ms = -1;
  for (auto [window_ms, limit] : kLimits) {
    const std::uint64_t n = countSince(w.limiter_hits, now - window_ms);
    if (n > limit) {
      const std::int64_t oldest_needed = w.limiter_hits[w.limiter_hits.size() - limit];
      wait_ms = std::max(wait_ms, oldest_needed + window_ms - now);
    }
  }
  if (wait_ms < 0) return -1;
  ++throttled_;
  // The real API sends Retry-After only sometimes; clients must cope with both.
  return throttled_ % 2 == 1 ? static_cast<int>(std::max<std::int64_t>(1, (wait_ms + 999) / 1000))
                             : 0;
}

bool DuckHubServer::sleepInterruptibly(int delay_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, std::chrono::milliseconds(delay_ms), [this] { return stopping_; });
}

void DuckHubServer::handleApi(HTTPServerRequest& request, HTTPServerResponse& response,
                              const std::string& body) {
  const std::string uri = request.getURI();
  const Poco::URI parsed(uri);
  const std::string path = parsed.getPath();
  std::optional<Fault> fault;
  int throttle;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    throttle = recordArrival(request.clientAddress().host().toString());
    if (!faults_.empty()) {
      Fault& next = faults_.front();
      if (!next.method.empty() && next.method != request.getMethod()) {
        // not for this request
      } else if (next.after_requests > 0) {
        --next.after_requests;
      } else {
        fault = next;
        if (--next.remaining <= 0) faults_.pop_front();
        ++faults_injected_;
      }
    }
  }
  struct Hold {
    ~Hold() { t_hold_ms = 0; }
  } hold;
  if (fault) {
    switch (fault->kind) {
      case FaultKind::k429:
        sendError(response, 429, "ThrottlerException: Too Many Requests", uri);
        return;
      case FaultKind::k429RetryAfter:
        response.set("Retry-After", "1");
        sendError(response, 429, "ThrottlerException: Too Many Requests", uri);
        return;
      case FaultKind::k500:
        sendError(response, 500, "Internal server error", uri);
        return;
      case FaultKind::k502:
        sendError(response, 502, "Bad Gateway", uri);
        return;
      case FaultKind::k503:
        sendError(response, 503, "Service Unavailable", uri);
        return;
      case FaultKind::kDrop: {
        // Nothing sent and no keep-alive: Poco closes the socket when the handler returns.
        response.setKeepAlive(false);
        std::lock_guard<std::mutex> lock(mutex_);
        ++dropped_;
        return;
      }
      case FaultKind::kMalformed:
        sendJson(response, 200, "{\"items\":[{\"id\":\"c0\",\"status\":\"new\",]],\"total\":");
        return;
      case FaultKind::kTruncated: {
        std::string full;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          auto& venues = store_.venues();
          full = venues.empty() ? std::string(4096, ' ') + "{}"
                                : store_.renderPage(*venues.front(), OrderQuery{});
        }
        countStatus(200);
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
      case FaultKind::kHold:
        t_hold_ms = fault->delay_ms;
        break;  // handled normally, answered late
    }
  }
  if (throttle >= 0) {
    if (throttle > 0) response.set("Retry-After", std::to_string(throttle));
    sendError(response, 429, "ThrottlerException: Too Many Requests", uri);
    return;
  }

  const std::string auth = request.get("Authorization", "");
  if (auth.rfind("Bearer ", 0) != 0 || auth.size() == 7) {
    sendError(response, 401, "Missing API key", uri);
    return;
  }
  const std::string key = auth.substr(7);
  const bool well_formed = key.size() == 40 &&
                           (key.rfind("dk_test_", 0) == 0 || key.rfind("dk_live_", 0) == 0) &&
                           std::all_of(key.begin() + 8, key.end(), [](char c) {
                             return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                    (c >= '0' && c <= '9') || c == '-' || c == '_';
                           });
  if (!well_formed) {
    sendError(response, 401, "Invalid API key format", uri);
    return;
  }
  Venue* venue;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    venue = store_.venueByKey(key);
  }
  if (!venue) {
    sendError(response, 401, "Invalid API key", uri);
    return;
  }
  if (!venue->paid) {
    sendError(response, 403, "The Orders API requires a paid plan", uri);
    return;
  }

  const std::string& method = request.getMethod();
  static const std::string kOrders = "/v1/orders";
  if (method == "GET" && (path == kOrders || path == kOrders + "/")) {
    listOrders(*venue, uri, parsed.getRawQuery(), response);
    return;
  }
  if (path.rfind(kOrders + "/", 0) == 0) {
    const std::string rest = path.substr(kOrders.size() + 1);
    const auto slash = rest.find('/');
    if (method == "GET" && slash == std::string::npos) {
      std::string order_json;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = venue->by_id.find(rest);
        if (it != venue->by_id.end()) appendOrderJson(order_json, *it->second);
      }
      if (order_json.empty()) {
        sendError(response, 404, "Order not found", uri);
      } else {
        sendJson(response, 200, order_json);
      }
      return;
    }
    if (method == "PATCH" && slash != std::string::npos && slash > 0 &&
        rest.substr(slash) == "/status") {
      patchStatus(*venue, rest.substr(0, slash), uri, body, response);
      return;
    }
  }
  sendError(response, 404, "Cannot " + method + " " + path, uri);
}

void DuckHubServer::listOrders(Venue& venue, const std::string& uri, const std::string& raw_query,
                               HTTPServerResponse& response) {
  OrderQuery query;
  std::vector<std::string> errors;
  std::map<std::string, int> seen;
  for (const auto& [name, value] : Poco::URI(uri).getQueryParameters()) {
    if (++seen[name] == 2) {
      errors.push_back(name + " must not be repeated");
      continue;
    }
    if (name == "page" || name == "limit") {
      auto n = parseInteger(value);
      if (!n) {
        errors.push_back(name + " must be an integer number");
      } else if (*n < 1) {
        errors.push_back(name + " must not be less than 1");
      } else if (name == "limit" && *n > 100) {
        errors.push_back("limit must not be greater than 100");
      } else if (name == "page" && *n > 1000000000) {
        errors.push_back("page must not be greater than 1000000000");
      } else {
        (name == "page" ? query.page : query.limit) = *n;
      }
    } else if (name == "status") {
      query.status = parseStatus(value);
      if (!query.status) {
        errors.push_back(std::string("status must be one of the following values: ") + kStatusList);
      }
    } else if (name == "since" || name == "until" || name == "updatedSince") {
      auto us = parseIsoUs(value);
      if (!us) {
        errors.push_back(name +
                         " must be a valid ISO 8601 timestamp with a timezone (Z or ±hh:mm)");
      } else {
        (name == "since"   ? query.since_us
         : name == "until" ? query.until_us
                           : query.updated_since_us) = us;
      }
    }
    // Other parameters are ignored, as the real API does with unknown query parameters.
  }
  if (!errors.empty()) {
    sendError(response, 400, "Validation failed", uri, errors);
    return;
  }
  std::shared_ptr<const std::string> body;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string cache_key = options_.cache ? venue.name + '\n' + raw_query : std::string();
    if (options_.cache) {
      auto it = cache_.find(cache_key);
      if (it != cache_.end() && it->second.first == venue.version) body = it->second.second;
    }
    if (!body) {
      body = std::make_shared<const std::string>(store_.renderPage(venue, query));
      if (options_.cache) {
        if (cache_bytes_ > kMaxCacheBytes) {
          cache_.clear();
          cache_bytes_ = 0;
        }
        cache_[cache_key] = {venue.version, body};
        cache_bytes_ += body->size() + cache_key.size();
      }
    }
    // The response is already rendered: changes made now are visible from the next request on,
    // whatever connection it comes on.
    if (paging_change_ && --paging_change_->remaining_requests <= 0) {
      firePagingChange(venue, query);
      paging_change_.reset();
    }
  }
  sendJson(response, 200, *body);
}

void DuckHubServer::firePagingChange(Venue& venue, const OrderQuery& query) {
  // An order already served moves to the end of the updatedAt order; everything behind it slides
  // back one place, so the first order of the next page lands on a page the client has read.
  const auto list = store_.matching(venue, query);
  const std::size_t answered = static_cast<std::size_t>(std::min<std::uint64_t>(
      list.size(),
      static_cast<std::uint64_t>(query.page) * static_cast<std::uint64_t>(query.limit)));
  std::vector<Order*> candidates;
  for (std::size_t i = 0; i < answered; ++i) {
    if (!legalTargets(list[i]->status).empty()) candidates.push_back(const_cast<Order*>(list[i]));
  }
  std::shuffle(candidates.begin(), candidates.end(), store_.changeRng());
  const int count = paging_change_->count;
  paging_changed_ids_.clear();
  for (int i = 0; i < count; ++i) {
    if (static_cast<std::size_t>(i) < candidates.size()) {
      store_.randomTransition(venue, *candidates[static_cast<std::size_t>(i)]);
      paging_changed_ids_.push_back(candidates[static_cast<std::size_t>(i)]->id);
    } else {
      paging_changed_ids_.push_back(store_.randomChange(venue));
    }
  }
  ++paging_changes_fired_;
  changes_applied_ += static_cast<std::uint64_t>(count);
}

void DuckHubServer::patchStatus(Venue& venue, const std::string& id, const std::string& uri,
                                const std::string& body, HTTPServerResponse& response) {
  std::string requested;
  auto record = [&](int code) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!patches_json_.empty()) patches_json_ += ',';
    patches_json_ += "{\"id\":";
    appendString(patches_json_, id);
    patches_json_ += ",\"status\":";
    appendString(patches_json_, requested);
    patches_json_ += ",\"code\":" + std::to_string(code) + "}";
  };
  std::vector<std::string> errors;
  std::optional<Status> target;
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    for (const auto& [name, value] : *object) {
      if (name != "status") errors.push_back("property " + name + " should not exist");
    }
    if (object->has("status") && object->get("status").isString()) {
      requested = object->getValue<std::string>("status");
      target = parseStatus(requested);
    }
    if (!target) {
      errors.push_back(std::string("status must be one of the following values: ") + kStatusList);
    }
  } catch (const std::exception&) {
    record(400);
    sendError(response, 400, "Request body must be a JSON object", uri);
    return;
  }
  if (!errors.empty()) {
    record(400);
    sendError(response, 400, "Validation failed", uri, errors);
    return;
  }
  std::string result;
  std::string illegal;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = venue.by_id.find(id);
    if (it != venue.by_id.end()) {
      Order& order = *it->second;
      changeBeforePatch(venue, order);
      if (order.status != *target && !isLegalTransition(order.status, *target)) {
        std::string allowed;
        for (Status s : legalTargets(order.status)) {
          if (!allowed.empty()) allowed += ", ";
          allowed += statusName(s);
        }
        illegal = "Invalid status transition: '" + std::string(statusName(order.status)) +
                  "' -> '" + requested + "'. Allowed from '" +
                  std::string(statusName(order.status)) +
                  "': " + (allowed.empty() ? "none (terminal status)" : allowed);
      } else {
        // The same status again is a no-op: nothing written, updatedAt unchanged.
        if (order.status != *target) store_.applyTransition(venue, order, *target);
        result = "{\"id\":\"" + order.id +
                 "\",\"orderNumber\":" + std::to_string(order.order_number) + ",\"status\":\"" +
                 std::string(statusName(order.status)) + "\",\"updatedAt\":\"" +
                 formatIsoMs(order.updated_ms) + "\"}";
      }
    }
  }
  if (!illegal.empty()) {
    record(422);
    sendError(response, 422, illegal, uri);
  } else if (result.empty()) {
    record(404);
    sendError(response, 404, "Order not found", uri);
  } else {
    record(200);
    sendJson(response, 200, result);
  }
}

void DuckHubServer::changeBeforePatch(Venue& venue, Order& order) {
  auto armed = std::find_if(before_patch_.begin(), before_patch_.end(), [&](const BeforePatch& b) {
    return b.venue.empty() || b.venue == venue.name;
  });
  if (armed == before_patch_.end()) return;
  const std::string change = armed->change;
  if (--armed->remaining <= 0) before_patch_.erase(armed);
  if (change == "edit") {
    store_.applyEdit(venue, order);
  } else if (auto to = parseStatus(change); to && isLegalTransition(order.status, *to)) {
    store_.applyTransition(venue, order, *to);
  } else {
    return;  // not possible from the order's status: nothing changed
  }
  ++changes_applied_;
  if (!changed_before_patch_json_.empty()) changed_before_patch_json_ += ',';
  changed_before_patch_json_ += "{\"id\":";
  appendString(changed_before_patch_json_, order.id);
  changed_before_patch_json_ += ",\"change\":";
  appendString(changed_before_patch_json_, change);
  changed_before_patch_json_ += '}';
}

std::vector<std::string> DuckHubServer::applyChanges(int count, Venue* only) {
  std::vector<Venue*> targets;
  if (only) {
    targets.push_back(only);
  } else {
    for (auto& v : store_.venues())
      if (v->paid) targets.push_back(v.get());
  }
  std::vector<std::string> ids;
  if (targets.empty()) return ids;
  for (int i = 0; i < count; ++i) {
    Venue* v = targets[store_.changeRng()() % targets.size()];
    ids.push_back(store_.randomChange(*v));
  }
  changes_applied_ += ids.size();
  return ids;
}

void DuckHubServer::liveLoop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lock(mutex_);
  Clock::time_point next;
  bool scheduled = false;
  while (!stopping_) {
    if (live_rate_ <= 0) {
      wake_.wait(lock);
      scheduled = false;
      continue;
    }
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / live_rate_));
    if (!scheduled) {
      next = Clock::now() + interval;
      scheduled = true;
    }
    const double rate_before = live_rate_;
    wake_.wait_until(lock, next);
    if (stopping_) break;
    if (live_rate_ != rate_before) {
      scheduled = false;
      continue;
    }
    const auto now = Clock::now();
    if (now < next) continue;  // spurious wake-up
    applyChanges(1, nullptr);
    next += interval;
    if (next < now - std::chrono::seconds(1)) next = now;  // no burst after a stall
  }
}

void DuckHubServer::handleControl(HTTPServerRequest& request, HTTPServerResponse& response,
                                  const std::string& body) {
  const Poco::URI parsed(request.getURI());
  const std::string path = parsed.getPath();
  const std::string& method = request.getMethod();
  auto fail = [&](int status, const std::string& message) {
    std::string out = "{\"error\":";
    appendString(out, message);
    sendJson(response, status, out + "}", false);
  };
  try {
    if (method == "GET" && path == "/_sim/state") {
      std::string venue_filter;
      for (const auto& [name, value] : parsed.getQueryParameters())
        if (name == "venue") venue_filter = value;
      std::string out = "{\"venues\":[";
      bool found = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& v : store_.venues()) {
          if (!venue_filter.empty() && v->name != venue_filter) continue;
          if (found) out += ',';
          found = true;
          out += "{\"venue\":";
          appendString(out, v->name);
          out += ",\"api_key\":";
          appendString(out, v->api_key);
          out += v->paid ? ",\"plan\":\"paid\"" : ",\"plan\":\"free\"";
          out += ",\"orders\":[";
          for (std::size_t i = 0; i < v->orders.size(); ++i) {
            const Order& o = *v->orders[i];
            if (i) out += ',';
            out += "{\"id\":\"" + o.id + "\",\"orderNumber\":" + std::to_string(o.order_number) +
                   ",\"status\":\"" + std::string(statusName(o.status)) + "\",\"updatedAt\":\"" +
                   formatIsoMs(o.updated_ms) + "\"}";
          }
          out += "]}";
        }
      }
      if (!found && !venue_filter.empty()) return fail(404, "unknown venue " + venue_filter);
      return sendJson(response, 200, out + "]}", false);
    }
    if (method == "GET" && path == "/_sim/requests") {
      std::lock_guard<std::mutex> lock(mutex_);
      std::string out = "{\"total\":" + std::to_string(total_requests_) + ",\"by_status\":{";
      bool first = true;
      for (auto [status, n] : by_status_) {
        if (!first) out += ',';
        first = false;
        out += "\"" + std::to_string(status) + "\":" + std::to_string(n);
      }
      out += "},\"max_in_1s\":" + std::to_string(max_in_1s_) +
             ",\"max_in_10s\":" + std::to_string(max_in_10s_) +
             ",\"max_in_60s\":" + std::to_string(max_in_60s_) + ",\"patches\":[" + patches_json_ +
             "],\"changes_applied\":" + std::to_string(changes_applied_) +
             ",\"dropped\":" + std::to_string(dropped_) +
             ",\"faults_injected\":" + std::to_string(faults_injected_) +
             ",\"faults_pending\":" + std::to_string(faults_.size()) +
             ",\"change_while_paging\":{\"armed\":" + (paging_change_ ? "true" : "false") +
             ",\"fired\":" + std::to_string(paging_changes_fired_) + ",\"changed\":[";
      for (std::size_t i = 0; i < paging_changed_ids_.size(); ++i) {
        if (i) out += ',';
        appendString(out, paging_changed_ids_[i]);
      }
      out += "]},\"changed_before_patch\":[" + changed_before_patch_json_ + "]}";
      return sendJson(response, 200, out, false);
    }
    if (method != "POST") return fail(404, "no such control endpoint: " + method + " " + path);
    auto args = parseControlBody(body);
    if (path == "/_sim/faults") {
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
          {"hold", FaultKind::kHold}};
      const std::string kind = args->optValue<std::string>("kind", "");
      auto it = kKinds.find(kind);
      if (it == kKinds.end()) return fail(400, "unknown fault kind '" + kind + "'");
      const int count = args->optValue<int>("count", 1);
      const int delay_ms = args->optValue<int>("delay_ms", 5000);
      const std::string only = args->optValue<std::string>("method", "");
      const int after = args->optValue<int>("after_requests", 0);
      if (count < 1 || delay_ms < 0 || after < 0)
        return fail(400, "count must be >= 1, delay_ms >= 0, after_requests >= 0");
      if (!only.empty() && only != "GET" && only != "PATCH")
        return fail(400, "method must be GET or PATCH");
      std::lock_guard<std::mutex> lock(mutex_);
      faults_.push_back({it->second, count, delay_ms, only, after});
      return sendJson(response, 200,
                      "{\"queued\":" + std::to_string(count) + ",\"kind\":\"" + kind + "\"}",
                      false);
    }
    if (path == "/_sim/change") {
      const int count = args->optValue<int>("count", 1);
      const std::string venue_name = args->optValue<std::string>("venue", "");
      if (count < 0) return fail(400, "count must be >= 0");
      std::string out = "{\"changed\":[";
      {
        std::lock_guard<std::mutex> lock(mutex_);
        Venue* only = nullptr;
        if (!venue_name.empty() && !(only = store_.venueByName(venue_name))) {
          out.clear();
        } else {
          auto ids = applyChanges(count, only);
          for (std::size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ',';
            appendString(out, ids[i]);
          }
        }
      }
      if (out.empty()) return fail(404, "unknown venue " + venue_name);
      return sendJson(response, 200, out + "]}", false);
    }
    if (path == "/_sim/change-while-paging") {
      const int after = args->optValue<int>("after_requests", 1);
      const int count = args->optValue<int>("count", 1);
      if (after < 1 || count < 1) return fail(400, "after_requests and count must be >= 1");
      std::lock_guard<std::mutex> lock(mutex_);
      paging_change_ = PagingChange{after, count};
      return sendJson(response, 200, "{\"armed\":true}", false);
    }
    if (path == "/_sim/change-before-patch") {
      const std::string change = args->optValue<std::string>("change", "");
      const std::string venue_name = args->optValue<std::string>("venue", "");
      const int count = args->optValue<int>("count", 1);
      if (change != "edit" && !parseStatus(change))
        return fail(400, "change must be 'edit' or a status (" + std::string(kStatusList) + ")");
      if (count < 1) return fail(400, "count must be >= 1");
      std::lock_guard<std::mutex> lock(mutex_);
      if (!venue_name.empty() && !store_.venueByName(venue_name))
        return fail(404, "unknown venue " + venue_name);
      before_patch_.push_back({venue_name, change, count});
      return sendJson(response, 200, "{\"armed\":" + std::to_string(count) + "}", false);
    }
    if (path == "/_sim/live") {
      const double rate = args->optValue<double>("rate", 0.0);
      if (rate < 0) return fail(400, "rate must be >= 0");
      {
        std::lock_guard<std::mutex> lock(mutex_);
        live_rate_ = rate;
      }
      wake_.notify_all();
      return sendJson(response, 200, "{\"rate\":" + std::to_string(rate) + "}", false);
    }
    if (path == "/_sim/reset-stats") {
      std::lock_guard<std::mutex> lock(mutex_);
      total_requests_ = dropped_ = faults_injected_ = changes_applied_ = 0;
      max_in_1s_ = max_in_10s_ = max_in_60s_ = 0;
      by_status_.clear();
      patches_json_.clear();
      paging_changed_ids_.clear();
      paging_changes_fired_ = 0;
      changed_before_patch_json_.clear();
      for (auto& [client, windows] : clients_) windows.stats_hits.clear();
      return sendJson(response, 200, "{\"ok\":true}", false);
    }
    return fail(404, "no such control endpoint: " + method + " " + path);
  } catch (const Poco::Exception& e) {
    return fail(400, e.displayText());
  } catch (const std::exception& e) {
    return fail(400, e.what());
  }
}

}  // namespace ferry::sim::duckhub
