// Tests of the DuckHub simulator: everything is asserted over real HTTP on 127.0.0.1, as a
// client (the Ferry plugin) would see it. Each test starts its own in-process server; one test
// starts the duckhub-sim program itself.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <Poco/TemporaryFile.h>
#include <Poco/URI.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "DuckHubServer.h"

namespace ferry::sim::duckhub {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

struct Reply {
  int status = 0;
  std::string body;
  bool has_retry_after = false;
  std::string retry_after;
  std::streamsize content_length = -1;
};

Reply call(Poco::Net::HTTPClientSession& session, const std::string& method, const std::string& uri,
           const std::string& key, const std::string& body = "") {
  Poco::Net::HTTPRequest request(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!key.empty()) request.set("Authorization", "Bearer " + key);
  if (!body.empty() || method == "POST" || method == "PATCH") {
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
  }
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  Reply reply;
  reply.status = response.getStatus();
  Poco::StreamCopier::copyToString(in, reply.body);
  reply.has_retry_after = response.has("Retry-After");
  reply.retry_after = response.get("Retry-After", "");
  reply.content_length = response.getContentLength();
  return reply;
}

Reply call(std::uint16_t port, const std::string& method, const std::string& uri,
           const std::string& key, const std::string& body = "", int timeout_ms = 10000) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(static_cast<long>(timeout_ms) * 1000));
  return call(session, method, uri, key, body);
}

Object::Ptr parseObject(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Object::Ptr>();
}

std::string ordersUri(const std::vector<std::pair<std::string, std::string>>& params) {
  Poco::URI uri("/v1/orders");
  for (const auto& [name, value] : params) uri.addQueryParameter(name, value);
  return uri.getPathAndQuery();
}

// An instant a millisecond later than `iso` (which is `…ss.mmmZ`).
std::string plusOneMs(const std::string& iso) { return formatIsoMs(*parseIsoUs(iso) / 1000 + 1); }

class DuckHubSimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void startServer(ServerOptions options) {
    options.store.start_ms = *parseIsoUs("2026-07-05T12:00:00.000Z") / 1000;
    server_ = std::make_unique<DuckHubServer>(options);
    server_->start();
    port_ = server_->port();
    auto keys = parseObject(server_->keysJson())->getArray("venues");
    for (std::size_t i = 0; i < keys->size(); ++i) {
      auto v = keys->getObject(static_cast<unsigned>(i));
      keys_[v->getValue<std::string>("venue")] = v->getValue<std::string>("api_key");
    }
  }

  // Three paid venues of 50 orders and one free venue; no rate limit unless a test wants one.
  void startDefault(bool rate_limit = false) {
    ServerOptions options;
    options.store.seed = 7;
    options.store.free_venue = true;
    options.rate_limit = rate_limit;
    startServer(options);
  }

  Reply get(const std::string& uri, const std::string& venue = "v1") {
    return call(port_, "GET", uri, keys_.at(venue));
  }

  Object::Ptr getJson(const std::string& uri, const std::string& venue = "v1") {
    Reply r = get(uri, venue);
    EXPECT_EQ(r.status, 200) << uri << ": " << r.body;
    return parseObject(r.body);
  }

  Reply control(const std::string& method, const std::string& path, const std::string& body = "") {
    return call(port_, method, path, "", body);
  }

  // Every order of a venue as the API lists it with updatedSince (all pages, limit 100).
  std::vector<Object::Ptr> allByCursor(const std::string& since, const std::string& venue = "v1") {
    std::vector<Object::Ptr> out;
    for (int page = 1;; ++page) {
      auto body = getJson(
          ordersUri({{"updatedSince", since}, {"limit", "100"}, {"page", std::to_string(page)}}),
          venue);
      auto items = body->getArray("items");
      for (std::size_t i = 0; i < items->size(); ++i)
        out.push_back(items->getObject(static_cast<unsigned>(i)));
      if (page >= body->getValue<int>("totalPages")) break;
    }
    return out;
  }

  Object::Ptr findOrderWithStatus(const std::string& status) {
    for (auto& o : allByCursor("2000-01-01T00:00:00Z"))
      if (o->getValue<std::string>("status") == status) return o;
    ADD_FAILURE() << "no order with status " << status;
    return nullptr;
  }

  Reply patch(const std::string& id, const std::string& body, const std::string& venue = "v1") {
    return call(port_, "PATCH", "/v1/orders/" + id + "/status", keys_.at(venue), body);
  }

  void TearDown() override {
    if (server_) server_->stop();
  }

  std::unique_ptr<DuckHubServer> server_;
  std::uint16_t port_ = 0;
  std::map<std::string, std::string> keys_;
};

TEST_F(DuckHubSimTest, AuthErrorsUseTheDocumentedMessagesAndEnvelope) {
  startDefault();
  const std::string uri = "/v1/orders?limit=5";
  struct Case {
    std::string header_key;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "Missing API key"},
      {"abc", "Invalid API key format"},
      {"dk_prod_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Invalid API key format"},
      {"dk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Invalid API key format"},  // 31 chars
      {"dk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Invalid API key"},
      {"dk_test_" + keys_["v1"].substr(8, 31) + "_", "Invalid API key"},
  };
  for (const auto& c : cases) {
    Reply r = call(port_, "GET", uri, c.header_key);
    EXPECT_EQ(r.status, 401) << c.header_key;
    auto body = parseObject(r.body);
    EXPECT_EQ(body->getValue<std::string>("message"), c.message) << c.header_key;
    EXPECT_EQ(body->getValue<int>("statusCode"), 401);
    EXPECT_EQ(body->getValue<std::string>("path"), uri);
    EXPECT_TRUE(parseIsoUs(body->getValue<std::string>("timestamp")).has_value());
  }
  EXPECT_EQ(get(uri).status, 200);
  EXPECT_EQ(keys_["v1"].rfind("dk_test_", 0), 0u);
  EXPECT_EQ(keys_["v1"].size(), 40u);
}

TEST_F(DuckHubSimTest, FreePlanVenueGets403) {
  startDefault();
  Reply r = get("/v1/orders", "free");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(parseObject(r.body)->getValue<std::string>("message"),
            "The Orders API requires a paid plan");
}

TEST_F(DuckHubSimTest, TimestampsMustCarryATimezone) {
  startDefault();
  for (const std::string bad : {"2026-07-05T11:00:00", "2026-07-05T11:00:00.000", "2026-07-05",
                                "yesterday", "2026-13-05T11:00:00Z", "2026-07-05T11:00:00+0200"}) {
    for (const std::string name : {"updatedSince", "since", "until"}) {
      Reply r = get(ordersUri({{name, bad}}));
      EXPECT_EQ(r.status, 400) << name << "=" << bad;
      auto body = parseObject(r.body);
      ASSERT_TRUE(body->has("errors")) << r.body;
      auto errors = body->getArray("errors");
      ASSERT_EQ(errors->size(), 1u);
      EXPECT_NE(errors->getElement<std::string>(0).find(name), std::string::npos);
    }
  }
  EXPECT_EQ(get(ordersUri({{"updatedSince", "2026-07-05T11:00:00Z"}})).status, 200);
  EXPECT_EQ(get(ordersUri({{"updatedSince", "2026-07-05T13:00:00.000+02:00"}})).status, 200);
}

TEST_F(DuckHubSimTest, PagingParametersAreValidated) {
  startDefault();
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"limit", "101"},
                                                        {"limit", "0"},
                                                        {"limit", "-1"},
                                                        {"limit", "ten"},
                                                        {"limit", "5.5"},
                                                        {"page", "0"},
                                                        {"page", "x"},
                                                        {"page", ""},
                                                        {"status", "shipped"}}) {
    Reply r = get(ordersUri({{name, value}}));
    EXPECT_EQ(r.status, 400) << name << "=" << value;
    auto body = parseObject(r.body);
    EXPECT_EQ(body->getValue<int>("statusCode"), 400);
    EXPECT_TRUE(body->has("errors")) << r.body;
  }
  EXPECT_EQ(getJson("/v1/orders?limit=100")->getArray("items")->size(), 50u);
  EXPECT_EQ(getJson("/v1/orders")->getArray("items")->size(), 20u);  // default limit
}

TEST_F(DuckHubSimTest, UpdatedSinceIsInclusive) {
  startDefault();
  auto all = allByCursor("2000-01-01T00:00:00Z");
  ASSERT_EQ(all.size(), 50u);
  const auto& target = all[all.size() / 2];
  const std::string t = target->getValue<std::string>("updatedAt");
  const std::string id = target->getValue<std::string>("id");

  auto at = getJson(ordersUri({{"updatedSince", t}, {"limit", "100"}}));
  std::set<std::string> ids;
  auto items = at->getArray("items");
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto o = items->getObject(static_cast<unsigned>(i));
    ids.insert(o->getValue<std::string>("id"));
    EXPECT_GE(o->getValue<std::string>("updatedAt"), t);
  }
  EXPECT_EQ(ids.count(id), 1u) << "the order updated exactly at updatedSince is returned";
  EXPECT_EQ(items->getObject(0)->getValue<std::string>("updatedAt"), t);

  auto after = getJson(ordersUri({{"updatedSince", plusOneMs(t)}, {"limit", "100"}}));
  auto later = after->getArray("items");
  for (std::size_t i = 0; i < later->size(); ++i)
    EXPECT_NE(later->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"), id);
  EXPECT_LT(after->getValue<int>("total"), at->getValue<int>("total"));

  // The same instant in another offset means the same thing.
  const std::int64_t ms = *parseIsoUs(t) / 1000;
  std::string shifted = formatIsoMs(ms + 2 * 3600 * 1000);
  shifted = shifted.substr(0, shifted.size() - 1) + "+02:00";
  EXPECT_EQ(
      getJson(ordersUri({{"updatedSince", shifted}, {"limit", "100"}}))->getValue<int>("total"),
      at->getValue<int>("total"));
}

TEST_F(DuckHubSimTest, SortsByUpdatedAtThenIdWithCursorAndByCreatedAtDescendingWithout) {
  startDefault();
  auto all = allByCursor("2000-01-01T00:00:00Z");
  ASSERT_EQ(all.size(), 50u);
  int ties = 0;
  for (std::size_t i = 1; i < all.size(); ++i) {
    const auto a = all[i - 1]->getValue<std::string>("updatedAt");
    const auto b = all[i]->getValue<std::string>("updatedAt");
    ASSERT_LE(a, b) << "updatedAt ascending at " << i;
    if (a == b) {
      ++ties;
      EXPECT_LT(all[i - 1]->getValue<std::string>("id"), all[i]->getValue<std::string>("id"))
          << "ties ordered by id";
    }
  }
  EXPECT_GT(ties, 0) << "the data set should contain orders sharing one updatedAt";

  auto plain = getJson("/v1/orders?limit=100")->getArray("items");
  ASSERT_EQ(plain->size(), 50u);
  int created_ties = 0;
  for (unsigned i = 1; i < plain->size(); ++i) {
    const auto a = plain->getObject(i - 1)->getValue<std::string>("createdAt");
    const auto b = plain->getObject(i)->getValue<std::string>("createdAt");
    ASSERT_GE(a, b) << "createdAt descending at " << i;
    if (a == b) {
      ++created_ties;
      EXPECT_LT(plain->getObject(i - 1)->getValue<std::string>("id"),
                plain->getObject(i)->getValue<std::string>("id"));
    }
  }
  EXPECT_GT(created_ties, 0);
}

TEST_F(DuckHubSimTest, TotalsPagesAndAPagePastTheEnd) {
  startDefault();
  std::set<std::string> seen;
  for (int page = 1; page <= 8; ++page) {
    auto body = getJson(ordersUri({{"limit", "7"}, {"page", std::to_string(page)}}));
    EXPECT_EQ(body->getValue<int>("total"), 50);
    EXPECT_EQ(body->getValue<int>("totalPages"), 8);
    auto items = body->getArray("items");
    EXPECT_EQ(items->size(), page < 8 ? 7u : 1u);
    for (unsigned i = 0; i < items->size(); ++i)
      seen.insert(items->getObject(i)->getValue<std::string>("id"));
  }
  EXPECT_EQ(seen.size(), 50u);
  auto past = getJson(ordersUri({{"limit", "7"}, {"page", "9"}}));
  EXPECT_EQ(past->getArray("items")->size(), 0u);
  EXPECT_EQ(past->getValue<int>("total"), 50);
  auto nothing = getJson(ordersUri({{"updatedSince", "2030-01-01T00:00:00Z"}}));
  EXPECT_EQ(nothing->getValue<int>("total"), 0);
  EXPECT_EQ(nothing->getValue<int>("totalPages"), 0);
}

TEST_F(DuckHubSimTest, FiltersByStatusAndCreatedAtWindow) {
  startDefault();
  auto news = getJson("/v1/orders?status=new&limit=100");
  auto items = news->getArray("items");
  ASSERT_GT(items->size(), 0u);
  for (unsigned i = 0; i < items->size(); ++i)
    EXPECT_EQ(items->getObject(i)->getValue<std::string>("status"), "new");
  EXPECT_LT(news->getValue<int>("total"), 50);

  auto window = getJson(ordersUri({{"since", "2026-07-05T11:20:00Z"},
                                   {"until", "2026-07-05T11:40:00.000Z"},
                                   {"limit", "100"}}));
  auto w = window->getArray("items");
  ASSERT_GT(w->size(), 0u);
  EXPECT_LT(w->size(), 50u);
  for (unsigned i = 0; i < w->size(); ++i) {
    const auto created = w->getObject(i)->getValue<std::string>("createdAt");
    EXPECT_GE(created, "2026-07-05T11:20:00.000Z");
    EXPECT_LE(created, "2026-07-05T11:40:00.000Z");
  }
}

TEST_F(DuckHubSimTest, OrdersCarryEveryDocumentedFieldAndAwkwardText) {
  startDefault();
  bool newline = false, non_ascii = false, injection = false, comma_quote = false, nulls = false;
  for (const std::string venue : {"v1", "v2", "v3"}) {
    for (auto& o : allByCursor("2000-01-01T00:00:00Z", venue)) {
      for (const char* field : {"id",
                                "orderNumber",
                                "status",
                                "type",
                                "customerName",
                                "customerPhone",
                                "customerEmail",
                                "deliveryAddress",
                                "deliveryNotes",
                                "paymentMethod",
                                "comment",
                                "changeFromAmount",
                                "scheduledFor",
                                "currency",
                                "subtotalAmount",
                                "deliveryFee",
                                "discountAmount",
                                "totalAmount",
                                "createdAt",
                                "updatedAt",
                                "confirmedAt",
                                "completedAt",
                                "items",
                                "channel"}) {
        ASSERT_TRUE(o->has(field)) << field;
      }
      EXPECT_EQ(o->getValue<std::string>("id").size(), 25u);
      EXPECT_EQ(o->getValue<std::string>("updatedAt").size(), 24u);  // …ss.mmmZ
      EXPECT_EQ(o->getValue<std::int64_t>("totalAmount"),
                o->getValue<std::int64_t>("subtotalAmount") +
                    o->getValue<std::int64_t>("deliveryFee") -
                    o->getValue<std::int64_t>("discountAmount"));
      auto lines = o->getArray("items");
      ASSERT_GT(lines->size(), 0u);
      for (unsigned i = 0; i < lines->size(); ++i) {
        auto line = lines->getObject(i);
        for (const char* field : {"productExternalId", "productName", "quantity", "unitPrice",
                                  "totalPrice", "modifiers"})
          EXPECT_TRUE(line->has(field)) << field;
      }
      for (const char* field : {"customerName", "comment", "deliveryNotes"}) {
        if (o->isNull(field)) {
          nulls = true;
          continue;
        }
        const auto text = o->getValue<std::string>(field);
        newline |= text.find('\n') != std::string::npos;
        non_ascii |= std::any_of(text.begin(), text.end(), [](char c) { return c & 0x80; });
        injection |= !text.empty() && (text[0] == '=' || text[0] == '-');
        comma_quote |= text.find(',') != std::string::npos || text.find('"') != std::string::npos;
      }
    }
  }
  EXPECT_TRUE(newline);
  EXPECT_TRUE(non_ascii);
  EXPECT_TRUE(injection);
  EXPECT_TRUE(comma_quote);
  EXPECT_TRUE(nulls);
}

TEST_F(DuckHubSimTest, GetOneOrderById) {
  startDefault();
  auto first = getJson("/v1/orders?limit=1")->getArray("items")->getObject(0);
  const auto id = first->getValue<std::string>("id");
  auto one = getJson("/v1/orders/" + id);
  EXPECT_EQ(one->getValue<std::string>("id"), id);
  EXPECT_EQ(one->getValue<std::string>("updatedAt"), first->getValue<std::string>("updatedAt"));
  Reply missing = get("/v1/orders/cnotthere000000000000000000");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(parseObject(missing.body)->getValue<std::string>("message"), "Order not found");
  // Another venue's order is not visible with this key.
  EXPECT_EQ(get("/v1/orders/" + id, "v2").status, 404);
}

TEST_F(DuckHubSimTest, PatchLegalSameIllegalUnknownField) {
  startDefault();
  auto order = findOrderWithStatus("new");
  ASSERT_TRUE(order);
  const auto id = order->getValue<std::string>("id");
  const auto before = order->getValue<std::string>("updatedAt");
  ASSERT_TRUE(order->isNull("confirmedAt"));

  Reply ok = patch(id, R"({"status":"confirmed"})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto body = parseObject(ok.body);
  EXPECT_EQ(body->getValue<std::string>("id"), id);
  EXPECT_EQ(body->getValue<std::string>("status"), "confirmed");
  EXPECT_EQ(body->getValue<std::int64_t>("orderNumber"),
            order->getValue<std::int64_t>("orderNumber"));
  const auto bumped = body->getValue<std::string>("updatedAt");
  EXPECT_GT(bumped, before);
  auto fresh = getJson("/v1/orders/" + id);
  EXPECT_EQ(fresh->getValue<std::string>("status"), "confirmed");
  EXPECT_EQ(fresh->getValue<std::string>("confirmedAt"), bumped);
  EXPECT_EQ(fresh->getValue<std::string>("updatedAt"), bumped);
  // The change is visible to a cursor at the new updatedAt.
  auto cursor = getJson(ordersUri({{"updatedSince", bumped}}))->getArray("items");
  ASSERT_GE(cursor->size(), 1u);
  EXPECT_EQ(cursor->getObject(cursor->size() - 1)->getValue<std::string>("id"), id);

  Reply same = patch(id, R"({"status":"confirmed"})");
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(parseObject(same.body)->getValue<std::string>("updatedAt"), bumped);

  Reply illegal = patch(id, R"({"status":"new"})");
  EXPECT_EQ(illegal.status, 422);
  EXPECT_EQ(parseObject(illegal.body)
                ->getValue<std::string>("message")
                .rfind("Invalid status transition: 'confirmed' -> 'new'. ", 0),
            0u)
      << illegal.body;
  EXPECT_EQ(getJson("/v1/orders/" + id)->getValue<std::string>("updatedAt"), bumped);

  Reply unknown_field = patch(id, R"({"status":"preparing","note":"x"})");
  EXPECT_EQ(unknown_field.status, 400);
  EXPECT_TRUE(parseObject(unknown_field.body)->has("errors"));
  EXPECT_EQ(patch(id, R"({"status":"eaten"})").status, 400);
  EXPECT_EQ(patch(id, R"({})").status, 400);
  EXPECT_EQ(patch(id, "not json").status, 400);
  EXPECT_EQ(getJson("/v1/orders/" + id)->getValue<std::string>("status"), "confirmed");

  Reply missing = patch("cnotthere000000000000000000", R"({"status":"confirmed"})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(parseObject(missing.body)->getValue<std::string>("message"), "Order not found");

  auto stats = parseObject(control("GET", "/_sim/requests").body);
  auto patches = stats->getArray("patches");
  ASSERT_EQ(patches->size(), 8u);
  EXPECT_EQ(patches->getObject(0)->getValue<std::string>("id"), id);
  EXPECT_EQ(patches->getObject(0)->getValue<std::string>("status"), "confirmed");
  EXPECT_EQ(patches->getObject(0)->getValue<int>("code"), 200);
  EXPECT_EQ(patches->getObject(2)->getValue<int>("code"), 422);
}

TEST_F(DuckHubSimTest, EveryLegalChangeBumpsUpdatedAtStrictly) {
  startDefault();
  auto order = findOrderWithStatus("new");
  ASSERT_TRUE(order);
  const auto id = order->getValue<std::string>("id");
  std::string last = order->getValue<std::string>("updatedAt");
  // Back to back, usually within one millisecond: each must still be strictly later.
  for (const std::string status : {"confirmed", "preparing", "delivering", "completed"}) {
    Reply r = patch(id, "{\"status\":\"" + status + "\"}");
    ASSERT_EQ(r.status, 200) << status << ": " << r.body;
    const auto updated = parseObject(r.body)->getValue<std::string>("updatedAt");
    EXPECT_GT(updated, last) << status;
    last = updated;
  }
  auto done = getJson("/v1/orders/" + id);
  EXPECT_EQ(done->getValue<std::string>("completedAt"), last);
  EXPECT_FALSE(done->isNull("confirmedAt"));
  Reply illegal = patch(id, R"({"status":"preparing"})");
  EXPECT_EQ(illegal.status, 422);
  EXPECT_EQ(parseObject(illegal.body)
                ->getValue<std::string>("message")
                .rfind("Invalid status transition: 'completed' -> 'preparing'. ", 0),
            0u);
  EXPECT_EQ(patch(id, R"({"status":"cancelled"})").status, 422);
}

TEST_F(DuckHubSimTest, RateLimitRejectsAndTheStatisticsCountEveryRequest) {
  startDefault(/*rate_limit=*/true);
  Poco::Net::HTTPClientSession session("127.0.0.1", port_);  // keep-alive, like a real client
  session.setTimeout(Poco::Timespan(10, 0));
  std::vector<Reply> replies;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 11; ++i)
    replies.push_back(call(session, "GET", "/v1/orders?limit=1", keys_["v1"]));
  const bool quick = std::chrono::steady_clock::now() - begin < std::chrono::milliseconds(900);
  // A very slow machine may not fit 11 requests in a second; the 10-second window catches it.
  for (int i = 11; i < 60 && (!quick || i < 14); ++i)
    replies.push_back(call(session, "GET", "/v1/orders?limit=1", keys_["v1"]));

  int ok = 0, limited = 0, with_retry_after = 0;
  for (const auto& r : replies) {
    if (r.status == 200) ++ok;
    if (r.status != 429) continue;
    ++limited;
    auto body = parseObject(r.body);
    EXPECT_EQ(body->getValue<std::string>("message"), "ThrottlerException: Too Many Requests");
    if (r.has_retry_after) {
      ++with_retry_after;
      EXPECT_GE(std::stoi(r.retry_after), 1);
    }
  }
  EXPECT_GE(ok, 10);
  ASSERT_GE(limited, 1);
  if (quick) {
    EXPECT_EQ(replies[10].status, 429) << "the 11th request within one second";
    EXPECT_GE(limited, 3);
    EXPECT_GE(with_retry_after, 1);
    EXPECT_LT(with_retry_after, limited) << "Retry-After must sometimes be missing";
  }

  // The control API is neither rate-limited nor counted.
  Reply stats_reply = control("GET", "/_sim/requests");
  ASSERT_EQ(stats_reply.status, 200);
  auto stats = parseObject(stats_reply.body);
  EXPECT_EQ(stats->getValue<std::size_t>("total"), replies.size());
  EXPECT_EQ(stats->getObject("by_status")->getValue<int>("429"), limited);
  EXPECT_EQ(stats->getObject("by_status")->getValue<int>("200"), ok);
  EXPECT_EQ(stats->getValue<std::size_t>("max_in_60s"), replies.size());
  if (quick) EXPECT_GE(stats->getValue<int>("max_in_1s"), 11);
  EXPECT_GE(stats->getValue<int>("max_in_10s"), stats->getValue<int>("max_in_1s"));

  ASSERT_EQ(control("POST", "/_sim/reset-stats").status, 200);
  auto reset = parseObject(control("GET", "/_sim/requests").body);
  EXPECT_EQ(reset->getValue<int>("total"), 0);
  EXPECT_EQ(reset->getValue<int>("max_in_1s"), 0);
}

TEST_F(DuckHubSimTest, NoRateLimitSwitchLetsBurstsThrough) {
  startDefault(/*rate_limit=*/false);
  Poco::Net::HTTPClientSession session("127.0.0.1", port_);
  for (int i = 0; i < 30; ++i)
    ASSERT_EQ(call(session, "GET", "/v1/orders?limit=1", keys_["v1"]).status, 200) << i;
  EXPECT_EQ(parseObject(control("GET", "/_sim/requests").body)->getValue<int>("max_in_60s"), 30);
}

TEST_F(DuckHubSimTest, InjectedStatusFaults) {
  startDefault();
  const std::string uri = "/v1/orders?limit=2";
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"429"})").status, 200);
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"429-retry-after"})").status, 200);
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"500","count":2})").status, 200);
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"502"})").status, 200);
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"503"})").status, 200);
  // Control requests are never faulted.
  EXPECT_EQ(control("GET", "/_sim/state?venue=v1").status, 200);

  Reply r429 = get(uri);
  EXPECT_EQ(r429.status, 429);
  EXPECT_FALSE(r429.has_retry_after);
  EXPECT_EQ(parseObject(r429.body)->getValue<std::string>("message"),
            "ThrottlerException: Too Many Requests");
  Reply r429ra = get(uri);
  EXPECT_EQ(r429ra.status, 429);
  EXPECT_TRUE(r429ra.has_retry_after);
  EXPECT_EQ(get(uri).status, 500);
  EXPECT_EQ(get(uri).status, 500);
  EXPECT_EQ(get(uri).status, 502);
  EXPECT_EQ(get(uri).status, 503);
  EXPECT_EQ(get(uri).status, 200);  // faults used up

  auto stats = parseObject(control("GET", "/_sim/requests").body);
  EXPECT_EQ(stats->getValue<int>("faults_injected"), 6);
  EXPECT_EQ(stats->getObject("by_status")->getValue<int>("500"), 2);
  EXPECT_EQ(control("POST", "/_sim/faults", R"({"kind":"teapot"})").status, 400);
}

TEST_F(DuckHubSimTest, SlowFaultOutlastsAClientTimeoutOrAnswersLate) {
  startDefault();
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"slow","delay_ms":3000})").status, 200);
  EXPECT_THROW(call(port_, "GET", "/v1/orders", keys_["v1"], "", 300), Poco::TimeoutException);

  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"slow","delay_ms":400})").status, 200);
  const auto begin = std::chrono::steady_clock::now();
  Reply late = call(port_, "GET", "/v1/orders?limit=3", keys_["v1"], "", 10000);
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(350));
  EXPECT_EQ(late.status, 200);
  EXPECT_EQ(parseObject(late.body)->getArray("items")->size(), 3u);
}

TEST_F(DuckHubSimTest, HoldFaultAppliesTheRequestThenAnswersLateAndCanWaitForItsTurn) {
  startDefault();
  auto order = findOrderWithStatus("new");
  ASSERT_TRUE(order);
  const auto id = order->getValue<std::string>("id");
  // Only PATCHes take it, and only after one PATCH went through: the GET and the first PATCH
  // (an illegal one) are answered at once.
  ASSERT_EQ(control("POST", "/_sim/faults",
                    R"({"kind":"hold","method":"PATCH","after_requests":1,"delay_ms":3000})")
                .status,
            200);
  EXPECT_EQ(get("/v1/orders?limit=1").status, 200);
  EXPECT_EQ(patch(id, R"({"status":"preparing"})").status, 422);
  EXPECT_EQ(parseObject(control("GET", "/_sim/requests").body)->getValue<int>("faults_pending"), 1);
  // The held PATCH is written at once, but its answer outlasts the client's timeout.
  EXPECT_THROW(call(port_, "PATCH", "/v1/orders/" + id + "/status", keys_["v1"],
                    R"({"status":"confirmed"})", 300),
               Poco::TimeoutException);
  EXPECT_EQ(getJson("/v1/orders/" + id)->getValue<std::string>("status"), "confirmed");
  auto stats = parseObject(control("GET", "/_sim/requests").body);
  EXPECT_EQ(stats->getValue<int>("faults_pending"), 0);
  EXPECT_EQ(stats->getValue<int>("faults_injected"), 1);
  EXPECT_EQ(control("POST", "/_sim/faults", R"({"kind":"hold","method":"PUT"})").status, 400);
}

TEST_F(DuckHubSimTest, ChangeBeforePatchLetsTheVenueEditOrMoveTheOrderFirst) {
  startDefault();
  std::vector<Object::Ptr> fresh;
  for (auto& o : allByCursor("2000-01-01T00:00:00Z"))
    if (o->getValue<std::string>("status") == "new") fresh.push_back(o);
  ASSERT_GE(fresh.size(), 3u);
  ASSERT_EQ(
      control("POST", "/_sim/change-before-patch", R"({"venue":"v1","change":"edit","count":1})")
          .status,
      200);
  ASSERT_EQ(control("POST", "/_sim/change-before-patch", R"({"change":"confirmed"})").status, 200);
  EXPECT_EQ(control("POST", "/_sim/change-before-patch", R"({"change":"eaten"})").status, 400);
  EXPECT_EQ(
      control("POST", "/_sim/change-before-patch", R"({"venue":"v9","change":"edit"})").status,
      404);

  // 1. The venue adds an item, then our PATCH confirms: the answer's version has both.
  const auto edited_id = fresh[0]->getValue<std::string>("id");
  Reply r = patch(edited_id, R"({"status":"confirmed"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto edited = getJson("/v1/orders/" + edited_id);
  EXPECT_EQ(edited->getValue<std::string>("status"), "confirmed");
  EXPECT_EQ(edited->getArray("items")->size(), fresh[0]->getArray("items")->size() + 1);
  const auto added = edited->getArray("items")->getObject(
      static_cast<unsigned>(edited->getArray("items")->size() - 1));
  EXPECT_EQ(edited->getValue<std::int64_t>("subtotalAmount"),
            fresh[0]->getValue<std::int64_t>("subtotalAmount") +
                added->getValue<std::int64_t>("totalPrice"));
  EXPECT_EQ(edited->getValue<std::int64_t>("totalAmount"),
            edited->getValue<std::int64_t>("subtotalAmount") +
                edited->getValue<std::int64_t>("deliveryFee") -
                edited->getValue<std::int64_t>("discountAmount"));
  EXPECT_GT(edited->getValue<std::string>("updatedAt"),
            fresh[0]->getValue<std::string>("updatedAt"));

  // 2. The staff confirm first: our PATCH to confirmed is then the same status, nothing written.
  const auto confirmed_id = fresh[1]->getValue<std::string>("id");
  r = patch(confirmed_id, R"({"status":"confirmed"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto confirmed = getJson("/v1/orders/" + confirmed_id);
  EXPECT_EQ(parseObject(r.body)->getValue<std::string>("updatedAt"),
            confirmed->getValue<std::string>("updatedAt"));
  EXPECT_EQ(confirmed->getValue<std::string>("confirmedAt"),
            confirmed->getValue<std::string>("updatedAt"));

  // 3. Nothing armed any more: a plain PATCH.
  const auto plain_id = fresh[2]->getValue<std::string>("id");
  ASSERT_EQ(patch(plain_id, R"({"status":"cancelled"})").status, 200);
  EXPECT_EQ(getJson("/v1/orders/" + plain_id)->getArray("items")->size(),
            fresh[2]->getArray("items")->size());

  auto stats = parseObject(control("GET", "/_sim/requests").body);
  auto changed = stats->getArray("changed_before_patch");
  ASSERT_EQ(changed->size(), 2u);
  EXPECT_EQ(changed->getObject(0)->getValue<std::string>("id"), edited_id);
  EXPECT_EQ(changed->getObject(0)->getValue<std::string>("change"), "edit");
  EXPECT_EQ(changed->getObject(1)->getValue<std::string>("id"), confirmed_id);
  EXPECT_EQ(changed->getObject(1)->getValue<std::string>("change"), "confirmed");
  EXPECT_EQ(stats->getValue<int>("changes_applied"), 2);
}

TEST_F(DuckHubSimTest, DropMalformedAndTruncatedBodies) {
  startDefault();
  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"drop"})").status, 200);
  EXPECT_THROW(get("/v1/orders"), Poco::Exception);

  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"malformed"})").status, 200);
  Reply malformed = get("/v1/orders");
  EXPECT_EQ(malformed.status, 200);
  EXPECT_ANY_THROW(parseObject(malformed.body));

  ASSERT_EQ(control("POST", "/_sim/faults", R"({"kind":"truncated"})").status, 200);
  // Poco's client either throws on the early end of the body or returns what arrived.
  try {
    Reply truncated = get("/v1/orders");
    EXPECT_EQ(truncated.status, 200);
    ASSERT_GT(truncated.content_length, 0);
    EXPECT_LT(static_cast<std::streamsize>(truncated.body.size()), truncated.content_length);
    EXPECT_ANY_THROW(parseObject(truncated.body));
  } catch (const Poco::Exception&) {
  }

  EXPECT_EQ(get("/v1/orders").status, 200);
  auto stats = parseObject(control("GET", "/_sim/requests").body);
  EXPECT_EQ(stats->getValue<int>("dropped"), 1);
  EXPECT_EQ(stats->getValue<int>("faults_injected"), 3);
}

TEST_F(DuckHubSimTest, KeepAliveConnectionServesManyRequests) {
  startDefault();
  Poco::Net::HTTPClientSession session("127.0.0.1", port_);
  session.setKeepAlive(true);
  for (int i = 0; i < 20; ++i) {
    Reply r =
        call(session, "GET", "/v1/orders?limit=5&page=" + std::to_string(i % 10 + 1), keys_["v2"]);
    ASSERT_EQ(r.status, 200);
  }
  auto order = getJson("/v1/orders?limit=1", "v2")->getArray("items")->getObject(0);
  // A PATCH with a body on the same connection must not disturb the next request.
  Reply p = call(session, "PATCH", "/v1/orders/" + order->getValue<std::string>("id") + "/status",
                 keys_["v2"], R"({"status":"cancelled","x":1})");
  EXPECT_EQ(p.status, 400);
  EXPECT_EQ(call(session, "GET", "/v1/orders?limit=1", keys_["v2"]).status, 200);
}

// The naive loop of the DuckHub guide: a fixed updatedSince and page = 1, 2, 3 …
std::set<std::string> naivePageLoop(DuckHubSimTest* test, const std::string& since,
                                    const std::function<Object::Ptr(const std::string&)>& get) {
  std::set<std::string> ids;
  int total_pages = 1;
  for (int page = 1; page <= total_pages; ++page) {
    auto body =
        get(ordersUri({{"updatedSince", since}, {"limit", "10"}, {"page", std::to_string(page)}}));
    total_pages = body->getValue<int>("totalPages");
    auto items = body->getArray("items");
    for (unsigned i = 0; i < items->size(); ++i)
      ids.insert(items->getObject(i)->getValue<std::string>("id"));
  }
  (void)test;
  return ids;
}

TEST_F(DuckHubSimTest, ChangeWhilePagingMakesANaivePageLoopLoseAnOrder) {
  startDefault();
  const std::string since = "2000-01-01T00:00:00Z";
  auto fetch = [this](const std::string& uri) { return getJson(uri); };

  // Undisturbed, the naive loop sees every order.
  EXPECT_EQ(naivePageLoop(this, since, fetch).size(), 50u);

  ASSERT_EQ(
      control("POST", "/_sim/change-while-paging", R"({"after_requests":1,"count":1})").status,
      200);
  const auto naive = naivePageLoop(this, since, fetch);
  std::set<std::string> now;
  for (auto& o : allByCursor(since)) now.insert(o->getValue<std::string>("id"));
  ASSERT_EQ(now.size(), 50u);
  std::vector<std::string> lost;
  for (const auto& id : now)
    if (!naive.count(id)) lost.push_back(id);
  EXPECT_GE(lost.size(), 1u) << "the naive loop should miss the order pushed across a page";

  auto stats = parseObject(control("GET", "/_sim/requests").body);
  auto cwp = stats->getObject("change_while_paging");
  EXPECT_EQ(cwp->getValue<int>("fired"), 1);
  EXPECT_FALSE(cwp->getValue<bool>("armed"));
  ASSERT_EQ(cwp->getArray("changed")->size(), 1u);
  EXPECT_EQ(stats->getValue<int>("changes_applied"), 1);
  // The changed order itself was read (before and after its move); the lost one is another.
  const auto changed = cwp->getArray("changed")->getElement<std::string>(0);
  EXPECT_TRUE(naive.count(changed));
  EXPECT_EQ(std::count(lost.begin(), lost.end(), changed), 0);
}

TEST_F(DuckHubSimTest, StateEndpointMatchesTheApi) {
  startDefault();
  ASSERT_EQ(control("POST", "/_sim/change", R"({"count":5,"venue":"v1"})").status, 200);
  auto state = parseObject(control("GET", "/_sim/state?venue=v1").body);
  auto venues = state->getArray("venues");
  ASSERT_EQ(venues->size(), 1u);
  auto v1 = venues->getObject(0);
  EXPECT_EQ(v1->getValue<std::string>("venue"), "v1");
  EXPECT_EQ(v1->getValue<std::string>("api_key"), keys_["v1"]);
  std::map<std::string, std::pair<std::string, std::string>> expected;
  auto orders = v1->getArray("orders");
  for (unsigned i = 0; i < orders->size(); ++i) {
    auto o = orders->getObject(i);
    expected[o->getValue<std::string>("id")] = {o->getValue<std::string>("status"),
                                                o->getValue<std::string>("updatedAt")};
  }
  std::map<std::string, std::pair<std::string, std::string>> served;
  for (int page = 1; page <= 2; ++page) {
    auto items = getJson("/v1/orders?limit=100&page=" + std::to_string(page))->getArray("items");
    for (unsigned i = 0; i < items->size(); ++i) {
      auto o = items->getObject(i);
      served[o->getValue<std::string>("id")] = {o->getValue<std::string>("status"),
                                                o->getValue<std::string>("updatedAt")};
    }
  }
  EXPECT_GE(expected.size(), 50u);
  EXPECT_EQ(served, expected);

  auto everything = parseObject(control("GET", "/_sim/state").body)->getArray("venues");
  EXPECT_EQ(everything->size(), 4u);  // v1..v3 and the free venue
  EXPECT_EQ(control("GET", "/_sim/state?venue=nope").status, 404);
}

TEST_F(DuckHubSimTest, ChangeEndpointMovesOrdersPastTheCursor) {
  startDefault();
  auto all = allByCursor("2000-01-01T00:00:00Z", "v2");
  const std::string newest = all.back()->getValue<std::string>("updatedAt");
  Reply r = control("POST", "/_sim/change", R"({"count":4,"venue":"v2"})");
  ASSERT_EQ(r.status, 200);
  auto changed = parseObject(r.body)->getArray("changed");
  ASSERT_EQ(changed->size(), 4u);
  std::set<std::string> after;
  for (auto& o : allByCursor(plusOneMs(newest), "v2")) after.insert(o->getValue<std::string>("id"));
  for (unsigned i = 0; i < changed->size(); ++i)
    EXPECT_EQ(after.count(changed->getElement<std::string>(i)), 1u);
  EXPECT_EQ(parseObject(control("GET", "/_sim/requests").body)->getValue<int>("changes_applied"),
            4);
  EXPECT_EQ(control("POST", "/_sim/change", R"({"venue":"nope"})").status, 404);
}

TEST_F(DuckHubSimTest, LiveRateAppliesChangesUntilStopped) {
  startDefault();
  ASSERT_EQ(control("POST", "/_sim/live", R"({"rate":40})").status, 200);
  int applied = 0;
  for (int i = 0; i < 100 && applied < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    applied = parseObject(control("GET", "/_sim/requests").body)->getValue<int>("changes_applied");
  }
  EXPECT_GE(applied, 5);
  ASSERT_EQ(control("POST", "/_sim/live", R"({"rate":0})").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int stopped =
      parseObject(control("GET", "/_sim/requests").body)->getValue<int>("changes_applied");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(parseObject(control("GET", "/_sim/requests").body)->getValue<int>("changes_applied"),
            stopped);
}

TEST_F(DuckHubSimTest, CacheServesIdenticalBodiesUntilSomethingChanges) {
  ServerOptions options;
  options.cache = true;
  options.rate_limit = false;
  startServer(options);
  const std::string uri = ordersUri({{"updatedSince", "2026-07-05T11:30:00Z"}, {"limit", "100"}});
  Reply a = get(uri);
  Reply b = get(uri);
  EXPECT_EQ(a.body, b.body);
  auto changed = parseObject(control("POST", "/_sim/change", R"({"venue":"v1"})").body)
                     ->getArray("changed")
                     ->getElement<std::string>(0);
  Reply c = get(uri);
  EXPECT_NE(c.body, a.body);
  EXPECT_NE(c.body.find(changed), std::string::npos);
}

TEST_F(DuckHubSimTest, SameSeedSameDataDifferentSeedDifferentData) {
  auto pageOf = [](std::uint64_t seed) {
    ServerOptions options;
    options.store.seed = seed;
    options.store.start_ms = *parseIsoUs("2026-07-05T12:00:00.000Z") / 1000;
    options.rate_limit = false;
    DuckHubServer server(options);
    server.start();
    auto keys = parseObject(server.keysJson())->getArray("venues");
    std::string out = server.keysJson();
    for (unsigned v = 0; v < keys->size(); ++v) {
      out += call(server.port(), "GET", "/v1/orders?limit=100",
                  keys->getObject(v)->getValue<std::string>("api_key"))
                 .body;
    }
    server.stop();
    return out;
  };
  const auto first = pageOf(42);
  EXPECT_GT(first.size(), 3u * 20000u);
  EXPECT_EQ(pageOf(42), first);
  EXPECT_NE(pageOf(43), first);
}

TEST(DuckHubStoreTest, ParsesOnlyTimestampsWithAZone) {
  EXPECT_EQ(parseIsoUs("2026-07-05T12:00:00.000Z"), parseIsoUs("2026-07-05T14:00:00+02:00"));
  EXPECT_EQ(*parseIsoUs("1970-01-01T00:00:00.0015Z"), 1500);
  EXPECT_EQ(formatIsoMs(*parseIsoUs("2026-07-05T12:01:05.000Z") / 1000),
            "2026-07-05T12:01:05.000Z");
  EXPECT_FALSE(parseIsoUs("2026-07-05T12:00:00"));
  EXPECT_FALSE(parseIsoUs("2026-07-05T12:00:00Zjunk"));
  EXPECT_FALSE(parseIsoUs("2026-02-30T12:00:00Z"));
}

TEST(DuckHubStoreTest, GeneratesALargeVenueQuickly) {
  StoreOptions options;
  options.venues = 1;
  options.orders_per_venue = 100000;
  options.start_ms = *parseIsoUs("2026-07-05T12:00:00.000Z") / 1000;
  const auto begin = std::chrono::steady_clock::now();
  DuckHubStore store(options);
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  Venue& venue = *store.venues().front();
  ASSERT_EQ(venue.orders.size(), 100000u);
  ASSERT_EQ(venue.by_id.size(), 100000u);
  // Generous: the brief asks for "a few seconds"; this catches an accidental quadratic.
  EXPECT_LT(elapsed, std::chrono::seconds(20));
  OrderQuery query;
  query.updated_since_us = 0;
  query.limit = 100;
  query.page = 1000;
  auto page = parseObject(store.renderPage(venue, query));
  EXPECT_EQ(page->getValue<int>("total"), 100000);
  EXPECT_EQ(page->getValue<int>("totalPages"), 1000);
  EXPECT_EQ(page->getArray("items")->size(), 100u);
}

// The program itself, as other tests start it: the port file, the keys file, the stdout line,
// a working API and a clean exit on SIGTERM.
TEST(DuckHubSimProgramTest, StartsWritesItsFilesServesAndStopsOnSignal) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("duckhub-sim-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string port_file = (dir / "port").string();
  const std::string keys_file = (dir / "keys.json").string();
  Poco::Pipe out_pipe;
  Poco::Process::Args args = {
      "--port-file", port_file, "--keys-file", keys_file,      "--venues", "2",
      "--orders=10", "--seed",  "9",           "--free-venue", "--quiet"};
  Poco::ProcessHandle handle =
      Poco::Process::launch(DUCKHUB_SIM_BINARY, args, nullptr, &out_pipe, nullptr);
  Poco::PipeInputStream out(out_pipe);
  std::string line;
  std::getline(out, line);
  ASSERT_EQ(line.rfind("duckhub-sim listening on 127.0.0.1:", 0), 0u) << line;
  const int port_from_line = std::stoi(line.substr(line.rfind(':') + 1));

  std::ifstream port_in(port_file);
  int port = 0;
  port_in >> port;
  EXPECT_EQ(port, port_from_line);

  std::ifstream keys_in(keys_file);
  std::string keys_text((std::istreambuf_iterator<char>(keys_in)), {});
  auto venues = parseObject(keys_text)->getArray("venues");
  ASSERT_EQ(venues->size(), 3u);
  EXPECT_EQ(venues->getObject(0)->getValue<std::string>("venue"), "v1");
  EXPECT_EQ(venues->getObject(0)->getValue<std::string>("plan"), "paid");
  EXPECT_EQ(venues->getObject(2)->getValue<std::string>("plan"), "free");
  Reply r = call(static_cast<std::uint16_t>(port), "GET", "/v1/orders?limit=100",
                 venues->getObject(1)->getValue<std::string>("api_key"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(parseObject(r.body)->getValue<int>("total"), 10);

  ::kill(handle.id(), SIGTERM);
  EXPECT_EQ(handle.wait(), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ferry::sim::duckhub
