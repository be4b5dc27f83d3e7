// sink_rest_forwarder end to end: the real `ferry` executable runs test_source (orders from a
// JSON Lines file) into the real sink_rest_forwarder.so, which POSTs to a Receiver started by the
// test on 127.0.0.1. The tests assert what the endpoint's owner sees: the requests, their headers
// and exact bodies, and what `ferry status` and `ferry dead-letters` say.
#include <Poco/Base64Encoder.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/ServerSocket.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "FerryTest.h"
#include "Receiver.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

// A test_source line whose body carries text that JSON must escape, numbers, null and nesting.
std::string orderLine(const std::string& key, const std::string& version) {
  return "{\"entity\":\"order\",\"key\":\"" + key + "\",\"version\":\"" + version +
         "\",\"body\":{\"id\":\"" + key +
         "\",\"note\":\"quote \\\" backslash \\\\ caf\\u00e9 \\u2713\",\"total\":12.5,"
         "\"coupon\":null,\"lines\":[{\"sku\":\"A-1\",\"qty\":2}],\"updatedAt\":\"" +
         version + "\"}}\n";
}
const char* const kNote = "quote \" backslash \\ caf\xc3\xa9 \xe2\x9c\x93";

std::string keyName(int i) { return "k" + std::to_string(i); }

// Lines for keys k0..k(n-1), version = base + i seconds.
std::string orders(int n, int64_t base_ms = 0) {
  std::string text;
  for (int i = 0; i < n; ++i) text += orderLine(keyName(i), versionAt(base_ms + i * 1000));
  return text;
}

std::string idOf(const std::string& key, const std::string& version) {
  return "src/order/" + key + "/" + version;
}

// The envelopes of a request: one object, or the elements of an array.
std::vector<Poco::JSON::Object::Ptr> envelopes(const Request& r) {
  std::vector<Poco::JSON::Object::Ptr> out;
  Poco::Dynamic::Var v = Poco::JSON::Parser().parse(r.body);
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    auto a = v.extract<Poco::JSON::Array::Ptr>();
    for (unsigned i = 0; i < a->size(); ++i) out.push_back(a->getObject(i));
  } else {
    out.push_back(v.extract<Poco::JSON::Object::Ptr>());
  }
  return out;
}

bool accepted(const Request& r) {
  return r.answer.status >= 200 && r.answer.status < 300 && r.answer.sleep_ms == 0;
}

// The delivery contract, checked over every request the receiver saw: each expected event
// arrives and is accepted exactly once; per key, events arrive in journal order (a request never
// carries a version before the previous one of its key was accepted); an event is only sent again
// after a failed attempt; the Idempotency-Key of a request is its event's id (one event) or the
// same for every attempt of the same events (a batch). `expected` is in journal order; ids in
// `refused` may appear without ever being accepted.
void expectDelivered(const std::vector<Request>& requests, const std::vector<std::string>& expected,
                     const std::set<std::string>& refused = {}) {
  std::map<std::string, std::vector<std::string>> per_key;  // key -> ids in journal order
  std::map<std::string, std::string> key_of;
  for (const auto& id : expected) {
    std::string key = id.substr(0, id.rfind('/'));
    key = key.substr(key.rfind('/') + 1);
    per_key[key].push_back(id);
    key_of[id] = key;
  }
  std::map<std::string, size_t> next;  // key -> index of the next id to be accepted
  std::map<std::string, int> accepted_count;
  std::map<std::string, std::string> batch_keys;  // "first|last" -> Idempotency-Key
  for (size_t n = 0; n < requests.size(); ++n) {
    const Request& r = requests[n];
    std::vector<Poco::JSON::Object::Ptr> envs;
    try {
      envs = envelopes(r);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "request " << n << " is not JSON: " << r.body;
      continue;
    }
    ASSERT_FALSE(envs.empty());
    const std::string first = str(envs.front(), "id"), last = str(envs.back(), "id");
    if (envs.size() == 1) {
      EXPECT_EQ(r.header("idempotency-key"), first) << "request " << n;
    } else {
      auto [it, fresh] = batch_keys.emplace(first + "|" + last, r.header("idempotency-key"));
      EXPECT_EQ(it->second, r.header("idempotency-key")) << "request " << n << " " << first;
    }
    for (const auto& e : envs) {
      const std::string id = str(e, "id");
      if (refused.count(id)) continue;
      ASSERT_TRUE(key_of.count(id)) << "unexpected event " << id << " in request " << n;
      const std::string& key = key_of[id];
      ASSERT_LT(next[key], per_key[key].size())
          << id << " sent again (request " << n << ") after it was accepted";
      EXPECT_EQ(id, per_key[key][next[key]])
          << "request " << n << " carries " << id << " out of journal order";
      if (accepted(r)) {
        ++accepted_count[id];
        ++next[key];
      }
    }
  }
  for (const auto& id : expected) EXPECT_EQ(accepted_count[id], 1) << id << " accepted";
}

class RestForwarderTest : public FerryTest {
 protected:
  void SetUp() override {
    fs::create_directories(plugins_);
    fs::copy_file(TEST_SOURCE_PLUGIN, plugins_ + "/test_source.so");
    fs::copy_file(SINK_REST_FORWARDER_PLUGIN, plugins_ + "/sink_rest_forwarder.so");
  }

  // [host] with our plugin folder and fast retries, and the source over data_.
  std::string hostAndSource() const {
    return "[host]\njournal = " + dir_.file("journal.db") + "\nplugin_dir = " + plugins_ +
           "\nlog_level = info\nretry_initial = 50ms\nretry_max = 500ms\n\n" +
           sourceSection("src", data_, "page_size = 50\n");
  }

  // hostAndSource() and the sink `hook`.
  void writeHookConfig(const std::string& url, const std::string& extra = "") {
    writeFile(config_, hostAndSource() +
                           section("sink.hook",
                                   {{"plugin", "sink_rest_forwarder"},
                                    {"url", url},
                                    {"batch_delay", "50ms"}},
                                   extra));
  }

  // `run --once`, which must exit 0, or 2 when the run left new dead letters.
  RunResult runOk(int expected_exit = 0) {
    RunResult r = runOnce();
    EXPECT_EQ(r.exit_code, expected_exit) << describe(r);
    return r;
  }

  static std::vector<std::string> ids(int n, int64_t base_ms = 0) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(idOf(keyName(i), versionAt(base_ms + i * 1000)));
    return out;
  }

  std::string plugins_ = dir_.file("plugins");
  std::string data_ = dir_.file("orders.jsonl");
};

// 1. Every event arrives once, in journal order per key, as the documented envelope with the body
//    embedded as JSON; the headers are right; the `headers` option reaches the endpoint.
TEST_F(RestForwarderTest, DeliversEveryEventAsEnvelopeInOrder) {
  Receiver receiver;
  writeFile(data_, orders(4));
  writeHookConfig(receiver.url("/hook?tenant=7"),
                  "headers = Authorization: Bearer xyz-secret; X-Tenant: 7; X-Note: a\\;b\n");
  RunResult first = runOk();
  // Second pass: new versions of k1 and k3 (later than every first version).
  appendFile(data_, orderLine("k1", versionAt(10000)) + orderLine("k3", versionAt(11000)));
  RunResult second = runOk();
  for (const auto* r : {&first, &second})
    EXPECT_EQ(r->err.find("xyz-secret"), std::string::npos) << "a secret header leaked: " << r->err;

  auto requests = receiver.requests();
  std::vector<std::string> expected = ids(4);
  expected.push_back(idOf("k1", versionAt(10000)));
  expected.push_back(idOf("k3", versionAt(11000)));
  expectDelivered(requests, expected);
  ASSERT_EQ(requests.size(), 6u);

  int64_t last_sequence = 0;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.uri, "/hook?tenant=7");
    EXPECT_EQ(r.header("content-type"), "application/json");
    EXPECT_EQ(r.header("user-agent"), std::string("ferry/") + FERRY_EXPECTED_VERSION);
    EXPECT_EQ(r.header("authorization"), "Bearer xyz-secret");
    EXPECT_EQ(r.header("x-tenant"), "7");
    EXPECT_EQ(r.header("x-note"), "a;b");
    EXPECT_EQ(r.header("webhook-signature"), "") << "signed without a secret";
    ASSERT_EQ(r.body.front(), '{') << "batch = 1 sends one object: " << r.body;

    auto e = envelopes(r).front();
    const std::string key = str(e, "key"), version = str(e, "version");
    EXPECT_EQ(str(e, "id"), idOf(key, version));
    EXPECT_EQ(str(e, "source"), "src");
    EXPECT_EQ(str(e, "entity"), "order");
    EXPECT_EQ(e->getValue<bool>("echo"), false);
    EXPECT_GT(num(e, "sequence"), last_sequence);
    last_sequence = num(e, "sequence");
    const bool second_version = version == versionAt(10000) || version == versionAt(11000);
    if (second_version) {
      EXPECT_EQ(str(e, "previous"), versionAt((key[1] - '0') * 1000)) << key;
    } else {
      EXPECT_TRUE(e->isNull("previous")) << key << " is new: previous must be null";
    }
    // The body is JSON inside the envelope, not a string holding JSON.
    ASSERT_TRUE(e->isObject("body")) << r.body;
    auto body = e->getObject("body");
    EXPECT_EQ(str(body, "id"), key);
    EXPECT_EQ(str(body, "note"), kNote);
    EXPECT_DOUBLE_EQ(body->getValue<double>("total"), 12.5);
    EXPECT_TRUE(body->isNull("coupon"));
    EXPECT_EQ(body->getArray("lines")->getObject(0)->getValue<int>("qty"), 2);
    EXPECT_EQ(str(body, "updatedAt"), version);
  }
}

// 2. Random 500s and 429s (Retry-After 0 or 1): every event still arrives, in order, and an event
//    is only sent again after a failure, with the same Idempotency-Key.
TEST_F(RestForwarderTest, RandomTransientFailuresLoseNothing) {
  Receiver receiver;
  std::mt19937 rng(20250423);
  receiver.setScript([&rng](const Request&, size_t index) {
    const int roll = static_cast<int>(rng() % 100);
    if (roll < 25) return Answer{500, "internal error", "", 0};
    if (roll < 40) return Answer{429, "slow down", index % 4 == 0 ? "1" : "0", 0};
    return Answer{200, "ok", "", 0};
  });
  writeFile(data_, orders(20));
  writeHookConfig(receiver.url());
  runOk();

  auto requests = receiver.requests();
  expectDelivered(requests, ids(20));
  int failures_500 = 0, failures_429 = 0;
  for (const auto& r : requests) {
    failures_500 += r.answer.status == 500;
    failures_429 += r.answer.status == 429;
  }
  EXPECT_GT(failures_500, 0) << "the script did not exercise 500";
  EXPECT_GT(failures_429, 0) << "the script did not exercise 429";
}

// 2b. Occasional errors on a long run (batch = 1, one event per request): a transient error
//     after progress is not a failure streak, so each fault costs one short retry and the sink
//     never falls behind for good. With the default-like retry_max of 60 s, a backoff that kept
//     growing across successful requests would need minutes here.
TEST_F(RestForwarderTest, OccasionalErrorsDoNotGrowTheBackoff) {
  const int kEvents = 2000;
  const int64_t kRetryInitialMs = 100;
  auto config = [&](const std::string& url) {
    writeFile(config_, "[host]\njournal = " + dir_.file("journal.db") + "\nplugin_dir = " +
                           plugins_ + "\nlog_level = info\nretry_initial = " +
                           std::to_string(kRetryInitialMs) + "ms\nretry_max = 60s\n\n" +
                           sourceSection("src", data_, "page_size = 100\n") +
                           section("sink.hook",
                                   {{"plugin", "sink_rest_forwarder"},
                                    {"url", url},
                                    {"batch", "1"},
                                    {"batch_size", "100"},
                                    {"batch_delay", "50ms"}},
                                   ""));
  };
  writeFile(data_, orders(kEvents));
  auto timedRun = [&] {
    const auto start = std::chrono::steady_clock::now();
    runOk();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };

  // The fault-free time of the same run, on a fresh journal.
  int64_t clean_ms = 0;
  {
    Receiver clean;
    config(clean.url());
    clean_ms = timedRun();
    ASSERT_EQ(clean.requests().size(), static_cast<size_t>(kEvents));
  }
  fs::remove(dir_.file("journal.db"));
  fs::remove(dir_.file("journal.db-wal"));
  fs::remove(dir_.file("journal.db-shm"));

  Receiver receiver;
  std::mt19937 rng(4711);
  receiver.setScript([&rng](const Request&, size_t) {
    const int roll = static_cast<int>(rng() % 100);
    if (roll < 4) return Answer{500, "internal error", "", 0};
    if (roll < 7) return Answer{503, "unavailable", "", 0};
    if (roll < 10) return Answer{429, "slow down", "", 0};
    return Answer{200, "ok", "", 0};
  });
  config(receiver.url());
  const int64_t faulty_ms = timedRun();

  auto requests = receiver.requests();
  expectDelivered(requests, ids(kEvents));
  // Every injected fault costs exactly one more request, and nothing else is re-sent.
  size_t faults = 0;
  int64_t allowed_wait_ms = 0;  // the longest the backoff may wait: initial × 2^(streak − 1)
  int streak = 0;
  for (const auto& r : requests) {
    if (r.answer.status == 200) {
      streak = 0;
      continue;
    }
    ++faults;
    ++streak;
    allowed_wait_ms += kRetryInitialMs << std::min(streak - 1, 20);
  }
  EXPECT_GT(faults, 100u) << "the script did not inject enough faults";
  EXPECT_EQ(requests.size(), kEvents + faults);
  EXPECT_LE(faulty_ms, 2 * clean_ms + allowed_wait_ms + 3000)
      << "fault-free " << clean_ms << " ms, with " << faults << " faults " << faulty_ms
      << " ms; the backoff may add at most " << allowed_wait_ms << " ms";
}

// 3. 410 Gone stops the sink with a status naming the 410; `run --once` exits 1; the endpoint is
//    not asked again.
TEST_F(RestForwarderTest, GoneStopsTheSink) {
  Receiver receiver;
  receiver.setScript([](const Request&, size_t index) {
    return index < 2 ? Answer{200, "ok", "", 0}
                     : Answer{410, "this endpoint was retired on 2025-04-01", "", 0};
  });
  writeFile(data_, orders(5));
  writeHookConfig(receiver.url());
  RunResult run = runOnce();
  EXPECT_EQ(run.exit_code, 1) << describe(run);

  auto requests = receiver.requests();
  EXPECT_EQ(requests.size(), 3u) << "the sink must stop at the 410, not retry";
  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto hook = instance(st, "sinks", "hook");
  ASSERT_FALSE(hook.isNull());
  EXPECT_EQ(str(hook, "state"), "stopped");
  EXPECT_NE(str(hook, "message").find("410"), std::string::npos) << str(hook, "message");
  EXPECT_NE(str(hook, "message").find("retired"), std::string::npos) << str(hook, "message");
  EXPECT_EQ(num(hook, "backlog"), 3) << "k2..k4 are still owed to the endpoint";
  auto dead = deadLetters("hook");
  ASSERT_FALSE(dead.isNull());
  EXPECT_EQ(dead->size(), 0u) << "a retired endpoint is not the events' fault";
}

// 4 and 5. A 400 for one event dead-letters that event only, with the status and a short body
//    excerpt as its reason; the others arrive. Replayed once the endpoint accepts it, exactly that
//    event arrives, and the dead letters are empty.
TEST_F(RestForwarderTest, RejectedEventIsDeadLetteredAndReplayed) {
  Receiver receiver;
  const std::string rejection = "order k3 rejected: " + std::string(300, 'x') + "TAIL";
  receiver.setScript([&rejection](const Request& r, size_t) {
    if (r.body.find("\"key\":\"k3\"") != std::string::npos) return Answer{400, rejection, "", 0};
    return Answer{200, "ok", "", 0};
  });
  writeFile(data_, orders(6));
  writeHookConfig(receiver.url());
  runOk(2);  // done, with a new dead letter

  const std::string k3 = idOf("k3", versionAt(3000));
  std::vector<std::string> others = ids(6);
  others.erase(std::find(others.begin(), others.end(), k3));
  expectDelivered(receiver.requests(), others, {k3});

  auto dead = deadLetters("hook");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 1u);
  auto d = dead->getObject(0);
  EXPECT_EQ(str(d, "key"), "k3");
  const std::string reason = str(d, "reason");
  EXPECT_NE(reason.find("HTTP 400"), std::string::npos) << reason;
  EXPECT_NE(reason.find("order k3 rejected: xxx"), std::string::npos) << reason;
  EXPECT_EQ(reason.find("TAIL"), std::string::npos) << "the excerpt must be cut: " << reason;
  EXPECT_LE(std::count(reason.begin(), reason.end(), 'x'), 200) << reason;

  // The endpoint is fixed; replay.
  receiver.setScript([](const Request&, size_t) { return Answer{200, "ok", "", 0}; });
  const size_t before = receiver.requests().size();
  RunResult replay = ferry({"dead-letters", "replay", "--config", config_, "--sink", "hook"}, 60s);
  ASSERT_EQ(replay.exit_code, 0) << describe(replay);
  runOk();

  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), before + 1) << "exactly the dead letter is sent again";
  const Request& again = requests.back();
  auto e = envelopes(again).front();
  EXPECT_EQ(str(e, "id"), k3);
  EXPECT_EQ(again.header("idempotency-key"), k3);
  EXPECT_EQ(str(e->getObject("body"), "id"), "k3");
  auto after = deadLetters("hook");
  ASSERT_FALSE(after.isNull());
  EXPECT_EQ(after->size(), 0u);
}

// 6. The Standard Webhooks signature verifies with an independent implementation (Python's hmac
//    over the exact bytes received), and fails for a tampered body or timestamp.
TEST_F(RestForwarderTest, SignatureVerifiesIndependentlyAndTamperingFails) {
  Receiver receiver;
  std::string raw_key;
  for (int i = 0; i < 32; ++i) raw_key.push_back(static_cast<char>(i * 37 + 11));
  std::ostringstream b64;
  Poco::Base64Encoder encoder(b64);
  encoder.rdbuf()->setLineLength(0);
  encoder << raw_key;
  encoder.close();
  const std::string secret = "whsec_" + b64.str();

  writeFile(data_, orders(3));
  writeHookConfig(receiver.url(), "secret = " + secret + "\n");
  RunResult run = runOk();
  EXPECT_EQ(run.err.find(b64.str()), std::string::npos) << "the secret leaked into the log";

  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  auto verify = [&](const Request& r, const std::string& body, const std::string& timestamp) {
    writeFile(dir_.file("secret"), secret);
    writeFile(dir_.file("id"), r.header("webhook-id"));
    writeFile(dir_.file("timestamp"), timestamp);
    writeFile(dir_.file("body"), body);
    writeFile(dir_.file("signature"), r.header("webhook-signature"));
    return runCommand({PYTHON3, VERIFY_SIGNATURE_SCRIPT, dir_.file("secret"), dir_.file("id"),
                       dir_.file("timestamp"), dir_.file("body"), dir_.file("signature")},
                      dir_.path(), 60s);
  };
  for (const auto& r : requests) {
    const std::string id = str(envelopes(r).front(), "id");
    EXPECT_EQ(r.header("webhook-id"), id);
    EXPECT_EQ(r.header("idempotency-key"), id);
    const std::string ts = r.header("webhook-timestamp");
    ASSERT_FALSE(ts.empty());
    EXPECT_NEAR(std::stoll(ts), now_s, 3600) << "webhook-timestamp is not unix seconds: " << ts;
    EXPECT_EQ(r.header("webhook-signature").rfind("v1,", 0), 0u) << r.header("webhook-signature");

    RunResult good = verify(r, r.body, ts);
    EXPECT_EQ(good.exit_code, 0) << describe(good);

    std::string tampered = r.body;
    const size_t at = tampered.find("\"total\":12.5");
    ASSERT_NE(at, std::string::npos);
    tampered.replace(at, 12, "\"total\":92.5");
    RunResult bad = verify(r, tampered, ts);
    EXPECT_EQ(bad.exit_code, 1) << "a tampered body verified: " << describe(bad);
    RunResult late = verify(r, r.body, std::to_string(std::stoll(ts) + 1));
    EXPECT_EQ(late.exit_code, 1) << "a changed timestamp verified: " << describe(late);
  }
}

// 7. batch = 3: each request is a JSON array of at most 3 envelopes, in journal order, with a
//    batch Idempotency-Key.
TEST_F(RestForwarderTest, BatchesCarryArraysInOrder) {
  Receiver receiver;
  writeFile(data_, orders(8));
  writeHookConfig(receiver.url(), "batch = 3\n");
  runOk();

  auto requests = receiver.requests();
  expectDelivered(requests, ids(8));
  std::vector<std::string> keys;
  size_t largest = 0;
  std::set<std::string> batch_keys;
  for (const auto& r : requests) {
    ASSERT_EQ(r.body.front(), '[') << "batch > 1 sends arrays: " << r.body;
    auto envs = envelopes(r);
    EXPECT_LE(envs.size(), 3u);
    largest = std::max(largest, envs.size());
    for (const auto& e : envs) keys.push_back(str(e, "key"));
    if (envs.size() > 1) {
      EXPECT_EQ(r.header("idempotency-key").rfind("batch_", 0), 0u) << r.header("idempotency-key");
      batch_keys.insert(r.header("idempotency-key"));
    }
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}));
  EXPECT_EQ(largest, 3u) << "events were not batched";
  EXPECT_EQ(batch_keys.size(), std::count_if(requests.begin(), requests.end(), [](const auto& r) {
              return envelopes(r).size() > 1;
            })) << "two different batches share an Idempotency-Key";
}

// 7b. batch = 3 and a 400 for a request holding one bad event: the sink finds the bad event by
//     sending the request's events one by one; only it is dead-lettered.
TEST_F(RestForwarderTest, BatchRejectionDeadLettersOnlyTheBadEvent) {
  Receiver receiver;
  receiver.setScript([](const Request& r, size_t) {
    if (r.body.find("\"key\":\"k4\"") != std::string::npos)
      return Answer{422, "k4: unknown product", "", 0};
    return Answer{200, "ok", "", 0};
  });
  writeFile(data_, orders(8));
  writeHookConfig(receiver.url(), "batch = 3\n");
  runOk(2);  // done, with a new dead letter

  const std::string k4 = idOf("k4", versionAt(4000));
  std::vector<std::string> others = ids(8);
  others.erase(std::find(others.begin(), others.end(), k4));
  expectDelivered(receiver.requests(), others, {k4});
  auto dead = deadLetters("hook");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ(str(dead->getObject(0), "key"), "k4");
  EXPECT_NE(str(dead->getObject(0), "reason").find("HTTP 422"), std::string::npos);
}

// 8. An endpoint slower than `timeout` is retried, with the same Idempotency-Key, until the
//    event is accepted.
TEST_F(RestForwarderTest, TimeoutIsRetried) {
  Receiver receiver;
  receiver.setScript([](const Request&, size_t index) {
    return index == 0 ? Answer{200, "ok (too late)", "", 1500} : Answer{200, "ok", "", 0};
  });
  writeFile(data_, orders(3));
  writeHookConfig(receiver.url(), "timeout = 300ms\n");
  RunResult run = runOk();

  auto requests = receiver.requests();
  expectDelivered(requests, ids(3));
  ASSERT_GE(requests.size(), 4u);
  EXPECT_EQ(requests[1].header("idempotency-key"), requests[0].header("idempotency-key"))
      << "the timed-out event must be sent again first";
  EXPECT_NE(run.err.find("timed out"), std::string::npos) << run.err;
}

// 8b. An event whose id cannot go into a header: a key with CR LF, journalled before the host
//     refused control characters at emit (an older ferry's journal; the test writes it into the
//     journal the way such a release left it). That event alone is dead-lettered, with a reason
//     naming the header; every other event is delivered exactly once, none is sent again.
TEST_F(RestForwarderTest, EventWhoseIdCannotBeAHeaderIsDeadLetteredAlone) {
  Receiver receiver;
  writeFile(data_, orders(8));
  writeFile(config_, hostAndSource());
  runOk();
  const std::string bad_key = "k5\r\nX-Injected: 1";
  RunResult edit = runCommand({"sqlite3", dir_.file("journal.db"),
                               "UPDATE events SET key = 'k5' || char(13, 10) || 'X-Injected: 1' "
                               "WHERE key = 'k5'"},
                              dir_.path(), 60s);
  ASSERT_EQ(edit.exit_code, 0) << describe(edit);

  writeHookConfig(receiver.url());
  RunResult run = runOnce();
  EXPECT_EQ(run.exit_code, 2) << "one new dead letter: " << describe(run);

  const auto requests = receiver.requests();
  std::vector<std::string> others = ids(8);
  others.erase(others.begin() + 5);
  expectDelivered(requests, others);
  EXPECT_EQ(requests.size(), others.size()) << "an event was sent twice, or the bad one at all";
  for (const auto& r : requests) EXPECT_EQ(r.header("x-injected"), "") << r.body;

  auto dead = deadLetters("hook");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 1u) << "only the event whose id cannot be a header";
  EXPECT_EQ(str(dead->getObject(0), "key"), bad_key);
  const std::string reason = str(dead->getObject(0), "reason");
  EXPECT_NE(reason.find("Idempotency-Key"), std::string::npos) << reason;
  EXPECT_NE(reason.find("CR, LF or NUL"), std::string::npos) << reason;
}

// 8c. Secrets an endpoint echoes back are masked wherever its answer lands: the log, `ferry
//     status` (text and JSON), the dead letters and the journal file. Each header value of
//     `headers`, the password of the URL and the signing key are masked on their own, and the
//     text around them is left whole. A secret too short to mask safely is refused by `check`.
TEST_F(RestForwarderTest, EchoedSecretsAreMaskedEverywhereAndShortSecretsAreRefused) {
  const std::string token = "tok-4f9a8b7c6d5e", api_key = "key-0987654321abc",
                    url_password = "pw-5566778899", signing = "signing-key-42xyz";
  Receiver receiver;
  receiver.setScript([&](const Request& r, size_t index) {
    // An endpoint that quotes what it got (the headers as received) and what it knows.
    const std::string echo = "expected no " + r.header("authorization") + " / " +
                             r.header("x-api-key") + " / " + url_password + " / " + signing +
                             " for tenant " + r.header("x-tenant");
    return Answer{index == 0 ? 400 : 410, echo, "", 0};
  });
  writeFile(data_, orders(2));
  const std::string url = "http://hook:" + url_password + "@127.0.0.1:" +
                          std::to_string(receiver.port()) + "/hook";
  writeHookConfig(url, "headers = Authorization: Bearer " + token + "; X-Api-Key: " + api_key +
                           "; X-Tenant: 7\nsecret = " + signing + "\n");
  RunResult run = runOnce();
  EXPECT_EQ(run.exit_code, 1) << "stopped by the 410: " << describe(run);
  ASSERT_EQ(receiver.requests().size(), 2u);
  EXPECT_EQ(receiver.requests()[0].header("authorization"), "Bearer " + token);

  auto dead = deadLetters("hook");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 1u);
  const std::string masked = "expected no *** / *** / *** / *** for tenant 7";
  const std::string reason = str(dead->getObject(0), "reason");
  EXPECT_NE(reason.find(masked), std::string::npos) << reason;
  auto hook = instance(status(), "sinks", "hook");
  ASSERT_FALSE(hook.isNull());
  EXPECT_EQ(str(hook, "state"), "stopped");
  EXPECT_NE(str(hook, "message").find(masked), std::string::npos) << str(hook, "message");

  const std::vector<std::pair<std::string, std::string>> places = {
      {"the log", run.err + run.out},
      {"ferry status", ferry({"status", "--config", config_}, 60s).out},
      {"ferry status --json", ferry({"status", "--config", config_, "--json"}, 60s).out},
      {"ferry dead-letters list --json",
       ferry({"dead-letters", "list", "--config", config_, "--json"}, 60s).out},
      {"the journal", readFile(dir_.file("journal.db")) + readFile(dir_.file("journal.db-wal"))}};
  for (const auto& [where, text] : places) {
    EXPECT_NE(text.find("***"), std::string::npos) << where << " does not show the answer";
    for (const auto& secret : {token, api_key, url_password, signing})
      EXPECT_EQ(text.find(secret), std::string::npos) << secret << " reached " << where;
  }

  // A secret this short would mask its text wherever it occurs in a message (a one-letter one
  // turned "expected" into "e***pected"): refused, with file, section and key, never the value.
  writeHookConfig(receiver.url(), "secret = Zx9Qv\n");
  RunResult check = ferry({"check", "--config", config_}, 60s);
  const std::string said = check.out + check.err;
  EXPECT_EQ(check.exit_code, 78) << describe(check);
  EXPECT_NE(said.find(config_ + ": [sink.hook] secret: "), std::string::npos) << said;
  EXPECT_NE(said.find("at least 8 characters"), std::string::npos) << said;
  EXPECT_EQ(said.find("Zx9Qv"), std::string::npos) << said;
}

// 9. TLS: a self-signed endpoint is refused by default (the sink stops and says why, nothing is
//    sent); with tls_verify = false it is accepted, and the choice is logged as a warning.
class RestForwarderTlsTest : public RestForwarderTest {
 protected:
  void SetUp() override {
    RestForwarderTest::SetUp();
    Poco::Net::initializeSSL();
    context_ = selfSignedContext(dir_.path());
  }
  void TearDown() override {
    RestForwarderTest::TearDown();
    context_.reset();
    Poco::Net::uninitializeSSL();
  }
  Poco::Net::Context::Ptr context_;
};

// `ferry check --connect` reaches the endpoint for real: a closed port and an untrusted
// certificate fail it (exit 69, naming the sink and why), a live endpoint passes, and the check
// delivers nothing.
TEST_F(RestForwarderTlsTest, CheckConnectFailsOnAClosedPortOrAnUntrustedCertificate) {
  writeFile(data_, orders(1));
  uint16_t closed = 0;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    closed = probe.address().port();
  }
  writeHookConfig("http://127.0.0.1:" + std::to_string(closed) + "/hook");
  RunResult refused = ferry({"check", "--connect", "--config", config_});
  EXPECT_EQ(refused.exit_code, 69) << describe(refused);
  EXPECT_NE((refused.out + refused.err).find("[sink.hook]"), std::string::npos) << describe(refused);
  EXPECT_NE((refused.out + refused.err).find("refused"), std::string::npos) << describe(refused);

  Receiver tls(context_);
  writeHookConfig(tls.url());
  RunResult untrusted = ferry({"check", "--connect", "--config", config_});
  EXPECT_EQ(untrusted.exit_code, 69) << describe(untrusted);
  EXPECT_NE((untrusted.out + untrusted.err).find("certificate"), std::string::npos)
      << describe(untrusted);

  Receiver plain;
  writeHookConfig(plain.url());
  RunResult ok = ferry({"check", "--connect", "--config", config_});
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  auto requests = plain.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "HEAD");
  EXPECT_TRUE(tls.requests().empty());
}

TEST_F(RestForwarderTlsTest, SelfSignedIsRefusedUnlessVerificationIsOff) {
  {
    Receiver receiver(context_);
    writeFile(data_, orders(3));
    writeHookConfig(receiver.url());
    RunResult run = runOnce();
    EXPECT_EQ(run.exit_code, 1) << describe(run);
    EXPECT_EQ(receiver.requests().size(), 0u);
    auto hook = instance(status(), "sinks", "hook");
    ASSERT_FALSE(hook.isNull());
    EXPECT_EQ(str(hook, "state"), "stopped");
    EXPECT_NE(str(hook, "message").find("certificate"), std::string::npos)
        << str(hook, "message");
  }
  {
    // A fresh journal: the stopped sink above still owes its events.
    fs::remove(dir_.file("journal.db"));
    Receiver receiver(context_);
    writeHookConfig(receiver.url(), "tls_verify = false\n");
    RunResult run = runOk();
    EXPECT_NE(run.err.find("tls_verify = false"), std::string::npos) << run.err;
    expectDelivered(receiver.requests(), ids(3));
  }
}

}  // namespace
}  // namespace ferry::it
