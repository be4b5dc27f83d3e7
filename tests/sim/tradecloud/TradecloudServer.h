#pragma once

// The Tradecloud API v2 simulator as a class: tradecloud-sim's main() and the tests both run it.
// One mutex guards the store, the sessions, the statistics and the fault queue; requests are
// served by Poco::Net::HTTPServer's thread pool with keep-alive on. See README.md.

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
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "TradecloudStore.h"

namespace ferry::sim::tradecloud {

enum class EmptyLastUpdated { kAbsent, kNull, kPresent };

struct ServerOptions {
  StoreOptions store;
  std::uint16_t port = 0;  // 0: ephemeral
  std::string email = "integration@example.test";
  std::string password = "secret";
  std::int64_t access_ttl_ms = 10 * 60 * 1000;
  // The access token's "exp" claim as written (digits); "" = iat + access_ttl_ms. The server
  // still honours access_ttl_ms: this only tests how clients read the claim.
  std::string access_exp;
  Window window = Window::kExclusive;
  EmptyLastUpdated empty_last_updated = EmptyLastUpdated::kAbsent;
  bool clamp_limit = false;  // limit > 100: false → 400, true → treated as 100
  int rate_limit = 10;       // requests per account per second; 0 = off
  int basic_delay_ms = 200;  // Basic auth on a poll endpoint is slow
  int max_threads = 32;      // connections served at once (a keep-alive connection holds one)
  double live_rate = 0;      // random changes per second
  bool log_requests = false;
};

// "500ms", "2s", "10m", "1h" or plain seconds → milliseconds; nullopt if malformed.
std::optional<std::int64_t> parseDurationMs(const std::string& text);

class TradecloudServer {
 public:
  explicit TradecloudServer(const ServerOptions& options);
  ~TradecloudServer();
  TradecloudServer(const TradecloudServer&) = delete;
  TradecloudServer& operator=(const TradecloudServer&) = delete;

  // Binds 127.0.0.1:port and starts serving (and the live-change thread). Throws on bind errors.
  void start();
  // Stops accepting, aborts open connections and waits for the worker threads. Idempotent.
  void stop();
  std::uint16_t port() const { return port_; }

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
    k401
  };
  struct Fault {
    FaultKind kind;
    int remaining;
    int delay_ms;
  };
  struct Session {
    std::string account;
    std::int64_t expires_steady_ms;
    std::uint64_t session_id;
  };
  struct RefreshToken {
    std::string account;
    std::uint64_t session_id;
    bool used;
  };
  struct PagingChange {
    int remaining_requests;
    int count;
    bool later;  // change items on pages after the one served (else on pages already served)
    std::string change;  // any | echo | supplier-then-echo | settle (orders only but any)
  };
  enum class Endpoint { kOrders, kOrdersSingleDelivery, kShipments };

  void handleApi(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                 const std::string& body);
  void handleControl(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                     const std::string& body);
  void login(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  void refresh(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  void logout(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  void poll(Endpoint endpoint, Poco::Net::HTTPServerRequest& request,
            Poco::Net::HTTPServerResponse& response, const std::string& body);

  void send(Poco::Net::HTTPServerResponse& response, int status, const std::string& body,
            const std::string& content_type = "application/json; charset=utf-8", bool count = true);
  void sendText(Poco::Net::HTTPServerResponse& response, int status, const std::string& text);

  // The account a request claims (Basic user, a token's or refresh token's owner), or
  // "anonymous". Lock held.
  std::string claimedAccount(const Poco::Net::HTTPServerRequest& request);
  bool checkBasic(const std::string& header) const;
  // The account an email logs in as: 0 for `email` (sees everything), 1..store.accounts for
  // "<local>+<n>@<domain>" of it when the simulator serves several; nullopt for anything else.
  std::optional<int> accountIndex(const std::string& email) const;
  // Issues an access/refresh pair into the response headers. Lock held.
  void issueTokens(Poco::Net::HTTPServerResponse& response, const std::string& account,
                   std::uint64_t session_id);
  std::string randomToken(std::size_t bytes);  // base64url; lock held
  void firePagingChange(Endpoint endpoint, const std::vector<std::string>& ids_in_order,
                        std::int64_t page_end, std::int64_t page_start);  // lock held
  void liveLoop();
  bool sleepInterruptibly(int delay_ms);

  ServerOptions options_;
  std::uint16_t port_ = 0;

  std::mutex mutex_;  // everything below
  TradecloudStore store_;
  std::deque<Fault> faults_;
  std::unordered_map<std::string, Session> access_tokens_;
  std::unordered_map<std::string, RefreshToken> refresh_tokens_;
  std::uint64_t next_session_ = 1;
  std::mt19937_64 token_rng_;
  std::optional<PagingChange> paging_change_;
  std::vector<std::string> paging_changed_ids_;
  bool paging_fired_ = false;
  // Per account: steady ms of every arrival (for max_per_second) and of admitted ones (limiter).
  std::unordered_map<std::string, std::deque<std::int64_t>> arrivals_, admitted_;
  std::map<std::string, std::uint64_t> max_per_second_;
  std::uint64_t total_ = 0, dropped_ = 0, faults_injected_ = 0, rate_limited_ = 0;
  std::uint64_t logins_ = 0, login_failures_ = 0, refreshes_ = 0, refresh_reuse_rejected_ = 0;
  std::uint64_t logouts_ = 0, basic_polls_ = 0, bearer_polls_ = 0, changes_applied_ = 0;
  std::map<int, std::uint64_t> by_status_;
  double live_rate_ = 0;
  bool stopping_ = false;
  std::condition_variable wake_;

  std::thread live_thread_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace ferry::sim::tradecloud
