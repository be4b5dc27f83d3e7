#pragma once

// The DuckHub Orders API simulator as a class: duckhub-sim's main() and the tests both run it.
// One mutex guards the store, the statistics and the fault queue; requests are served by
// Poco::Net::HTTPServer's thread pool with keep-alive on. See README.md for the interface.

#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/ThreadPool.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "DuckHubStore.h"

namespace ferry::sim::duckhub {

struct ServerOptions {
  StoreOptions store;
  std::uint16_t port = 0;  // 0: ephemeral
  double live_rate = 0;    // changes per second across all paid venues
  bool rate_limit = true;
  bool cache = false;         // memoise GET /v1/orders bodies per venue and query string
  bool log_requests = false;  // one line per request on stderr
  int max_threads = 64;       // connections served at once (a keep-alive connection holds one)
};

class DuckHubServer {
 public:
  explicit DuckHubServer(const ServerOptions& options);
  ~DuckHubServer();
  DuckHubServer(const DuckHubServer&) = delete;
  DuckHubServer& operator=(const DuckHubServer&) = delete;

  // Binds 127.0.0.1:port and starts serving (and the live-change thread). Throws on bind errors.
  void start();
  // Stops accepting, aborts open connections and waits for the worker threads. Idempotent.
  void stop();
  std::uint16_t port() const { return port_; }
  // {"venues":[{"venue","api_key","plan"}…]}: what --keys-file writes.
  std::string keysJson();

  // Entry point of every request (called by the HTTP server's worker threads).
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);

 private:
  enum class FaultKind {
    k429,
    k429RetryAfter,
    k500,
    k502,
    k503,
    kSlow,
    kDrop,
    kMalformed,
    kTruncated,
    kHold
  };
  struct Fault {
    FaultKind kind;
    int remaining;
    int delay_ms;
    std::string method;  // only requests with this method ("" = any) take it or count below
    int after_requests;  // let this many (matching) requests through first
  };
  // A change the venue's staff make to an order right before a PATCH of it is applied.
  struct BeforePatch {
    std::string venue;   // "" = any venue
    std::string change;  // "edit" or a status name
    int remaining;
  };
  struct ClientWindows {
    std::deque<std::int64_t> limiter_hits;  // steady ms, last 60 s
    std::deque<std::int64_t> stats_hits;    // the same, but cleared by reset-stats
  };
  struct PagingChange {
    int remaining_requests;
    int count;
  };

  void handleApi(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                 const std::string& body);
  void handleControl(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                     const std::string& body);
  void listOrders(Venue& venue, const std::string& uri, const std::string& raw_query,
                  Poco::Net::HTTPServerResponse& response);
  void patchStatus(Venue& venue, const std::string& id, const std::string& uri,
                   const std::string& body, Poco::Net::HTTPServerResponse& response);

  // Each sends the response and counts its status.
  void sendJson(Poco::Net::HTTPServerResponse& response, int status, const std::string& body,
                bool count = true);
  void sendError(Poco::Net::HTTPServerResponse& response, int status, const std::string& message,
                 const std::string& path, const std::vector<std::string>& errors = {});
  void countStatus(int status);

  // Returns the seconds for Retry-After (0: none) when the request is over a limit; -1 if allowed.
  int recordArrival(const std::string& client);
  std::vector<std::string> applyChanges(int count, Venue* only);  // store lock held
  void firePagingChange(Venue& venue, const OrderQuery& query);   // store lock held
  void changeBeforePatch(Venue& venue, Order& order);             // store lock held
  void liveLoop();
  bool sleepInterruptibly(int delay_ms);

  ServerOptions options_;
  DuckHubStore store_;
  std::uint16_t port_ = 0;

  std::mutex mutex_;  // everything below
  std::deque<Fault> faults_;
  std::optional<PagingChange> paging_change_;
  std::vector<std::string> paging_changed_ids_;
  int paging_changes_fired_ = 0;
  std::deque<BeforePatch> before_patch_;
  std::string changed_before_patch_json_;  // comma-separated {"id","change"} objects
  std::unordered_map<std::string, ClientWindows> clients_;
  std::uint64_t total_requests_ = 0;
  std::map<int, std::uint64_t> by_status_;
  std::uint64_t dropped_ = 0;
  std::uint64_t faults_injected_ = 0;
  std::uint64_t max_in_1s_ = 0, max_in_10s_ = 0, max_in_60s_ = 0;
  std::uint64_t throttled_ = 0;  // alternates Retry-After on the limiter's 429s
  std::string patches_json_;     // comma-separated {"id","status","code"} objects
  std::uint64_t changes_applied_ = 0;
  std::unordered_map<std::string, std::pair<std::uint64_t, std::shared_ptr<const std::string>>>
      cache_;
  std::size_t cache_bytes_ = 0;
  double live_rate_ = 0;
  bool stopping_ = false;
  std::condition_variable wake_;  // live thread and slow faults

  std::thread live_thread_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace ferry::sim::duckhub
