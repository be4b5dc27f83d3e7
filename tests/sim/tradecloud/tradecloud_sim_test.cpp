// Tests of the Tradecloud simulator: everything is asserted over real HTTP on 127.0.0.1, as a
// client (the Ferry plugins) would see it. Each test starts its own in-process server; one test
// starts the tradecloud-sim program itself.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <Poco/TemporaryFile.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "TradecloudServer.h"

namespace ferry::sim::tradecloud {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

constexpr const char* kEmail = "integration@example.test";
constexpr const char* kPassword = "secret";
constexpr const char* kEarly = "2000-01-01T00:00:00.000Z";
constexpr const char* kOrdersPath = "/v2/order-search/poll";
constexpr const char* kSingleDeliveryPath = "/v2/order-search/poll/single-delivery";
constexpr const char* kShipmentsPath = "/v2/shipment/poll";

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

Reply call(Poco::Net::HTTPClientSession& session, const std::string& method, const std::string& uri,
           const Headers& headers = {}, const std::string& body = "") {
  Poco::Net::HTTPRequest request(method, uri, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [name, value] : headers) request.set(name, value);
  if (!body.empty() || method == "POST") {
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
  }
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  Reply reply;
  reply.status = response.getStatus();
  Poco::StreamCopier::copyToString(in, reply.body);
  reply.content_type = response.getContentType();
  for (const auto& [name, value] : response) reply.headers[name] = value;
  return reply;
}

Reply call(std::uint16_t port, const std::string& method, const std::string& uri,
           const Headers& headers = {}, const std::string& body = "", int timeout_ms = 10000) {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(static_cast<long>(timeout_ms) * 1000));
  return call(session, method, uri, headers, body);
}

std::string basic(const std::string& email, const std::string& password) {
  Poco::Net::HTTPRequest request;
  Poco::Net::HTTPBasicCredentials(email, password).authenticate(request);
  return request.get("Authorization");
}

Object::Ptr parseObject(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Object::Ptr>();
}

std::string stringify(const Poco::Dynamic::Var& value) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(value, out);
  return out.str();
}

std::vector<Object::Ptr> objects(const Array::Ptr& array) {
  std::vector<Object::Ptr> out;
  for (std::size_t i = 0; i < array->size(); ++i) {
    out.push_back(array->getObject(static_cast<unsigned>(i)));
  }
  return out;
}

std::string pollBody(const std::string& after, int offset, int limit,
                     const std::string& extra_filters = "") {
  return "{\"filters\":{\"lastUpdatedAfter\":\"" + after + "\"" + extra_filters +
         "},\"offset\":" + std::to_string(offset) + ",\"limit\":" + std::to_string(limit) + "}";
}

std::string plusMs(const std::string& iso, std::int64_t ms) {
  return formatIsoMs(*parseIsoUs(iso) / 1000 + ms);
}

class TradecloudSimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  // Rate limit off and no Basic delay unless a test asks for them: the tests below are about
  // other things and must not trip over either.
  static ServerOptions defaults() {
    ServerOptions options;
    options.store.seed = 7;
    options.store.start_ms = *parseIsoUs("2025-04-23T10:00:00.000Z") / 1000;
    options.rate_limit = 0;
    options.basic_delay_ms = 0;
    return options;
  }

  void startServer(const ServerOptions& options = defaults()) {
    server_ = std::make_unique<TradecloudServer>(options);
    server_->start();
    port_ = server_->port();
  }

  std::string login() {
    Reply r = call(port_, "GET", "/v2/authentication/login",
                   {{"Authorization", basic(kEmail, kPassword)}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.headers["Set-Authorization"];
  }

  Reply poll(const std::string& path, const std::string& body, const std::string& token = "") {
    const std::string t = token.empty() ? token_ : token;
    return call(port_, "POST", path, {{"Authorization", "Bearer " + t}}, body);
  }

  Object::Ptr pollJson(const std::string& path, const std::string& body) {
    if (token_.empty()) token_ = login();
    Reply r = poll(path, body);
    EXPECT_EQ(r.status, 200) << body << " -> " << r.body;
    return parseObject(r.body);
  }

  // Every item from `after` on, by naive offset paging with a fixed lastUpdatedAfter.
  std::vector<Object::Ptr> pollAll(const std::string& path, const std::string& after = kEarly,
                                   const std::string& extra_filters = "", int limit = 100) {
    std::vector<Object::Ptr> out;
    for (int offset = 0;; offset += limit) {
      auto page = pollJson(path, pollBody(after, offset, limit, extra_filters));
      for (auto& o : objects(page->getArray("data"))) out.push_back(o);
      if (offset + limit >= page->getValue<int>("total")) break;
    }
    return out;
  }

  Object::Ptr control(const std::string& method, const std::string& path,
                      const std::string& body = "", int expect = 200) {
    Reply r = call(port_, method, path, {}, body);
    EXPECT_EQ(r.status, expect) << path << " " << body << " -> " << r.body;
    return parseObject(r.body);
  }

  Object::Ptr state() { return control("GET", "/_sim/state"); }
  Object::Ptr requests() { return control("GET", "/_sim/requests"); }

  std::unique_ptr<TradecloudServer> server_;
  std::uint16_t port_ = 0;
  std::string token_;
};

TEST_F(TradecloudSimTest, LoginRefreshIsSingleUseAndLogoutEndsTheSession) {
  startServer();
  Reply in =
      call(port_, "GET", "/v2/authentication/login", {{"Authorization", basic(kEmail, kPassword)}});
  ASSERT_EQ(in.status, 200);
  const std::string access = in.headers["Set-Authorization"];
  const std::string refresh = in.headers["Set-Refresh-Token"];
  EXPECT_EQ(std::count(access.begin(), access.end(), '.'), 2) << "JWT-shaped: " << access;
  ASSERT_FALSE(refresh.empty());
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), access).status, 200);

  Reply r1 = call(port_, "GET", "/v2/authentication/refresh", {{"Refresh-Token", refresh}});
  ASSERT_EQ(r1.status, 200);
  const std::string access2 = r1.headers["Set-Authorization"];
  const std::string refresh2 = r1.headers["Set-Refresh-Token"];
  EXPECT_NE(access2, access);
  EXPECT_NE(refresh2, refresh);
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), access2).status, 200);

  // The first refresh token was spent: a replay is refused.
  Reply replay = call(port_, "GET", "/v2/authentication/refresh", {{"Refresh-Token", refresh}});
  EXPECT_EQ(replay.status, 401);
  EXPECT_NE(replay.content_type.find("text/plain"), std::string::npos);
  EXPECT_FALSE(replay.has("Set-Authorization"));

  EXPECT_EQ(call(port_, "POST", "/v2/authentication/logout", {{"Refresh-Token", refresh2}}).status,
            200);
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), access2).status, 401);
  EXPECT_EQ(call(port_, "GET", "/v2/authentication/refresh", {{"Refresh-Token", refresh2}}).status,
            401);

  auto stats = requests();
  EXPECT_EQ(stats->getValue<int>("logins"), 1);
  EXPECT_EQ(stats->getValue<int>("refreshes"), 1);
  EXPECT_EQ(stats->getValue<int>("refresh_reuse_rejected"), 1);
  EXPECT_EQ(stats->getValue<int>("logouts"), 1);
}

TEST_F(TradecloudSimTest, WrongPasswordAndMissingAuthAre401PlainText) {
  startServer();
  Reply bad =
      call(port_, "GET", "/v2/authentication/login", {{"Authorization", basic(kEmail, "wrong")}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_NE(bad.content_type.find("text/plain"), std::string::npos);
  EXPECT_FALSE(bad.has("Set-Authorization"));
  EXPECT_FALSE(bad.has("Set-Refresh-Token"));
  EXPECT_EQ(call(port_, "POST", kOrdersPath, {{"Authorization", basic(kEmail, "wrong")}},
                 pollBody(kEarly, 0, 1))
                .status,
            401);
  EXPECT_EQ(call(port_, "POST", kOrdersPath, {}, pollBody(kEarly, 0, 1)).status, 401);
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), "not-a-token").status, 401);
  EXPECT_EQ(requests()->getValue<int>("logins"), 0);
}

TEST_F(TradecloudSimTest, AccessTokenExpiresAndLoggingInAgainWorks) {
  auto options = defaults();
  options.access_ttl_ms = 800;
  startServer(options);
  const std::string token = login();
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), token).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  Reply expired = poll(kOrdersPath, pollBody(kEarly, 0, 1), token);
  EXPECT_EQ(expired.status, 401);
  EXPECT_NE(expired.body.find("expired"), std::string::npos) << expired.body;
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), login()).status, 200);

  // Switched at run time: new tokens live long.
  control("POST", "/_sim/config", "{\"access_ttl_ms\":600000}");
  const std::string long_lived = login();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 1), long_lived).status, 200);
}

TEST_F(TradecloudSimTest, BasicAuthOnPollWorksAndIsSlow) {
  auto options = defaults();
  options.basic_delay_ms = 300;
  startServer(options);
  const auto t0 = std::chrono::steady_clock::now();
  Reply r = call(port_, "POST", kOrdersPath, {{"Authorization", basic(kEmail, kPassword)}},
                 pollBody(kEarly, 0, 5));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(parseObject(r.body)->getArray("data")->size(), 5u);
  EXPECT_GE(ms, 250);
  EXPECT_EQ(requests()->getValue<int>("basic_polls"), 1);
}

// --accounts 3: "integration+<n>@…" logs in as account n, which sees only its own share of the
// orders and shipments; the shares are disjoint and together hold everything; the main account
// still sees everything; an account number past the last is refused.
TEST_F(TradecloudSimTest, SeveralAccountsEachSeeTheirOwnShare) {
  auto options = defaults();
  options.store.orders = 90;
  options.store.shipments = 30;
  options.store.accounts = 3;
  startServer(options);
  auto ids = [](const std::vector<Object::Ptr>& items) {
    std::set<std::string> out;
    for (const auto& o : items) out.insert(o->getValue<std::string>("id"));
    return out;
  };
  const std::string domain = std::string(kEmail).substr(std::string(kEmail).find('@'));
  const std::string local = std::string(kEmail).substr(0, std::string(kEmail).find('@'));
  std::set<std::string> orders, shipments;
  for (int n = 1; n <= 3; ++n) {
    Reply in = call(port_, "GET", "/v2/authentication/login",
                    {{"Authorization", basic(local + "+" + std::to_string(n) + domain, kPassword)}});
    ASSERT_EQ(in.status, 200) << n;
    token_ = in.headers["Set-Authorization"];
    const auto own_orders = ids(pollAll(kOrdersPath));
    const auto own_shipments = ids(pollAll(kShipmentsPath));
    EXPECT_GT(own_orders.size(), 10u) << n;
    EXPECT_LT(own_orders.size(), 60u) << n;
    for (const auto& id : own_orders) EXPECT_TRUE(orders.insert(id).second) << id << " twice";
    for (const auto& id : own_shipments) EXPECT_TRUE(shipments.insert(id).second) << id;
  }
  EXPECT_EQ(orders.size(), 90u);
  EXPECT_EQ(shipments.size(), 30u);
  token_ = login();
  EXPECT_EQ(ids(pollAll(kOrdersPath)), orders);
  EXPECT_EQ(call(port_, "GET", "/v2/authentication/login",
                 {{"Authorization", basic(local + "+4" + domain, kPassword)}})
                .status,
            401);
}

TEST_F(TradecloudSimTest, OffsetPagingReturnsEveryOrderOnceWithTotal) {
  auto options = defaults();
  options.store.orders = 250;
  startServer(options);
  auto st = state()->getArray("orders");
  ASSERT_EQ(st->size(), 250u);
  for (int limit : {100, 7}) {
    std::vector<std::string> ids;
    for (int offset = 0;; offset += limit) {
      auto page = pollJson(kOrdersPath, pollBody(kEarly, offset, limit));
      EXPECT_EQ(page->getValue<int>("total"), 250);
      auto data = page->getArray("data");
      EXPECT_EQ(static_cast<int>(data->size()), std::min(limit, 250 - offset));
      for (auto& o : objects(data)) ids.push_back(o->getValue<std::string>("id"));
      if (offset + limit >= 250) break;
    }
    ASSERT_EQ(ids.size(), 250u);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 250u);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(ids[i], st->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"));
    }
  }
  // Past the end: empty data, total still counts every match.
  auto past = pollJson(kOrdersPath, pollBody(kEarly, 300, 100));
  EXPECT_EQ(past->getArray("data")->size(), 0u);
  EXPECT_EQ(past->getValue<int>("total"), 250);
}

TEST_F(TradecloudSimTest, SortedByLastUpdatedAtThenIdWithTiesLargerThanAPage) {
  auto options = defaults();
  options.store.orders = 250;
  startServer(options);
  auto all = pollAll(kOrdersPath);
  ASSERT_EQ(all.size(), 250u);
  std::map<std::string, int> per_instant;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto t = all[i]->getValue<std::string>("lastUpdatedAt");
    ++per_instant[t];
    ASSERT_EQ(t.size(), 24u) << t;  // YYYY-MM-DDThh:mm:ss.SSSZ
    if (i == 0) continue;
    const auto pt = all[i - 1]->getValue<std::string>("lastUpdatedAt");
    const auto id = all[i]->getValue<std::string>("id"),
               pid = all[i - 1]->getValue<std::string>("id");
    EXPECT_TRUE(pt < t || (pt == t && pid < id))
        << pid << "@" << pt << " before " << id << "@" << t;
  }
  int largest = 0, tied_instants = 0;
  for (const auto& [t, n] : per_instant) {
    largest = std::max(largest, n);
    tied_instants += n > 1;
  }
  EXPECT_GT(largest, 100);
  EXPECT_GE(tied_instants, 3);
  // Shipments sort the same way, by meta.lastUpdatedAt.
  auto shipments = pollAll(kShipmentsPath);
  for (std::size_t i = 1; i < shipments.size(); ++i) {
    const auto t = shipments[i]->getObject("meta")->getValue<std::string>("lastUpdatedAt");
    const auto pt = shipments[i - 1]->getObject("meta")->getValue<std::string>("lastUpdatedAt");
    EXPECT_TRUE(pt < t || (pt == t && shipments[i - 1]->getValue<std::string>("id") <
                                          shipments[i]->getValue<std::string>("id")));
  }
}

TEST_F(TradecloudSimTest, ExclusiveAndInclusiveWindowsDifferByTheTiedGroup) {
  startServer();
  auto all = pollAll(kOrdersPath);
  std::map<std::string, int> per_instant;
  for (auto& o : all) ++per_instant[o->getValue<std::string>("lastUpdatedAt")];
  std::string tie;
  for (const auto& [t, n] : per_instant) {
    if (n > 1) tie = t;
  }
  ASSERT_FALSE(tie.empty()) << "the data set must have ties";
  int at_or_after = 0, after = 0;
  for (const auto& [t, n] : per_instant) {
    if (t >= tie) at_or_after += n;
    if (t > tie) after += n;
  }
  auto exclusive = pollJson(kOrdersPath, pollBody(tie, 0, 100));
  EXPECT_EQ(exclusive->getValue<int>("total"), after);
  for (auto& o : objects(exclusive->getArray("data"))) {
    EXPECT_GT(o->getValue<std::string>("lastUpdatedAt"), tie);
  }
  control("POST", "/_sim/config", "{\"window\":\"inclusive\"}");
  auto inclusive = pollJson(kOrdersPath, pollBody(tie, 0, 100));
  EXPECT_EQ(inclusive->getValue<int>("total"), at_or_after);
  EXPECT_EQ(objects(inclusive->getArray("data")).front()->getValue<std::string>("lastUpdatedAt"),
            tie);
  // One millisecond earlier, exclusive, is the same as inclusive: what the Ferry plugin sends.
  control("POST", "/_sim/config", "{\"window\":\"exclusive\"}");
  EXPECT_EQ(pollJson(kOrdersPath, pollBody(plusMs(tie, -1), 0, 100))->getValue<int>("total"),
            at_or_after);
}

TEST_F(TradecloudSimTest, EmptyPageLastUpdatedAtFollowsTheSwitch) {
  startServer();
  const std::string future = "2030-01-01T00:00:00.000Z";
  for (const std::string path : {kOrdersPath, kShipmentsPath}) {
    control("POST", "/_sim/config", "{\"empty_last_updated\":\"absent\"}");
    auto absent = pollJson(path, pollBody(future, 0, 100));
    EXPECT_EQ(absent->getArray("data")->size(), 0u);
    EXPECT_EQ(absent->getValue<int>("total"), 0);
    EXPECT_FALSE(absent->has("lastUpdatedAt"));

    control("POST", "/_sim/config", "{\"empty_last_updated\":\"null\"}");
    auto null = pollJson(path, pollBody(future, 0, 100));
    ASSERT_TRUE(null->has("lastUpdatedAt"));
    EXPECT_TRUE(null->isNull("lastUpdatedAt"));

    control("POST", "/_sim/config", "{\"empty_last_updated\":\"present\"}");
    auto present = pollJson(path, pollBody("2030-01-01T01:00:00+01:00", 0, 100));
    EXPECT_EQ(present->getValue<std::string>("lastUpdatedAt"), future);
  }
  // A non-empty page always carries the newest lastUpdatedAt of its data.
  auto page = pollJson(kOrdersPath, pollBody(kEarly, 0, 10));
  auto data = objects(page->getArray("data"));
  EXPECT_EQ(page->getValue<std::string>("lastUpdatedAt"),
            data.back()->getValue<std::string>("lastUpdatedAt"));
}

TEST_F(TradecloudSimTest, LimitOver100IsRejectedOrClamped) {
  auto options = defaults();
  options.store.orders = 150;
  startServer(options);
  token_ = login();
  Reply rejected = poll(kOrdersPath, pollBody(kEarly, 0, 101));
  EXPECT_EQ(rejected.status, 400);
  EXPECT_NE(rejected.body.find("limit"), std::string::npos);
  control("POST", "/_sim/config", "{\"limit_over_100\":\"clamp\"}");
  auto clamped = pollJson(kOrdersPath, pollBody(kEarly, 0, 101));
  EXPECT_EQ(clamped->getArray("data")->size(), 100u);
  EXPECT_GT(clamped->getValue<int>("total"), 100);
  EXPECT_EQ(poll(kOrdersPath, pollBody(kEarly, 0, 0)).status, 400);
}

TEST_F(TradecloudSimTest, StrictRequestBodies) {
  startServer();
  token_ = login();
  for (const std::string& body :
       {std::string("{\"filters\":{},\"offset\":0,\"limit\":10,\"sort\":\"asc\"}"),
        std::string("{\"filters\":{\"lastUpdatedAfter\":\"2025-01-01T00:00:00Z\",\"x\":1}}"),
        std::string("{\"filters\":{\"status\":{\"processStatus\":[\"Issued\"],\"y\":[]}}}"),
        std::string("{\"filters\":{\"lastUpdatedAfter\":\"2025-01-01T00:00:00\"}}"),
        std::string("{\"filters\":{\"lastUpdatedAfter\":\"yesterday\"}}"),
        std::string("{\"offset\":-1}"), std::string("{\"limit\":\"10\"}"),
        std::string("{\"filters\":"), std::string("[1,2]")}) {
    Reply r = poll(kOrdersPath, body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
  }
  EXPECT_EQ(poll(kShipmentsPath, "{\"filters\":{\"companyId\":\"x\"}}").status, 400);
  EXPECT_EQ(poll(kOrdersPath, "{}").status, 200);
}

TEST_F(TradecloudSimTest, ShipmentsKeyedByMetaLastUpdatedAtWithCompanyFilter) {
  auto options = defaults();
  options.store.shipments = 80;
  startServer(options);
  auto st = state();
  const std::string company = st->getValue<std::string>("company_id");
  int ours = 0;
  std::map<std::string, std::string> updated;
  for (auto& s : objects(st->getArray("shipments"))) {
    ours += s->getValue<std::string>("buyerCompanyId") == company;
    updated[s->getValue<std::string>("id")] = s->getValue<std::string>("lastUpdatedAt");
  }
  ASSERT_GT(ours, 0);
  ASSERT_LT(ours, 80) << "some shipments must belong to another buyer company";
  const std::string filter = ",\"buyerShipment\":{\"companyId\":\"" + company + "\"}";
  auto filtered = pollAll(kShipmentsPath, kEarly, filter);
  EXPECT_EQ(static_cast<int>(filtered.size()), ours);
  for (auto& s : filtered) {
    EXPECT_EQ(s->getObject("buyerShipment")->getValue<std::string>("companyId"), company);
    const auto meta_t = s->getObject("meta")->getValue<std::string>("lastUpdatedAt");
    EXPECT_EQ(meta_t, updated[s->getValue<std::string>("id")]);
    EXPECT_FALSE(s->has("lastUpdatedAt")) << "the change time lives in meta";
    for (auto& l : objects(s->getArray("lines"))) {
      EXPECT_LE(l->getObject("meta")->getValue<std::string>("lastUpdatedAt"), meta_t);
      EXPECT_FALSE(l->getValue<std::string>("purchaseOrderNumber").empty());
      EXPECT_TRUE(l->getObject("supplierLine")->has("despatchQuantity"));
    }
    const auto status = s->getObject("status")->getValue<std::string>("processStatus");
    EXPECT_TRUE(status == "Issued" || status == "Approved" || status == "Rejected") << status;
  }
  // The window applies to meta.lastUpdatedAt.
  const std::string mid =
      filtered[filtered.size() / 2]->getObject("meta")->getValue<std::string>("lastUpdatedAt");
  for (auto& s : pollAll(kShipmentsPath, mid, filter)) {
    EXPECT_GT(s->getObject("meta")->getValue<std::string>("lastUpdatedAt"), mid);
  }
}

TEST_F(TradecloudSimTest, OrderStatusAndCompanyFilters) {
  startServer();
  auto st = state();
  const std::string company = st->getValue<std::string>("company_id");
  int confirmed = 0, proposal = 0, ours = 0;
  for (auto& o : objects(st->getArray("orders"))) {
    bool c = false, p = false;
    for (auto& l : objects(o->getArray("lines"))) {
      c |= l->getValue<std::string>("processStatus") == "Confirmed";
      p |= !l->isNull("inProgressStatus") &&
           l->getValue<std::string>("inProgressStatus") == "OpenSupplierProposal";
    }
    confirmed += c;
    proposal += p;
    ours += o->getValue<std::string>("companyId") == company;
  }
  ASSERT_GT(confirmed, 0);
  ASSERT_GT(proposal, 0);
  auto got = pollAll(kOrdersPath, kEarly, ",\"status\":{\"processStatus\":[\"Confirmed\"]}");
  EXPECT_EQ(static_cast<int>(got.size()), confirmed);
  for (auto& o : got) {
    bool any = false;
    for (auto& l : objects(o->getArray("lines"))) {
      any |= l->getObject("status")->getValue<std::string>("processStatus") == "Confirmed";
    }
    EXPECT_TRUE(any) << o->getValue<std::string>("id");
  }
  EXPECT_EQ(
      static_cast<int>(pollAll(kOrdersPath, kEarly,
                               ",\"status\":{\"inProgressStatus\":[\"OpenSupplierProposal\"]}")
                           .size()),
      proposal);
  auto by_company = pollAll(kOrdersPath, kEarly, ",\"companyId\":\"" + company + "\"");
  EXPECT_EQ(static_cast<int>(by_company.size()), ours);
  for (auto& o : by_company) {
    EXPECT_EQ(o->getValue<std::string>("id").rfind(company + "-", 0), 0u);
  }
  EXPECT_EQ(
      pollAll(kOrdersPath, kEarly, ",\"status\":{\"processStatus\":[\"NoSuchStatus\"]}").size(),
      0u);
}

TEST_F(TradecloudSimTest, RateLimitPerAccountAnswers429AndIsReported) {
  auto options = defaults();
  options.rate_limit = 10;
  startServer(options);
  Poco::Net::HTTPClientSession session("127.0.0.1", port_);
  session.setTimeout(Poco::Timespan(10, 0));
  const auto t0 = std::chrono::steady_clock::now();
  Reply in = call(session, "GET", "/v2/authentication/login",
                  {{"Authorization", basic(kEmail, kPassword)}});
  ASSERT_EQ(in.status, 200);
  const Headers auth = {{"Authorization", "Bearer " + in.headers["Set-Authorization"]}};
  int ok = 1, limited = 0;
  bool retry_after = false;
  for (int i = 0; i < 14; ++i) {
    Reply r = call(session, "POST", kOrdersPath, auth, pollBody(kEarly, 0, 1));
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      retry_after |= r.has("Retry-After");
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(limited, 1);
  EXPECT_TRUE(retry_after);
  auto stats = requests();
  const int max = stats->getObject("max_per_second")->getValue<int>(kEmail);
  if (elapsed < std::chrono::milliseconds(900)) {
    // All 15 within one second: exactly 10 admitted (the login among them), all 15 counted.
    EXPECT_EQ(ok, 10);
    EXPECT_EQ(limited, 5);
    EXPECT_EQ(max, 15);
  } else {
    EXPECT_GE(max, 11);
  }
  EXPECT_EQ(stats->getObject("by_status")->getValue<int>("429"), limited);
  // A client that waits gets through again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(call(session, "POST", kOrdersPath, auth, pollBody(kEarly, 0, 1)).status, 200);
  // Switched off at run time.
  control("POST", "/_sim/config", "{\"rate_limit\":0}");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(call(session, "POST", kOrdersPath, auth, pollBody(kEarly, 0, 1)).status, 200);
  }
}

TEST_F(TradecloudSimTest, EachFaultKindReachesTheClientThenServiceResumes) {
  startServer();
  token_ = login();
  const std::string body = pollBody(kEarly, 0, 5);
  for (const auto& [kind, status] :
       std::vector<std::pair<std::string, int>>{{"429", 429},
                                                {"429-retry-after", 429},
                                                {"500", 500},
                                                {"502", 502},
                                                {"503", 503},
                                                {"401", 401}}) {
    control("POST", "/_sim/faults", "{\"kind\":\"" + kind + "\",\"count\":2}");
    for (int i = 0; i < 2; ++i) {
      Reply r = poll(kOrdersPath, body);
      EXPECT_EQ(r.status, status) << kind;
      EXPECT_EQ(r.has("Retry-After"), kind == "429-retry-after") << kind;
    }
    EXPECT_EQ(poll(kOrdersPath, body).status, 200) << "after " << kind;
  }

  control("POST", "/_sim/faults", "{\"kind\":\"malformed\"}");
  Reply bad = poll(kOrdersPath, body);
  EXPECT_EQ(bad.status, 200);
  EXPECT_ANY_THROW(parseObject(bad.body));

  control("POST", "/_sim/faults", "{\"kind\":\"drop\"}");
  EXPECT_ANY_THROW(poll(kOrdersPath, body));

  control("POST", "/_sim/faults", "{\"kind\":\"truncated\"}");
  bool truncated_seen = false;
  try {
    Reply r = poll(kOrdersPath, body);
    truncated_seen = r.body.size() < std::stoul(r.headers["Content-Length"]);
  } catch (const std::exception&) {
    truncated_seen = true;
  }
  EXPECT_TRUE(truncated_seen);

  control("POST", "/_sim/faults", "{\"kind\":\"slow\",\"delay_ms\":1500}");
  EXPECT_ANY_THROW(
      call(port_, "POST", kOrdersPath, {{"Authorization", "Bearer " + token_}}, body, 300));
  // The fault applies to requests, not connections: login is faulted like any API request.
  control("POST", "/_sim/faults", "{\"kind\":\"503\"}");
  EXPECT_EQ(
      call(port_, "GET", "/v2/authentication/login", {{"Authorization", basic(kEmail, kPassword)}})
          .status,
      503);
  EXPECT_EQ(poll(kOrdersPath, body).status, 200);
  auto stats = requests();
  EXPECT_EQ(stats->getValue<int>("dropped"), 1);
  EXPECT_EQ(stats->getValue<int>("faults_pending"), 0);
  EXPECT_EQ(stats->getValue<int>("faults_injected"), 17);
  control("POST", "/_sim/faults", "{\"kind\":\"teapot\"}", 400);
}

TEST_F(TradecloudSimTest, EchoKeepsOldValuesAndPutsTheRequestInIncludingRequests) {
  startServer();
  auto find = [&](const std::string& id) -> Object::Ptr {
    for (auto& o : pollAll(kOrdersPath)) {
      if (o->getValue<std::string>("id") == id) return o;
    }
    return nullptr;
  };
  for (const std::string role : {"buyer", "supplier"}) {
    auto before_all = pollAll(kOrdersPath);
    const std::string newest = before_all.back()->getValue<std::string>("lastUpdatedAt");
    auto echo = control("POST", "/_sim/echo", "{\"role\":\"" + role + "\",\"lines\":2}");
    const std::string id = echo->getValue<std::string>("order_id");
    auto line_ids = echo->getArray("line_ids");
    ASSERT_GE(line_ids->size(), 1u);
    Object::Ptr before;
    for (auto& o : before_all) {
      if (o->getValue<std::string>("id") == id) before = o;
    }
    ASSERT_TRUE(before);
    // The next poll from the newest instant seen returns the echoed order, and only it.
    auto next = pollJson(kOrdersPath, pollBody(newest, 0, 100));
    ASSERT_EQ(next->getValue<int>("total"), 1);
    auto after = objects(next->getArray("data")).front();
    EXPECT_EQ(after->getValue<std::string>("id"), id);
    EXPECT_GT(after->getValue<std::string>("lastUpdatedAt"), newest);
    EXPECT_EQ(after->getObject("status")->getValue<std::string>("processStatus"), "InProgress");
    EXPECT_GT(after->getValue<int>("version"), before->getValue<int>("version"));
    std::set<std::string> echoed;
    for (std::size_t i = 0; i < line_ids->size(); ++i)
      echoed.insert(line_ids->getElement<std::string>(i));
    auto old_lines = objects(before->getArray("lines"));
    auto new_lines = objects(after->getArray("lines"));
    ASSERT_EQ(old_lines.size(), new_lines.size());
    for (std::size_t i = 0; i < new_lines.size(); ++i) {
      auto& o = old_lines[i];
      auto& n = new_lines[i];
      const bool changed = echoed.count(n->getValue<std::string>("id")) > 0;
      EXPECT_EQ(stringify(n->get("deliverySchedule")), stringify(o->get("deliverySchedule")));
      EXPECT_EQ(stringify(n->get("prices")), stringify(o->get("prices")));
      if (!changed) {
        EXPECT_EQ(stringify(n), stringify(o));
        continue;
      }
      EXPECT_EQ(n->getValue<std::string>("lastUpdatedAt"),
                after->getValue<std::string>("lastUpdatedAt"));
      auto status = n->getObject("status");
      EXPECT_EQ(status->getValue<std::string>("processStatus"), "InProgress");
      EXPECT_EQ(status->getValue<std::string>("inProgressStatus"),
                role == "buyer" ? "OpenBuyerReopenRequest" : "OpenSupplierProposal");
      EXPECT_NE(stringify(n->get("deliveryScheduleIncludingRequests")),
                stringify(n->get("deliverySchedule")));
      EXPECT_NE(stringify(n->get("pricesIncludingRequests")), stringify(n->get("prices")));
    }
  }
  // A named order, and an unknown one.
  const std::string some =
      objects(state()->getArray("orders")).front()->getValue<std::string>("id");
  Reply r =
      call(port_, "POST", "/_sim/echo", {}, "{\"order_id\":\"" + some + "\",\"role\":\"buyer\"}");
  EXPECT_TRUE(r.status == 200 || r.status == 409) << r.body;
  if (r.status == 200) {
    auto o = find(some);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->getObject("status")->getValue<std::string>("processStatus"), "InProgress");
  }
  control("POST", "/_sim/echo", "{\"order_id\":\"nope\",\"role\":\"buyer\"}", 404);
  control("POST", "/_sim/echo", "{\"role\":\"carrier\"}", 400);
}

TEST_F(TradecloudSimTest, SupplierChangeThenEchoAndSettleStampEachChange) {
  startServer();
  auto line = [&](const std::string& order, const std::string& id) -> Object::Ptr {
    for (auto& o : pollAll(kOrdersPath)) {
      if (o->getValue<std::string>("id") != order) continue;
      for (auto& l : objects(o->getArray("lines")))
        if (l->getValue<std::string>("id") == id) return l;
    }
    return nullptr;
  };
  // An order with two lines open for a request.
  std::string id;
  for (int i = 0; i < 50 && id.empty(); ++i) {
    Reply r = call(port_, "POST", "/_sim/echo", {},
                   "{\"role\":\"buyer\",\"supplier_change_first\":true}");
    if (r.status == 200)
      id = parseObject(r.body)->getValue<std::string>("order_id");
    else
      EXPECT_EQ(r.status, 409) << r.body;
  }
  ASSERT_FALSE(id.empty());
  const auto o = objects(state()->getArray("orders"));
  Object::Ptr order;
  for (auto& x : o)
    if (x->getValue<std::string>("id") == id) order = x;
  ASSERT_TRUE(order);
  std::string newest_other, request;
  for (auto& l : objects(order->getArray("lines"))) {
    const std::string s = l->optValue<std::string>("inProgressStatus", "");
    if (s == "OpenBuyerReopenRequest") request = l->getValue<std::string>("id");
  }
  ASSERT_FALSE(request.empty());
  // The supplier's change (the newest other line) was stamped before the request.
  for (auto& l : objects(order->getArray("lines"))) {
    const std::string at = l->getValue<std::string>("lastUpdatedAt");
    if (l->getValue<std::string>("id") != request && at > newest_other) newest_other = at;
  }
  EXPECT_LT(newest_other, order->getValue<std::string>("lastUpdatedAt"));
  auto req = line(id, request);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->getValue<std::string>("lastUpdatedAt"),
            order->getValue<std::string>("lastUpdatedAt"));

  // Settling: the request's values become the line's, Confirmed, a new stamp.
  auto settled = control("POST", "/_sim/settle", "{\"order_id\":\"" + id + "\"}");
  auto list = objects(settled->getArray("settled"));
  ASSERT_EQ(list.size(), 1u);
  auto after = line(id, request);
  ASSERT_TRUE(after);
  EXPECT_GT(after->getValue<std::string>("lastUpdatedAt"),
            req->getValue<std::string>("lastUpdatedAt"));
  EXPECT_EQ(after->getObject("status")->getValue<std::string>("processStatus"), "Confirmed");
  EXPECT_TRUE(after->getObject("status")->isNull("inProgressStatus"));
  EXPECT_EQ(stringify(after->get("prices")), stringify(req->get("pricesIncludingRequests")));
  // Nothing left to settle there; an unknown order is 404.
  EXPECT_TRUE(
      objects(control("POST", "/_sim/settle", "{\"order_id\":\"" + id + "\"}")->getArray("settled"))
          .empty());
  control("POST", "/_sim/settle", "{\"order_id\":\"nope\"}", 404);
  control("POST", "/_sim/change-while-paging", "{\"change\":\"teapot\"}", 400);
}

TEST_F(TradecloudSimTest, ChangeBumpsLinesAndEntitiesStrictlyIncreasing) {
  startServer();
  const std::string newest = pollAll(kOrdersPath).back()->getValue<std::string>("lastUpdatedAt");
  auto changed = objects(
      control("POST", "/_sim/change", "{\"count\":6,\"kind\":\"order\"}")->getArray("changed"));
  ASSERT_EQ(changed.size(), 6u);
  std::string prev = newest;
  std::map<std::string, std::string> last_stamp;
  for (auto& c : changed) {
    EXPECT_EQ(c->getValue<std::string>("entity"), "order");
    const auto t = c->getValue<std::string>("lastUpdatedAt");
    EXPECT_GT(t, prev);
    prev = t;
    last_stamp[c->getValue<std::string>("id")] = t;
  }
  auto fresh = pollAll(kOrdersPath, newest);
  EXPECT_EQ(fresh.size(), last_stamp.size());
  for (auto& o : fresh) {
    const auto id = o->getValue<std::string>("id");
    ASSERT_TRUE(last_stamp.count(id)) << id;
    const auto t = o->getValue<std::string>("lastUpdatedAt");
    EXPECT_EQ(t, last_stamp[id]);
    int touched = 0;
    for (auto& l : objects(o->getArray("lines")))
      touched += l->getValue<std::string>("lastUpdatedAt") == t;
    EXPECT_GE(touched, 1) << "a change bumps the changed line(s)";
  }
  const std::string newest_shipment =
      pollAll(kShipmentsPath).back()->getObject("meta")->getValue<std::string>("lastUpdatedAt");
  auto sc = objects(
      control("POST", "/_sim/change", "{\"count\":3,\"kind\":\"shipment\"}")->getArray("changed"));
  ASSERT_EQ(sc.size(), 3u);
  std::set<std::string> ids;
  for (auto& c : sc) ids.insert(c->getValue<std::string>("id"));
  auto fresh_shipments = pollAll(kShipmentsPath, newest_shipment);
  EXPECT_EQ(fresh_shipments.size(), ids.size());
  for (auto& s : fresh_shipments) EXPECT_TRUE(ids.count(s->getValue<std::string>("id")));
}

TEST_F(TradecloudSimTest, ChangeWhilePagingMovesLaterItemsToTheEnd) {
  auto options = defaults();
  options.store.orders = 250;
  startServer(options);
  const auto before = objects(state()->getArray("orders"));
  control("POST", "/_sim/change-while-paging", "{\"after_requests\":2,\"count\":3}");
  // Request 1 (some other query) does not fire; request 2 is page 1 of the backfill.
  pollJson(kShipmentsPath, pollBody(kEarly, 0, 1));
  EXPECT_FALSE(requests()->getObject("change_while_paging")->getValue<bool>("fired"));
  std::vector<std::string> seen;
  auto page1 = pollJson(kOrdersPath, pollBody(kEarly, 0, 100));
  for (auto& o : objects(page1->getArray("data"))) seen.push_back(o->getValue<std::string>("id"));
  auto cwp = requests()->getObject("change_while_paging");
  EXPECT_TRUE(cwp->getValue<bool>("fired"));
  auto changed = cwp->getArray("changed");
  ASSERT_EQ(changed->size(), 3u);
  // They were the first three of the next page.
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(changed->getElement<std::string>(i), before[100 + i]->getValue<std::string>("id"));
  }
  // The naive offset loop still sees every order; the changed ones come again at the end, newer.
  for (int offset = 100; offset < 250; offset += 100) {
    auto page = pollJson(kOrdersPath, pollBody(kEarly, offset, 100));
    EXPECT_EQ(page->getValue<int>("total"), 250);
    for (auto& o : objects(page->getArray("data"))) seen.push_back(o->getValue<std::string>("id"));
  }
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 250u);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[247 + i], changed->getElement<std::string>(i));
  }
}

TEST_F(TradecloudSimTest, ChangeWhilePagingOnServedPagesMakesNaiveOffsetPagingLoseOrders) {
  auto options = defaults();
  options.store.orders = 250;
  startServer(options);
  control("POST", "/_sim/change-while-paging",
          "{\"after_requests\":1,\"count\":2,\"where\":\"served\"}");
  std::set<std::string> seen;
  for (int offset = 0; offset < 250; offset += 100) {
    auto page = pollJson(kOrdersPath, pollBody(kEarly, offset, 100));
    for (auto& o : objects(page->getArray("data"))) seen.insert(o->getValue<std::string>("id"));
  }
  std::set<std::string> all;
  for (auto& o : objects(state()->getArray("orders"))) all.insert(o->getValue<std::string>("id"));
  std::vector<std::string> missed;
  for (const auto& id : all) {
    if (!seen.count(id)) missed.push_back(id);
  }
  EXPECT_EQ(missed.size(), 2u) << "two items slid back across the page boundary";
}

TEST_F(TradecloudSimTest, SameSeedSameDataDifferentSeedDifferentData) {
  auto options = defaults();
  options.store.seed = 42;
  TradecloudServer a(options), b(options);
  options.store.seed = 43;
  TradecloudServer c(options);
  a.start();
  b.start();
  c.start();
  auto fetch = [&](TradecloudServer& s, const std::string& path) {
    port_ = s.port();
    token_ = login();
    return poll(path, pollBody(kEarly, 0, 100)).body + call(port_, "GET", "/_sim/state").body;
  };
  for (const std::string path : {kOrdersPath, kShipmentsPath}) {
    const std::string da = fetch(a, path), db = fetch(b, path), dc = fetch(c, path);
    EXPECT_GT(da.size(), 1000u);
    EXPECT_EQ(da, db);
    EXPECT_NE(da, dc);
  }
}

TEST_F(TradecloudSimTest, StateMatchesPollResultsAndTextIsRealistic) {
  startServer();
  auto st = state();
  auto orders = pollAll(kOrdersPath);
  auto st_orders = objects(st->getArray("orders"));
  ASSERT_EQ(orders.size(), st_orders.size());
  ASSERT_EQ(orders.size(), 100u);
  std::size_t lines_seen = 0, max_lines = 0;
  for (std::size_t i = 0; i < orders.size(); ++i) {
    auto& o = orders[i];
    auto& s = st_orders[i];
    const auto id = o->getValue<std::string>("id");
    EXPECT_EQ(id, s->getValue<std::string>("id"));
    auto buyer = o->getObject("buyerOrder");
    EXPECT_EQ(id, buyer->getValue<std::string>("companyId") + "-" +
                      buyer->getValue<std::string>("purchaseOrderNumber"));
    EXPECT_TRUE(o->getObject("supplierOrder")->has("buyerAccountNumber"));
    EXPECT_EQ(o->getValue<std::string>("lastUpdatedAt"), s->getValue<std::string>("lastUpdatedAt"));
    auto lines = objects(o->getArray("lines"));
    auto st_lines = objects(s->getArray("lines"));
    ASSERT_EQ(lines.size(), st_lines.size());
    max_lines = std::max(max_lines, lines.size());
    for (std::size_t j = 0; j < lines.size(); ++j) {
      auto& l = lines[j];
      ++lines_seen;
      EXPECT_EQ(l->getValue<std::string>("id"), st_lines[j]->getValue<std::string>("id"));
      EXPECT_EQ(l->getValue<std::string>("id"),
                id + "-" + l->getObject("buyerLine")->getValue<std::string>("position"));
      EXPECT_EQ(l->getValue<std::string>("lastUpdatedAt"),
                st_lines[j]->getValue<std::string>("lastUpdatedAt"));
      EXPECT_LE(l->getValue<std::string>("lastUpdatedAt"),
                o->getValue<std::string>("lastUpdatedAt"));
      EXPECT_EQ(l->getObject("status")->getValue<std::string>("processStatus"),
                st_lines[j]->getValue<std::string>("processStatus"));
      auto d = l->getArray("deliverySchedule")->getObject(0);
      EXPECT_EQ(d->getValue<std::string>("date").size(), 10u);
      EXPECT_TRUE(l->getObject("prices")
                      ->getObject("netPrice")
                      ->getObject("priceInTransactionCurrency")
                      ->has("currencyIso"));
    }
  }
  EXPECT_GT(max_lines, 5u) << "some orders have up to 20 lines";
  auto shipments = pollAll(kShipmentsPath);
  auto st_shipments = objects(st->getArray("shipments"));
  ASSERT_EQ(shipments.size(), st_shipments.size());
  ASSERT_EQ(shipments.size(), 40u);
  for (std::size_t i = 0; i < shipments.size(); ++i) {
    EXPECT_EQ(shipments[i]->getValue<std::string>("id"),
              st_shipments[i]->getValue<std::string>("id"));
    auto lines = objects(shipments[i]->getArray("lines"));
    auto st_lines = objects(st_shipments[i]->getArray("lines"));
    ASSERT_EQ(lines.size(), st_lines.size());
    for (std::size_t j = 0; j < lines.size(); ++j) {
      EXPECT_EQ(lines[j]->getObject("meta")->getValue<std::string>("lastUpdatedAt"),
                st_lines[j]->getValue<std::string>("lastUpdatedAt"));
    }
  }
  // ERP-hostile text: commas, quotes and non-ASCII in item names.
  const std::string raw = poll(kOrdersPath, pollBody(kEarly, 0, 100)).body;
  EXPECT_NE(raw.find("\\\""), std::string::npos);
  EXPECT_NE(raw.find("ü"), std::string::npos);
  EXPECT_NE(raw.find("×40, "), std::string::npos);
}

TEST_F(TradecloudSimTest, SingleDeliveryVariantHasOneDeliveryPerLine) {
  startServer();
  auto st = objects(state()->getArray("orders"));
  auto orders = pollAll(kSingleDeliveryPath);
  ASSERT_EQ(orders.size(), st.size());
  bool split_seen = false;
  for (std::size_t i = 0; i < orders.size(); ++i) {
    EXPECT_EQ(orders[i]->getValue<std::string>("id"), st[i]->getValue<std::string>("id"));
    std::size_t expected = 0;
    for (auto& l : objects(st[i]->getArray("lines"))) {
      expected += l->getValue<std::size_t>("deliveries");
      split_seen |= l->getValue<int>("deliveries") > 1;
    }
    auto lines = objects(orders[i]->getArray("lines"));
    EXPECT_EQ(lines.size(), expected);
    std::map<std::string, int> deliveries_of;  // buyer line position -> delivery lines so far
    for (auto& l : lines) {
      // The documented shape: statusLine instead of deliverySchedule/prices.
      EXPECT_FALSE(l->has("deliverySchedule"));
      EXPECT_FALSE(l->has("deliveryScheduleIncludingRequests"));
      EXPECT_FALSE(l->has("prices"));
      EXPECT_FALSE(l->has("pricesIncludingRequests"));
      auto status_line = l->getObject("statusLine");
      ASSERT_FALSE(status_line.isNull());
      for (const char* key : {"scheduledDelivery", "scheduledDeliveryInclRequests"}) {
        auto d = status_line->getObject(key);
        ASSERT_FALSE(d.isNull()) << key;
        EXPECT_EQ(d->getValue<std::string>("date").size(), 10u) << key;
        EXPECT_GT(d->getValue<double>("quantity"), 0) << key;
        EXPECT_FALSE(d->getValue<std::string>("status").empty()) << key;
        EXPECT_TRUE(d->has("etd") && d->has("eta")) << key;
      }
      for (const char* key : {"prices", "pricesInclRequests"}) {
        auto net = status_line->getObject(key)
                       ->getObject("netPrice")
                       ->getObject("priceInTransactionCurrency");
        EXPECT_GT(net->getValue<double>("value"), 0) << key;
        EXPECT_EQ(net->getValue<std::string>("currencyIso").size(), 3u) << key;
      }
      const std::string position = l->getObject("buyerLine")->getValue<std::string>("position");
      EXPECT_EQ(l->getValue<std::string>("id"), orders[i]->getValue<std::string>("id") + "-" +
                                                    position + "-" +
                                                    std::to_string(++deliveries_of[position]));
    }
  }
  EXPECT_TRUE(split_seen) << "the data set must have lines with several deliveries";
}

TEST_F(TradecloudSimTest, ShipmentsCarryTheDocumentedDepartureAndDestinations) {
  startServer();
  int several = 0;
  for (auto& s : pollAll(kShipmentsPath)) {
    const std::string id = s->getValue<std::string>("id");
    auto locations = s->getObject("locations");
    ASSERT_FALSE(locations.isNull()) << id;
    auto departure = locations->getObject("departure");
    ASSERT_FALSE(departure.isNull()) << id;
    EXPECT_FALSE(departure->getObject("location").isNull()) << id;
    const std::string etd = departure->getValue<std::string>("etdDate");
    EXPECT_EQ(etd.size(), 10u) << id;
    EXPECT_TRUE(departure->has("atdDate")) << id;
    auto destinations = objects(locations->getArray("destinations"));
    ASSERT_GE(destinations.size(), 1u) << id;
    several += destinations.size() > 1;
    std::string after = etd;
    for (std::size_t i = 0; i < destinations.size(); ++i) {
      auto& d = destinations[i];
      EXPECT_FALSE(d->getObject("location").isNull()) << id;
      const std::string start = d->getValue<std::string>("etaStartDate");
      const std::string end = d->getValue<std::string>("etaEndDate");
      EXPECT_EQ(start.size(), 10u) << id;
      EXPECT_GT(start, after) << id << ": each arrival after the departure before it";
      EXPECT_LE(start, end) << id;
      EXPECT_EQ(d->getValue<std::string>("etaStartTime").size(), 8u) << id;
      EXPECT_EQ(d->getValue<std::string>("etaEndTime").size(), 8u) << id;
      for (const char* key : {"ataDate", "etdDate", "atdDate"}) EXPECT_TRUE(d->has(key)) << key;
      // A stop the goods leave again has its departure date.
      EXPECT_EQ(d->isNull("etdDate"), i + 1 == destinations.size()) << id;
      after = end;
    }
  }
  EXPECT_GT(several, 0) << "some shipments have several destinations";
}

TEST(TradecloudSimProgram, StartsPrintsItsPortAndStopsOnSigterm) {
  Poco::TemporaryFile dir;
  std::filesystem::create_directories(dir.path());
  const std::string port_file = dir.path() + "/port";
  Poco::Process::Args args = {"--port",   "0",  "--port-file",  port_file, "--quiet",
                              "--orders", "30", "--access-ttl", "2s",      "--seed",
                              "5"};
  Poco::ProcessHandle handle = Poco::Process::launch(TRADECLOUD_SIM_BINARY, args);
  std::string text;
  for (int i = 0; i < 200 && text.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(port_file);
    std::getline(in, text);
  }
  ASSERT_FALSE(text.empty()) << "no port file";
  const auto port = static_cast<std::uint16_t>(std::stoi(text));
  Reply in =
      call(port, "GET", "/v2/authentication/login", {{"Authorization", basic(kEmail, kPassword)}});
  ASSERT_EQ(in.status, 200);
  Reply r = call(port, "POST", kOrdersPath,
                 {{"Authorization", "Bearer " + in.headers["Set-Authorization"]}},
                 pollBody(kEarly, 0, 100));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(parseObject(r.body)->getValue<int>("total"), 30);
  ::kill(handle.id(), SIGTERM);
  EXPECT_EQ(handle.wait(), 0);

  Poco::ProcessHandle bad = Poco::Process::launch(TRADECLOUD_SIM_BINARY, {"--window", "sideways"});
  EXPECT_EQ(bad.wait(), 2);
}

}  // namespace
}  // namespace ferry::sim::tradecloud
