// The fake host (<ferry/testing/fake_host.hpp>) driving the real in-tree plugins, loaded from
// their .so files as ferry loads them: what a plugin author's unit test looks like, and proof
// that the fake host plays the host's part of the ABI (options, HTTP, state, logs, outcomes).
#include <ferry/testing/fake_host.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace fs = std::filesystem;
using ferry::testing::CannedResponse;
using ferry::testing::CreateError;
using ferry::testing::FakeHost;
using ferry::testing::HttpCall;
using ferry::testing::Plugin;
using ferry::testing::TestEvent;

namespace {

const std::string kApiKey = "dk_test_0123456789abcdefghijABCDEFGHIJ-_";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ferry-fake-host.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string order(const std::string& id, const std::string& status, const std::string& updated,
                  const std::string& extra = "") {
  return R"({"id":")" + id + R"(","orderNumber":"10)" + id + R"(","status":")" + status +
         R"(","type":"delivery","customerName":"Ann, \"A\"","currency":"EUR",)"
         R"("subtotalAmount":1000,"deliveryFee":250,"discountAmount":0,"totalAmount":1250,)"
         R"("createdAt":"2026-07-05T12:01:05.000Z","updatedAt":")" +
         updated + "\"" + extra + R"(,"items":[{"productName":"Duck"}]})";
}

// --- sink_erp_csv ------------------------------------------------------------------------------

TEST(FakeHostErpCsv, WritesTheDuckHubOrderLayoutAsOneFilePerBatch) {
  TempDir dir;
  FakeHost host;
  auto plugin = Plugin::load(SINK_ERP_CSV_PLUGIN);
  auto sink = host.create(plugin, {{"dir", dir.path().string()}, {"line_ending", "lf"}});

  auto outcome = sink.write({
      {.key = "1", .version = "2026-07-05T12:01:05.000Z",
       .body = order("1", "new", "2026-07-05T12:01:05.000Z")},
      {.key = "2", .version = "2026-07-05T12:02:00.000Z",
       .body = order("2", "confirmed", "2026-07-05T12:02:00.000Z",
                     R"(,"confirmedAt":"2026-07-05T12:02:00.000Z")"),
       .previous = "2026-07-05T12:00:00.000Z"},
  });

  ASSERT_EQ(outcome.status, FERRY_WRITE_OK) << outcome.message;
  EXPECT_EQ(outcome.done, 2u);
  // Sequences 1 and 2, handed out by the fake host like the journal does, of the fake host's
  // journal "20260101T000000Z-0000000000000001".
  EXPECT_EQ(readFile(dir.path() / "ferry-20260101000000-000000-000000000001-000000000002.csv"),
            "order_id,order_number,status,type,customer_name,currency,subtotal,delivery_fee,"
            "discount,total,created_date,updated_at,confirmed_at,completed_at,item_count,"
            "previous_version\n"
            "1,101,new,delivery,\"Ann, \"\"A\"\"\",EUR,10.00,2.50,0.00,12.50,2026-07-05,"
            "2026-07-05T12:01:05.000Z,,,1,\n"
            "2,102,confirmed,delivery,\"Ann, \"\"A\"\"\",EUR,10.00,2.50,0.00,12.50,2026-07-05,"
            "2026-07-05T12:02:00.000Z,2026-07-05T12:02:00.000Z,,1,2026-07-05T12:00:00.000Z\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(FakeHostErpCsv, AnEventTheMappingCannotReadIsFatalAfterTheOnesBeforeIt) {
  TempDir dir;
  FakeHost host;
  auto sink = host.create(Plugin::load(SINK_ERP_CSV_PLUGIN),
                          {{"dir", dir.path().string()}, {"layout", "custom"},
                           {"columns", "id=/id; total=amount(/total)"}});

  auto outcome = sink.write({
      {.key = "1", .version = "2026-07-05T12:01:05Z", .body = R"({"id":"1","total":150})"},
      {.key = "2", .version = "2026-07-05T12:01:06Z", .body = R"({"id":"2","total":"lots"})"},
  });

  EXPECT_EQ(outcome.status, FERRY_WRITE_REFUSED);
  EXPECT_EQ(outcome.done, 1u);
  EXPECT_NE(outcome.message.find("total"), std::string::npos) << outcome.message;
}

TEST(FakeHostErpCsv, AMistakeInTheColumnsFailsCreateNamingIt) {
  FakeHost host;
  auto plugin = Plugin::load(SINK_ERP_CSV_PLUGIN);
  try {
    host.create(plugin, {{"dir", "/tmp"}, {"layout", "custom"}, {"columns", "id=/id; t=amout(/x)"}});
    FAIL() << "create() accepted an unknown function";
  } catch (const CreateError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown function 'amout'"), std::string::npos) << e.what();
  }
  // Refused by the option table already, as the host refuses it.
  EXPECT_THROW(host.create(plugin, {{"dir", "/tmp"}, {"layout", "nope"}}), CreateError);
  EXPECT_THROW(host.create(plugin, {{"layout", "custom"}}), CreateError);  // dir is required
  EXPECT_THROW(host.create(plugin, {{"dir", "/tmp"}, {"colour", "red"}}), CreateError);
}

TEST(FakeHostErpCsv, AMissingFolderIsTransient) {
  TempDir dir;
  FakeHost host;
  auto sink =
      host.create(Plugin::load(SINK_ERP_CSV_PLUGIN), {{"dir", (dir.path() / "gone").string()}});

  auto outcome = sink.write(
      {{.key = "1", .version = "2026-07-05T12:01:05Z", .body = order("1", "new", "2026-07-05T12:01:05Z")}});

  EXPECT_EQ(outcome.status, FERRY_WRITE_RETRY);
  EXPECT_EQ(outcome.done, 0u);
  EXPECT_NE(outcome.message.find((dir.path() / "gone").string()), std::string::npos)
      << outcome.message;
}

// skip_echo_lines acts on the event's metadata: the lines the source names in own_lines are left
// out, whatever their statuses say (the sink knows no source's rules).
TEST(FakeHostErpCsv, SkipEchoLinesLeavesOutTheLinesTheSourceNamesAsItsOwn) {
  const std::string body =
      R"({"id":"c-1","buyerOrder":{"purchaseOrderNumber":"4500001019"},"lines":[)"
      R"({"id":"c-1-1","status":{"processStatus":"Confirmed"}},)"
      R"({"id":"c-1-2","status":{"processStatus":"InProgress","inProgressStatus":"OpenBuyerReopenRequest"}},)"
      R"({"id":"c-1-3","status":{"processStatus":"Issued"}}]})";
  auto lineIds = [&](const std::string& skip, const std::string& meta) {
    TempDir dir;
    FakeHost host;
    auto sink = host.create(Plugin::load(SINK_ERP_CSV_PLUGIN),
                            {{"dir", dir.path().string()}, {"line_ending", "lf"},
                             {"layout", "custom"}, {"columns", "line=/id"}, {"rows", "/lines"},
                             {"skip_echo_lines", skip}});
    auto outcome = sink.write({{.key = "c-1", .version = "2025-04-23T09:00:00.000Z",
                                .body = body, .meta = meta}});
    EXPECT_EQ(outcome.status, FERRY_WRITE_OK) << outcome.message;
    std::string text;
    for (const auto& f : fs::directory_iterator(dir.path())) text += readFile(f.path());
    return text;
  };
  const std::string own_third = R"({"numbers":["4500001019"],"own_lines":[2]})";
  EXPECT_EQ(lineIds("on", own_third), "line\nc-1-1\nc-1-2\n");
  // The old spellings mean the same: the source's own_lines, not the statuses.
  EXPECT_EQ(lineIds("buyer", own_third), "line\nc-1-1\nc-1-2\n");
  EXPECT_EQ(lineIds("supplier", own_third), "line\nc-1-1\nc-1-2\n");
  // Without own_lines (another source, none of ours open) every line is written.
  EXPECT_EQ(lineIds("on", ""), "line\nc-1-1\nc-1-2\nc-1-3\n");
  EXPECT_EQ(lineIds("on", R"({"numbers":["4500001019"]})"), "line\nc-1-1\nc-1-2\nc-1-3\n");
  EXPECT_EQ(lineIds("off", own_third), "line\nc-1-1\nc-1-2\nc-1-3\n");
  // in-progress stays a rule on the lines themselves.
  EXPECT_EQ(lineIds("in-progress", own_third), "line\nc-1-1\nc-1-3\n");
}

TEST(FakeHostErpCsv, TheOldSkipEchoLinesSpellingsAreAcceptedWithAWarning) {
  FakeHost host;
  auto plugin = Plugin::load(SINK_ERP_CSV_PLUGIN);
  host.create(plugin, {{"dir", "/tmp"}, {"layout", "tradecloud_order_lines"},
                       {"skip_echo_lines", "buyer"}});
  EXPECT_TRUE(host.logged("skip_echo_lines = buyer is a deprecated spelling of skip_echo_lines = on"));
  FakeHost quiet;
  quiet.create(plugin, {{"dir", "/tmp"}, {"layout", "tradecloud_order_lines"},
                        {"skip_echo_lines", "on"}});
  EXPECT_FALSE(quiet.logged("deprecated"));
  // One row per event cannot leave lines out.
  EXPECT_THROW(host.create(plugin, {{"dir", "/tmp"}, {"skip_echo_lines", "on"}}), CreateError);
}

// An own_lines the sink cannot read is the source's mistake: that event goes to the dead letters
// (after the ones before it), rather than our own lines reaching the ERP.
TEST(FakeHostErpCsv, MetadataThatIsNoListOfLinesIsRefusedNamingIt) {
  TempDir dir;
  FakeHost host;
  auto sink = host.create(Plugin::load(SINK_ERP_CSV_PLUGIN),
                          {{"dir", dir.path().string()}, {"layout", "custom"},
                           {"columns", "line=/id"}, {"rows", "/lines"}, {"skip_echo_lines", "on"}});
  auto outcome = sink.write({
      {.key = "a", .version = "2025-04-23T09:00:00Z", .body = R"({"lines":[{"id":"a1"}]})",
       .meta = R"({"own_lines":[]})"},
      {.key = "b", .version = "2025-04-23T09:00:01Z", .body = R"({"lines":[{"id":"b1"}]})",
       .meta = R"({"own_lines":"0"})"},
  });
  EXPECT_EQ(outcome.status, FERRY_WRITE_REFUSED);
  EXPECT_EQ(outcome.done, 1u);
  EXPECT_NE(outcome.message.find("own_lines"), std::string::npos) << outcome.message;
}

// --- source_duckhub_orders ---------------------------------------------------------------------

std::string page(const std::string& items) { return R"({"items":[)" + items + R"(],"total":2})"; }

TEST(FakeHostDuckHub, EmitsEachOrderOfACannedPageExactlyAsReceived) {
  FakeHost host;
  std::string a = order("1", "new", "2026-07-05T12:01:05.000Z");
  std::string b = order("2", "new", "2026-07-05T12:01:06.000Z");
  host.onHttp([&](const HttpCall& call) {
    if (call.method == "GET" && call.url.find("/v1/orders?") != std::string::npos)
      return CannedResponse::json(200, page(a + "," + b));
    return CannedResponse::json(404, R"({"error":"not found"})");
  });
  auto source = host.create(Plugin::load(SOURCE_DUCKHUB_ORDERS_PLUGIN),
                            {{"base_url", "http://duckhub.test/v1/"}, {"api_key", kApiKey}});

  auto got = source.fetch("2026-07-05T12:00:00.000Z", 0, 50);

  ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
  EXPECT_EQ(got.received, 2u);
  ASSERT_EQ(got.items.size(), 2u);
  EXPECT_EQ(got.items[0].key, "1");
  EXPECT_EQ(got.items[0].entity, "order");
  EXPECT_EQ(got.items[0].version, "2026-07-05T12:01:05.000Z");
  EXPECT_EQ(got.items[0].body, a);
  EXPECT_EQ(got.items[1].body, b);
  EXPECT_FALSE(got.items[1].echo);

  auto requests = host.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].url,
            "http://duckhub.test/v1/orders?updatedSince=2026-07-05T12%3A00%3A00.000Z&limit=50&page=1");
  EXPECT_EQ(requests[0].header("authorization"), "Bearer " + kApiKey);
  EXPECT_EQ(requests[0].timeout_ms, 30000);  // the default "30s", resolved like the host does
  EXPECT_EQ(requests[0].rate_key, "duckhub:http://duckhub.test");
  EXPECT_TRUE(host.rateLimit("duckhub:http://duckhub.test").has_value());
}

// A page laid out with whitespace between its items: each body is the item exactly, without the
// blanks around it.
TEST(FakeHostDuckHub, BodiesCarryNoWhitespaceFromAroundTheItem) {
  FakeHost host;
  std::string a = order("1", "new", "2026-07-05T12:01:05.000Z");
  std::string b = order("2", "new", "2026-07-05T12:01:06.000Z");
  host.onHttp([&](const HttpCall&) {
    return CannedResponse::json(200, page("\n    " + a + " ,\n    " + b + "\t\r\n  "));
  });
  auto source = host.create(Plugin::load(SOURCE_DUCKHUB_ORDERS_PLUGIN),
                            {{"base_url", "http://duckhub.test/v1/"}, {"api_key", kApiKey}});
  auto got = source.fetch("2026-07-05T12:00:00.000Z", 0, 50);
  ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
  ASSERT_EQ(got.items.size(), 2u);
  EXPECT_EQ(got.items[0].body, a);
  EXPECT_EQ(got.items[1].body, b);
}

// The event metadata names the order number, for `ferry trace 1007`: DuckHub sends it as a JSON
// integer; a string is taken as it is; an order without one gets no metadata.
TEST(FakeHostDuckHub, EmitsTheOrderNumberAsMetadata) {
  FakeHost host;
  std::string text_number = order("1", "new", "2026-07-05T12:01:05.000Z");  // "orderNumber":"101"
  std::string integer = R"({"id":"2","orderNumber":1007,"updatedAt":"2026-07-05T12:01:06.000Z"})";
  std::string none = R"({"id":"3","updatedAt":"2026-07-05T12:01:07.000Z"})";
  host.onHttp([&](const HttpCall&) {
    return CannedResponse::json(200, page(text_number + "," + integer + "," + none));
  });
  auto source = host.create(Plugin::load(SOURCE_DUCKHUB_ORDERS_PLUGIN),
                            {{"base_url", "http://duckhub.test/v1"}, {"api_key", kApiKey}});
  auto got = source.fetch("2026-07-05T12:00:00.000Z");
  ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
  ASSERT_EQ(got.items.size(), 3u);
  EXPECT_EQ(got.items[0].meta, R"({"numbers":["101"]})");
  EXPECT_EQ(got.items[1].meta, R"({"numbers":["1007"]})");
  EXPECT_EQ(got.items[2].meta, "");
}

TEST(FakeHostDuckHub, ARefusedKeyStopsAndAnOverloadedServerIsRetriedLater) {
  FakeHost host;
  int status = 401;
  host.onHttp([&](const HttpCall&) {
    CannedResponse r = CannedResponse::json(status, R"({"error":"nope"})");
    r.headers.emplace_back("Retry-After", "7");
    return r;
  });
  auto source = host.create(Plugin::load(SOURCE_DUCKHUB_ORDERS_PLUGIN),
                            {{"base_url", "http://duckhub.test/v1"}, {"api_key", kApiKey},
                             {"rate_limit", "off"}});

  auto refused = source.fetch();
  EXPECT_EQ(refused.status, FERRY_FETCH_AUTH);
  EXPECT_NE(refused.message.find("GET /orders"), std::string::npos) << refused.message;
  EXPECT_EQ(source.check().status, FERRY_CHECK_AUTH);

  status = 503;
  auto busy = source.fetch();
  EXPECT_EQ(busy.status, FERRY_FETCH_RETRY);
  EXPECT_EQ(busy.retry_after_ms, 7000);
  EXPECT_TRUE(busy.items.empty());
  EXPECT_EQ(host.requests().back().rate_key, "");  // rate_limit = off
}

TEST(FakeHostDuckHub, ConfirmsANewOrderAndRecognisesItsOwnChangeAfterARestart) {
  FakeHost host;
  std::string fresh = order("7", "new", "2026-07-05T12:01:05.000Z");
  std::string confirmed = order("7", "confirmed", "2026-07-05T12:03:00.000Z",
                                R"(,"confirmedAt":"2026-07-05T12:03:00.000Z")");
  host.onHttp([&](const HttpCall& call) {
    if (call.method == "PATCH") return CannedResponse::json(200, confirmed);
    return CannedResponse::json(200, page(confirmed));
  });
  auto plugin = Plugin::load(SOURCE_DUCKHUB_ORDERS_PLUGIN);
  std::map<std::string, std::string> options{{"base_url", "http://duckhub.test/v1"},
                                             {"api_key", kApiKey},
                                             {"confirm_delivered_as", "confirmed"}};
  {
    auto source = host.create(plugin, options, "venue");
    EXPECT_TRUE(source.wantsDelivered());
    auto outcome = source.delivered(
        {.key = "7", .version = "2026-07-05T12:01:05.000Z", .body = fresh, .source = "venue"});
    ASSERT_TRUE(outcome.ok()) << outcome.message;
  }
  auto requests = host.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PATCH");
  EXPECT_EQ(requests[0].url, "http://duckhub.test/v1/orders/7/status");
  EXPECT_EQ(requests[0].body, R"({"status":"confirmed"})");
  EXPECT_EQ(host.counter("orders_confirmed_total", "venue"), 1);
  EXPECT_TRUE(host.logged("order 7 moved to confirmed"));
  EXPECT_FALSE(host.state("venue").empty());  // remembered durably, before the PATCH

  // A new instance under the same name sees the same durable state: the confirmed version, which
  // our PATCH made, comes back marked as an echo.
  auto restarted = host.create(plugin, options, "venue");
  auto got = restarted.fetch("2026-07-05T12:00:00.000Z");
  ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
  ASSERT_EQ(got.items.size(), 1u);
  EXPECT_TRUE(got.items[0].echo);

  // Without confirmation the hook is not wanted at all.
  auto plain = host.create(plugin, {{"api_key", kApiKey}});
  EXPECT_FALSE(plain.wantsDelivered());
}

}  // namespace
