// The journal against both backends: SQLite files in a temporary directory, and a private schema
// of the PostgreSQL server scripts/test starts.
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Tuple.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "journal/Journal.h"
#include "journal/SqliteJournal.h"
#include "PgScratch.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;
using namespace Poco::Data::Keywords;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The journal tests run against both backends: the SQLite file in a temporary directory, and a
// private schema of the PostgreSQL server scripts/test starts (PgScratch.h).
class JournalFixture : public ::testing::Test {
 protected:
  virtual std::string backend() const = 0;
  bool postgres() const { return backend() == "postgresql"; }

  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ferry-journal-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "ferry.db").string();
    if (postgres()) {
      try {
        pg_ = std::make_unique<test::PgScratch>();
      } catch (const std::exception& e) {
        FAIL() << e.what();
      }
      path_ = pg_->url();
    }
    journal_ = openJournal(path_, "test");
  }
  void TearDown() override {
    journal_.reset();
    pg_.reset();
    fs::remove_all(dir_);
  }

  void reopen() {
    journal_.reset();
    journal_ = openJournal(path_, "test");
  }

  // Rows of `sql` as text, read on an independent connection: what another process (`ferry
  // status`) would see.
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    if (postgres()) return pg_->exec(sql);
    Poco::Data::Session db = inspect();
    Poco::Data::Statement select(db);
    select << sql, now;
    Poco::Data::RecordSet set(select);
    std::vector<std::vector<std::string>> out;
    for (size_t r = 0; r < set.rowCount(); ++r) {
      out.emplace_back();
      for (size_t c = 0; c < set.columnCount(); ++c)
        out.back().push_back(set.value(c, r).convert<std::string>());
    }
    return out;
  }

  // A second, independent connection to the SQLite file.
  Poco::Data::Session inspect() {
    Poco::Data::SQLite::Connector::registerConnector();
    return Poco::Data::Session(Poco::Data::SQLite::Connector::KEY, path_);
  }

  static NewEvent event(const std::string& key, const std::string& version,
                        const std::string& previous = "", bool echo = false) {
    NewEvent e;
    e.entity = "order";
    e.key = key;
    e.version = version;
    e.version_ns = *parseInstantNs(version);
    e.previous = previous;
    e.body = R"({"id":")" + key + R"(","updatedAt":")" + version + R"("})";
    e.echo = echo;
    return e;
  }

  static Cursor cursorAt(const std::string& since, int64_t offset = 0) {
    return Cursor{since, *parseInstantNs(since), offset};
  }

  // The latest version the journal knows of `source`'s order `key`, nullopt when none.
  std::optional<std::string> latest(const std::string& source, const std::string& key) {
    const auto seen = journal_->events().latestVersions(source, {{"order", key}});
    EXPECT_EQ(seen.size(), 1u);
    if (seen.empty() || !seen[0]) return std::nullopt;
    return seen[0]->version;
  }

  static std::vector<int64_t> sequences(const std::vector<JournalEvent>& events) {
    std::vector<int64_t> out;
    for (const auto& e : events) out.push_back(e.sequence);
    return out;
  }

  fs::path dir_;
  std::string path_;  // the journal: the SQLite file or the PostgreSQL URL (as errors name it)
  std::unique_ptr<test::PgScratch> pg_;
  std::unique_ptr<Journal> journal_;
};

class JournalTest : public JournalFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string backend() const override { return GetParam(); }
};

INSTANTIATE_TEST_SUITE_P(Backends, JournalTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// What only the SQLite file has (WAL, paths, PRAGMAs).
class SqliteJournalTest : public JournalFixture {
 protected:
  std::string backend() const override { return "sqlite"; }
};

const std::string kT1 = "2025-04-23T10:01:53.812Z";
const std::string kT2 = "2025-04-23T10:05:00.000Z";
const std::string kT3 = "2025-04-23T11:00:00.000Z";

TEST_P(JournalTest, CommitAppendsInOrderAndReadAfterFiltersBySource) {
  const int64_t before_ms = nowMs();
  EXPECT_EQ(journal_->events().commit("tc-orders", {event("A1", kT1), event("A2", kT1, "", true)},
                                      cursorAt(kT1)),
            2);
  EXPECT_EQ(
      journal_->events().commit("o'brien; DROP TABLE events", {event("B1", kT2)}, cursorAt(kT2)),
      3);
  EXPECT_EQ(journal_->events().commit("tc-orders", {event("A1", kT3, kT1)}, cursorAt(kT3)), 4);
  const int64_t after_ms = nowMs();

  const auto all = journal_->events().readAfter(0, {}, 100);
  ASSERT_THAT(sequences(all), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(all[0].source, "tc-orders");
  EXPECT_EQ(all[0].entity, "order");
  EXPECT_EQ(all[0].key, "A1");
  EXPECT_EQ(all[0].version, kT1);
  EXPECT_EQ(all[0].previous, "");
  EXPECT_EQ(all[0].body, R"({"id":"A1","updatedAt":")" + kT1 + R"("})");
  EXPECT_FALSE(all[0].echo);
  EXPECT_TRUE(all[1].echo);
  EXPECT_EQ(all[2].source, "o'brien; DROP TABLE events");
  EXPECT_EQ(all[3].previous, kT1);
  EXPECT_EQ(all[3].idempotencyKey(), "tc-orders/order/A1/" + kT3);
  EXPECT_GE(all[0].fetched_at_ms, before_ms);
  EXPECT_LE(all[0].fetched_at_ms, after_ms);

  EXPECT_THAT(sequences(journal_->events().readAfter(0, {"tc-orders"}, 100)), ElementsAre(1, 2, 4));
  EXPECT_THAT(sequences(journal_->events().readAfter(2, {"tc-orders"}, 100)), ElementsAre(4));
  EXPECT_THAT(sequences(journal_->events().readAfter(0, {"o'brien; DROP TABLE events"}, 100)),
              ElementsAre(3));
  EXPECT_THAT(
      sequences(journal_->events().readAfter(0, {"tc-orders", "o'brien; DROP TABLE events"}, 2)),
      ElementsAre(1, 2));
  EXPECT_TRUE(journal_->events().readAfter(0, {"nobody"}, 100).empty());
  EXPECT_TRUE(journal_->events().readAfter(4, {}, 100).empty());
  EXPECT_TRUE(journal_->events().readAfter(0, {}, 0).empty());
  EXPECT_EQ(journal_->events().lastSequence(), 4);
}

TEST_P(JournalTest, CommitWithoutEventsStoresTheCursorAndReturnsZero) {
  EXPECT_EQ(journal_->events().commit("tc-orders", {}, cursorAt(kT2, 7)), 0);
  const auto c = journal_->events().cursor("tc-orders");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->since, kT2);
  EXPECT_EQ(c->offset, 7);
  EXPECT_EQ(journal_->events().lastSequence(), 0);
}

TEST_P(JournalTest, LargeBatchIsCommittedWhole) {
  std::vector<NewEvent> events;
  for (int i = 0; i < 5000; ++i) events.push_back(event("K" + std::to_string(i), kT1));
  EXPECT_EQ(journal_->events().commit("dh-orders", events, cursorAt(kT1, 5000)), 5000);
  const auto read = journal_->events().readAfter(0, {"dh-orders"}, 10000);
  ASSERT_EQ(read.size(), 5000u);
  EXPECT_EQ(read.front().key, "K0");
  EXPECT_EQ(read.back().key, "K4999");
  EXPECT_EQ(read.back().sequence, 5000);
  EXPECT_TRUE(latest("dh-orders", "K4321").has_value());
}

TEST_P(JournalTest, LatestVersionsReportsPresentKeysAndOmitsAbsentOnes) {
  journal_->events().commit("tc-orders", {event("A1", kT1), event("A2", kT2)}, cursorAt(kT2));
  journal_->events().commit("tc-orders", {event("A1", kT3, kT1)}, cursorAt(kT3));
  journal_->events().commit("other", {event("A9", kT1)}, cursorAt(kT1));

  const auto seen = journal_->events().latestVersions("tc-orders", {{"order", "A1"},
                                                                    {"order", "missing"},
                                                                    {"order", "A2"},
                                                                    {"order", "A9"},
                                                                    {"shipment", "A1"}});
  ASSERT_EQ(seen.size(), 5u);
  ASSERT_TRUE(seen[0].has_value());
  EXPECT_EQ(seen[0]->version, kT3);
  EXPECT_EQ(seen[0]->version_ns, *parseInstantNs(kT3));
  EXPECT_FALSE(seen[1].has_value());
  ASSERT_TRUE(seen[2].has_value());
  EXPECT_EQ(seen[2]->version, kT2);
  EXPECT_FALSE(seen[3].has_value()) << "another source's key";
  EXPECT_FALSE(seen[4].has_value()) << "another entity's key";
  EXPECT_TRUE(journal_->events().latestVersions("tc-orders", {}).empty());
  EXPECT_FALSE(latest("nobody", "A1").has_value());
}

TEST_P(JournalTest, CursorsOffsetsAndEventsSurviveCloseAndReopen) {
  EXPECT_FALSE(journal_->events().cursor("tc-orders").has_value());
  journal_->events().commit("tc-orders", {event("A1", kT1)}, cursorAt(kT2, 3));
  journal_->events().commit("dh-orders", {}, cursorAt(kT1));
  journal_->ledger().advanceSink("erp-csv", 1, std::nullopt, {});

  reopen();

  const auto c = journal_->events().cursor("tc-orders");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->since, kT2);
  EXPECT_EQ(c->since_ns, *parseInstantNs(kT2));
  EXPECT_EQ(c->offset, 3);
  const auto all = journal_->events().cursors();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, "dh-orders");
  EXPECT_EQ(all[0].second.since, kT1);
  EXPECT_EQ(all[1].first, "tc-orders");
  EXPECT_EQ(journal_->ledger().sinkOffset("erp-csv"), 1);
  EXPECT_EQ(journal_->events().readAfter(0, {}, 10).size(), 1u);
  EXPECT_TRUE(latest("tc-orders", "A1").has_value());
}

TEST_P(JournalTest, ResetCursorMovesItAndForgetsVersionsOnlyWhenAsked) {
  journal_->events().commit("tc-orders", {event("A1", kT2)}, cursorAt(kT3, 2));
  journal_->events().commit("other", {event("A1", kT2)}, cursorAt(kT3));

  journal_->events().resetCursor("tc-orders", cursorAt(kT1), false);
  EXPECT_EQ(journal_->events().cursor("tc-orders")->since, kT1);
  EXPECT_EQ(journal_->events().cursor("tc-orders")->offset, 0);
  EXPECT_TRUE(latest("tc-orders", "A1").has_value());

  journal_->events().resetCursor("tc-orders", cursorAt(kT1), true);
  EXPECT_FALSE(latest("tc-orders", "A1").has_value());
  EXPECT_TRUE(latest("other", "A1").has_value());
  EXPECT_EQ(journal_->events().cursor("other")->since, kT3);
  // Events stay: sinks that have not read them yet still get them.
  EXPECT_EQ(journal_->events().countAfter(0, {}), 2);
}

TEST_P(JournalTest, FailedCommitLeavesNeitherEventsNorVersionsNorCursor) {
  // The third event has no key: the events insert fails after two rows went in.
  std::vector<NewEvent> events = {event("A1", kT1), event("A2", kT1), event("", kT2)};
  try {
    journal_->events().commit("tc-orders", events, cursorAt(kT2));
    FAIL() << "commit of an event without a key succeeded";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path_));
    EXPECT_THAT(e.what(), HasSubstr("tc-orders"));
    EXPECT_THAT(e.what(), HasSubstr(postgres() ? "violates check constraint \"events_key_check\""
                                               : "CHECK constraint failed"));
  }
  EXPECT_TRUE(journal_->events().readAfter(0, {}, 10).empty());
  EXPECT_EQ(journal_->events().countAfter(0, {}), 0);
  EXPECT_FALSE(journal_->events().cursor("tc-orders").has_value());
  EXPECT_FALSE(latest("tc-orders", "A1").has_value());

  // Now the events are fine but the cursor is refused: the last statement of the transaction
  // fails, after events and versions were written.
  journal_->events().commit("tc-orders", {event("A0", kT1)}, cursorAt(kT1));
  EXPECT_THROW(journal_->events().commit("tc-orders", {event("A1", kT2), event("A2", kT2)},
                                         cursorAt(kT2, -1)),
               JournalError);
  EXPECT_THAT(sequences(journal_->events().readAfter(0, {}, 10)), ElementsAre(1));
  EXPECT_EQ(journal_->events().cursor("tc-orders")->since, kT1);
  EXPECT_FALSE(latest("tc-orders", "A1").has_value());
  EXPECT_FALSE(latest("tc-orders", "A2").has_value());

  // The journal is usable afterwards, and the same page commits.
  const int64_t last =
      journal_->events().commit("tc-orders", {event("A1", kT2), event("A2", kT2)}, cursorAt(kT2));
  EXPECT_EQ(last, journal_->events().lastSequence());
  EXPECT_EQ(journal_->events().countAfter(0, {"tc-orders"}), 3);
  EXPECT_EQ(journal_->events().cursor("tc-orders")->since, kT2);
}

TEST_P(JournalTest, AdvanceSinkRecordsOffsetAndDeliveryRanges) {
  journal_->events().commit("tc-orders", {event("A1", kT1), event("A2", kT1), event("A3", kT1)},
                            cursorAt(kT1));
  EXPECT_EQ(journal_->ledger().sinkOffset("erp-csv"), 0);

  const int64_t before_ms = nowMs();
  journal_->ledger().advanceSink("erp-csv", 2, DeliveryRange{1, 2, "2 events to orders-1.csv"}, {});
  journal_->ledger().advanceSink("erp-csv", 3, DeliveryRange{3, 3, "1 event to orders-2.csv"}, {});
  journal_->ledger().advanceSink("sql", 3, std::nullopt, {});
  EXPECT_EQ(journal_->ledger().sinkOffset("erp-csv"), 3);
  EXPECT_EQ(journal_->ledger().sinkOffset("sql"), 3);
  EXPECT_EQ(journal_->ledger().sinkOffset("rest"), 0);
  const auto offsets = journal_->ledger().sinkOffsets();
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[0], std::make_pair(std::string("erp-csv"), int64_t{3}));
  EXPECT_EQ(offsets[1], std::make_pair(std::string("sql"), int64_t{3}));

  const auto stored = rows(
      "SELECT sink, first_sequence, last_sequence, delivered_at_ms, detail FROM deliveries "
      "ORDER BY id");
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0][0], "erp-csv");
  EXPECT_EQ(stored[0][1], "1");
  EXPECT_EQ(stored[0][2], "2");
  EXPECT_GE(std::stoll(stored[0][3]), before_ms);
  EXPECT_EQ(stored[0][4], "2 events to orders-1.csv");
  EXPECT_EQ(stored[1][1], "3");
  EXPECT_EQ(stored[1][4], "1 event to orders-2.csv");
}

TEST_P(JournalTest, DeadLettersCanBeListedReplayedAndSettled) {
  journal_->events().commit("tc-orders", {event("A1", kT1), event("A2", kT2), event("A3", kT3)},
                            cursorAt(kT3));
  journal_->ledger().advanceSink("erp-csv", 3, DeliveryRange{1, 3, "3 events"},
                                 {{1, "column 'price' missing"}, {3, "bad date"}});
  journal_->ledger().advanceSink("sql", 3, DeliveryRange{1, 3, "3 rows"}, {{2, "value too long"}});

  const auto all = journal_->ledger().deadLetters(std::nullopt);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].sink, "erp-csv");
  EXPECT_EQ(all[0].reason, "column 'price' missing");
  EXPECT_EQ(all[0].event.sequence, 1);
  EXPECT_EQ(all[0].event.key, "A1");
  EXPECT_EQ(all[0].event.version, kT1);
  EXPECT_EQ(all[0].event.body, R"({"id":"A1","updatedAt":")" + kT1 + R"("})");
  EXPECT_FALSE(all[0].replay_requested);
  EXPECT_GT(all[0].failed_at_ms, 0);
  EXPECT_LT(all[0].id, all[1].id);
  EXPECT_EQ(all[2].sink, "sql");
  ASSERT_EQ(journal_->ledger().deadLetters(std::string("erp-csv")).size(), 2u);
  EXPECT_EQ(journal_->ledger().deadLetteredBetween(0, 10), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(journal_->ledger().deadLetteredBetween(1, 2), (std::vector<int64_t>{2}));
  EXPECT_TRUE(journal_->ledger().deadLetteredBetween(3, 10).empty());

  // By id; the sql sink's dead letter is not this sink's to replay.
  EXPECT_EQ(journal_->ledger().requestReplay("erp-csv", {all[2].id}), 0);
  EXPECT_EQ(journal_->ledger().requestReplay("erp-csv", {all[1].id}), 1);
  auto pending = journal_->ledger().pendingReplays("erp-csv", 10);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].event.key, "A3");
  EXPECT_TRUE(journal_->ledger().pendingReplays("sql", 10).empty());

  // All of a sink.
  EXPECT_EQ(journal_->ledger().requestReplay("erp-csv", {}), 2);
  pending = journal_->ledger().pendingReplays("erp-csv", 10);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].event.key, "A1");
  EXPECT_EQ(journal_->ledger().pendingReplays("erp-csv", 1).size(), 1u);

  // The replay of A1 was written: it is gone. The replay of A3 failed again: new reason, no
  // longer pending, still listed.
  journal_->ledger().settleReplay(pending[0].id, std::nullopt);
  journal_->ledger().settleReplay(pending[1].id, std::string("bad date, again"));
  EXPECT_TRUE(journal_->ledger().pendingReplays("erp-csv", 10).empty());
  const auto left = journal_->ledger().deadLetters(std::string("erp-csv"));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].event.key, "A3");
  EXPECT_EQ(left[0].reason, "bad date, again");
  EXPECT_FALSE(left[0].replay_requested);
  EXPECT_EQ(journal_->ledger().deadLetteredBetween(0, 3), (std::vector<int64_t>{2, 3}))
      << "A1's dead letter is settled; the sql sink's A2 and A3 remain";
}

TEST_P(JournalTest, DeadLetteringAnUnknownEventFailsTheWholeAdvance) {
  journal_->events().commit("tc-orders", {event("A1", kT1)}, cursorAt(kT1));
  try {
    journal_->ledger().advanceSink("erp-csv", 1, DeliveryRange{1, 1, "1 event"}, {{42, "bad"}});
    FAIL() << "dead-lettering event 42, which does not exist, succeeded";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path_));
    EXPECT_THAT(e.what(), HasSubstr("event 42"));
  }
  EXPECT_EQ(journal_->ledger().sinkOffset("erp-csv"), 0);
  EXPECT_TRUE(journal_->ledger().deadLetters(std::nullopt).empty());
  EXPECT_EQ(rows("SELECT count(*) FROM deliveries")[0][0], "0");
}

TEST_P(JournalTest, PurgeDeletesOldEventsOnlyAndSequencesKeepIncreasing) {
  std::vector<NewEvent> events;
  for (int i = 1; i <= 5; ++i) events.push_back(event("A" + std::to_string(i), kT1));
  journal_->events().commit("tc-orders", events, cursorAt(kT1));
  journal_->ledger().advanceSink("erp-csv", 5, std::nullopt, {{2, "broken"}});

  // Too recent: nothing goes.
  EXPECT_EQ(journal_->events().purge(5, 0), 0);
  EXPECT_EQ(journal_->events().purge(3, nowMs() + 1000), 3);
  EXPECT_THAT(sequences(journal_->events().readAfter(0, {}, 10)), ElementsAre(4, 5));

  const auto dead = journal_->ledger().deadLetters(std::nullopt);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event.sequence, 2);
  EXPECT_EQ(dead[0].event.key, "A2");
  EXPECT_EQ(dead[0].event.body, R"({"id":"A2","updatedAt":")" + kT1 + R"("})");
  EXPECT_EQ(journal_->ledger().requestReplay("erp-csv", {}), 1);
  EXPECT_EQ(journal_->ledger().pendingReplays("erp-csv", 10)[0].event.key, "A2");

  // Even with every event gone, sequences are never handed out twice.
  EXPECT_EQ(journal_->events().purge(5, nowMs() + 1000), 2);
  EXPECT_EQ(journal_->events().countAfter(0, {}), 0);
  EXPECT_EQ(journal_->events().lastSequence(), 5);
  reopen();
  EXPECT_EQ(journal_->events().commit("tc-orders", {event("A6", kT2)}, cursorAt(kT2)), 6);
  // Dedupe still knows what was delivered before the purge.
  EXPECT_TRUE(latest("tc-orders", "A1").has_value());
}

TEST_P(JournalTest, PluginStateIsSetReadAndDeletedPerInstance) {
  EXPECT_FALSE(journal_->state().stateGet("dh-orders", "token").has_value());
  const std::string binary("a\0b\xff", 4);
  journal_->state().stateSet("dh-orders", "token", binary);
  journal_->state().stateSet("dh-orders", "empty", std::string());
  journal_->state().stateSet("tc-orders", "token", std::string("other"));
  EXPECT_EQ(journal_->state().stateGet("dh-orders", "token"), binary);
  EXPECT_EQ(journal_->state().stateGet("dh-orders", "empty"), std::string());
  EXPECT_EQ(journal_->state().stateGet("tc-orders", "token"), std::string("other"));

  journal_->state().stateSet("dh-orders", "token", std::string("v2"));
  EXPECT_EQ(journal_->state().stateGet("dh-orders", "token"), std::string("v2"));
  journal_->state().stateSet("dh-orders", "token", std::nullopt);
  EXPECT_FALSE(journal_->state().stateGet("dh-orders", "token").has_value());
  EXPECT_EQ(journal_->state().stateGet("tc-orders", "token"), std::string("other"));
  reopen();
  EXPECT_EQ(journal_->state().stateGet("dh-orders", "empty"), std::string());
}

TEST_P(JournalTest, StatusesAreUpsertedByName) {
  journal_->state().setStatus({"tc-orders", "source", "running", "", 1000, 0, 0});
  journal_->state().setStatus(
      {"erp-csv", "sink", "retrying", "disk full: /srv/erp", 2000, 3, 5000});
  journal_->state().setStatus({"tc-orders", "source", "stopped", "401 Unauthorized", 3000, 0, 0});
  const auto all = journal_->state().statuses();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "erp-csv");
  EXPECT_EQ(all[0].kind, "sink");
  EXPECT_EQ(all[0].state, "retrying");
  EXPECT_EQ(all[0].message, "disk full: /srv/erp");
  EXPECT_EQ(all[0].updated_at_ms, 2000);
  EXPECT_EQ(all[0].retry_attempt, 3);
  EXPECT_EQ(all[0].next_attempt_at_ms, 5000);
  EXPECT_EQ(all[1].name, "tc-orders");
  EXPECT_EQ(all[1].state, "stopped");
  EXPECT_EQ(all[1].message, "401 Unauthorized");
  EXPECT_EQ(all[1].updated_at_ms, 3000);
}

TEST_P(JournalTest, CountAfterCountsBySource) {
  journal_->events().commit("a", {event("1", kT1), event("2", kT1)}, cursorAt(kT1));
  journal_->events().commit("b", {event("3", kT1)}, cursorAt(kT1));
  journal_->events().commit("a", {event("4", kT1)}, cursorAt(kT1));
  EXPECT_EQ(journal_->events().countAfter(0, {}), 4);
  EXPECT_EQ(journal_->events().countAfter(0, {"a"}), 3);
  EXPECT_EQ(journal_->events().countAfter(2, {"a"}), 1);
  EXPECT_EQ(journal_->events().countAfter(0, {"a", "b"}), 4);
  EXPECT_EQ(journal_->events().countAfter(0, {"c"}), 0);
  EXPECT_EQ(journal_->events().countAfter(4, {}), 0);
}

TEST_P(JournalTest, DeliveredHookProgressIsKeptPerSource) {
  EXPECT_EQ(journal_->ledger().deliveredUpTo("dh-orders"), 0);
  journal_->ledger().setDeliveredUpTo("dh-orders", 17);
  journal_->ledger().setDeliveredUpTo("dh-orders", 20);
  journal_->ledger().setDeliveredUpTo("tc-orders", 3);
  reopen();
  EXPECT_EQ(journal_->ledger().deliveredUpTo("dh-orders"), 20);
  EXPECT_EQ(journal_->ledger().deliveredUpTo("tc-orders"), 3);
  // All at once, by source (retention reads the hooks of the sources other hosts run).
  EXPECT_EQ(journal_->ledger().deliveredProgress(),
            (std::vector<std::pair<std::string, int64_t>>{{"dh-orders", 20}, {"tc-orders", 3}}));
}

TEST_F(SqliteJournalTest, FileIsInWalModeWithFullSyncAndVersionedSchema) {
  auto* sqlite = dynamic_cast<SqliteJournal*>(journal_.get());
  ASSERT_NE(sqlite, nullptr);
  const SqliteSettings s = sqlite->settings();
  EXPECT_EQ(s.journal_mode, "wal");
  EXPECT_EQ(s.synchronous, 2);
  EXPECT_GT(s.busy_timeout_ms, 0);
  EXPECT_EQ(s.schema_version, SqliteJournal::kSchemaVersion);

  // WAL and the schema version live in the file: another connection sees them too.
  Poco::Data::Session db = inspect();
  std::string mode;
  Poco::Int64 version = 0;
  db << "PRAGMA journal_mode", into(mode), now;
  db << "PRAGMA user_version", into(version), now;
  EXPECT_EQ(mode, "wal");
  EXPECT_EQ(version, SqliteJournal::kSchemaVersion);
}

TEST_F(SqliteJournalTest, MissingDirectoryIsNamedInTheError) {
  const std::string path = (dir_ / "no-such-dir" / "ferry.db").string();
  try {
    openSqliteJournal(path);
    FAIL() << "opened a journal in a missing directory";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("does not exist"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "no-such-dir"));
}

TEST_F(SqliteJournalTest, FileThatIsNotADatabaseGivesSqlitesMessage) {
  const std::string path = (dir_ / "garbage.db").string();
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 512; ++i) out << "this is not SQLite ";
  }
  try {
    openSqliteJournal(path);
    FAIL() << "opened a garbage file as a journal";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("not a database"));
  }
}

TEST_P(JournalTest, RequestsArePendingUntilAnswered) {
  Controls& c = journal_->controls();
  const int64_t a = c.submitCommand("sink.pause", "out", "{}");
  const int64_t b = c.submitCommand("sink.rewind", "out", R"({"sequence":3})");
  ASSERT_EQ(c.pendingCommands().size(), 2u);
  c.finishCommand(a, true, "paused");
  c.finishCommand(b, false, "beyond retention");
  EXPECT_TRUE(c.pendingCommands().empty());
  EXPECT_EQ(c.command(a)->state, "done");
  EXPECT_EQ(c.command(b)->state, "failed");
  EXPECT_EQ(c.command(b)->result, "beyond retention");
  EXPECT_EQ(c.command(b)->argument, R"({"sequence":3})");
  EXPECT_FALSE(c.command(99).has_value());
}

// The first start of many new sources records their origins together (one transaction where
// the journal can); a source recorded before gets the new one, others stay unknown.
TEST_P(JournalTest, SourceOriginsAreRecordedManyAtOnce) {
  Controls& c = journal_->controls();
  c.setSourceOrigin("a", kT1);
  c.setSourceOrigins({});
  EXPECT_EQ(c.sourceOrigin("a"), kT1);
  c.setSourceOrigins({{"a", kT2}, {"b", kT1}, {"c", kT3}});
  EXPECT_EQ(c.sourceOrigin("a"), kT2);
  EXPECT_EQ(c.sourceOrigin("b"), kT1);
  EXPECT_EQ(c.sourceOrigin("c"), kT3);
  EXPECT_FALSE(c.sourceOrigin("d").has_value());
}

TEST_P(JournalTest, APausedOrKnownSinkIsKnownUntilForgotten) {
  Controls& c = journal_->controls();
  journal_->events().commit("src", {event("A1", kT1), event("A2", kT2)}, cursorAt(kT2));
  journal_->ledger().advanceSink("a", 2, std::nullopt, {});
  c.setSinkPaused("b", true);
  EXPECT_TRUE(c.sinkPaused("b"));
  EXPECT_FALSE(c.sinkPaused("a"));
  EXPECT_THAT(c.knownSinks(), ElementsAre("a", "b"));
  c.setSinkOffset("a", 1);
  EXPECT_EQ(journal_->ledger().sinkOffset("a"), 1);
  c.forgetSink("b");
  EXPECT_FALSE(c.sinkPaused("b"));
  EXPECT_THAT(c.knownSinks(), ElementsAre("a"));
  EXPECT_EQ(c.oldestSequence(), 1);
  EXPECT_EQ(c.firstSequenceFetchedFrom(0), 1);
  EXPECT_EQ(c.firstSequenceFetchedFrom(nowMs() + 60000), 0);
}

TEST_P(JournalTest, AWrittenReplayIsRecordedAsADelivery) {
  journal_->events().commit("src", {event("A1", kT1)}, cursorAt(kT1));
  journal_->ledger().advanceSink("out", 1, std::nullopt, {{1, "rejected"}});
  const auto letters = journal_->ledger().deadLetters(std::nullopt);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_TRUE(journal_->ledger().deliveriesOf(1).empty());
  journal_->ledger().settleReplay(letters[0].id, std::nullopt);
  EXPECT_TRUE(journal_->ledger().deadLetters(std::nullopt).empty());
  const auto deliveries = journal_->ledger().deliveriesOf(1);
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].sink, "out");
  EXPECT_EQ(deliveries[0].detail, "replay of dead letter #" + std::to_string(letters[0].id));
}

TEST_P(JournalTest, NewerSchemaIsRefused) {
  journal_.reset();
  if (postgres()) {
    pg_->exec("UPDATE ferry_journal SET schema_version = 99");
  } else {
    Poco::Data::Session db = inspect();
    db << "PRAGMA user_version = 99", now;
  }
  try {
    journal_ = openJournal(path_, "test");
    FAIL() << "opened a journal with a newer schema";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path_));
    EXPECT_THAT(e.what(), HasSubstr("schema version is 99"));
  }
}

// Items a source could not read are kept with the cursor that passes them, once per text; a
// replay removes them and moves the cursor back (never forward) to where their page was asked.
TEST_P(JournalTest, SetAsideItemsAreKeptOnceReplayedAndDropped) {
  EventLog& log = journal_->events();
  SetAsideItem bad;
  bad.entity = "order";
  bad.key = std::string("K\0Y", 3);
  bad.raw = std::string("{\"id\":\"K\\u0000Y\"}\xff", 17);
  bad.reason = "key has a control character";
  bad.since_ms = 1745402400000;  // 2025-04-23T10:00:00Z
  bad.fingerprint = setAsideFingerprint(bad.entity, bad.key, bad.version, bad.raw);
  SetAsideItem other = bad;
  other.raw = "[1,2]";
  other.key = "";
  other.reason = "not an object";
  other.since_ms = 1745406000000;  // 11:00
  other.fingerprint = setAsideFingerprint(other.entity, other.key, other.version, other.raw);

  EXPECT_EQ(log.commit("src", {event("A1", kT1)}, cursorAt(kT3), {bad, other}), 1);
  EXPECT_EQ(log.commit("src", {}, cursorAt(kT3), {bad}), 0) << "the same text again";
  EXPECT_TRUE(log.setAsideKnown("src", bad.fingerprint));
  EXPECT_FALSE(log.setAsideKnown("other", bad.fingerprint));
  auto letters = log.sourceDeadLetters(std::nullopt);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].source, "src");
  EXPECT_EQ(letters[0].item.key, bad.key);
  EXPECT_EQ(letters[0].item.raw, bad.raw);
  EXPECT_EQ(letters[0].item.reason, bad.reason);
  EXPECT_EQ(letters[0].item.since_ms, bad.since_ms);
  EXPECT_EQ(letters[0].item.fingerprint, bad.fingerprint);
  EXPECT_GT(letters[0].set_aside_at_ms, 0);
  EXPECT_EQ(letters[1].item.raw, "[1,2]");
  EXPECT_TRUE(log.sourceDeadLetters(std::string("other")).empty());

  // Replaying the 11:00 item moves the cursor from kT3 (11:00) no further back than 11:00.
  EXPECT_EQ(log.replaySetAside("src", {letters[1].id}), 1);
  EXPECT_EQ(log.cursor("src")->since_ns, int64_t{1745406000000} * 1000000);
  // All of the source's: back to 10:00.
  EXPECT_EQ(log.replaySetAside("src", {}), 1);
  EXPECT_EQ(log.cursor("src")->since, "2025-04-23T10:00:00.000Z");
  EXPECT_EQ(log.cursor("src")->offset, 0);
  EXPECT_EQ(log.replaySetAside("src", {}), 0);
  log.commit("src", {}, cursorAt(kT3), {bad});
  EXPECT_EQ(log.dropSetAside({log.sourceDeadLetters(std::nullopt)[0].id, 999}), 1);
  EXPECT_TRUE(log.sourceDeadLetters(std::nullopt).empty());
  EXPECT_EQ(log.cursor("src")->since, kT3) << "a drop does not move the cursor";
}

TEST_P(JournalTest, ConcurrentReadersSeeOnlyWholeCommits) {
  constexpr int kBatches = 100;
  constexpr int kBatchSize = 10;
  std::atomic<bool> writing{true};
  std::atomic<int> bad_counts{0}, bad_reads{0}, observations{0};

  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      do {
        const int64_t count = journal_->events().countAfter(0, {"writer"});
        if (count % kBatchSize != 0) ++bad_counts;
        const auto events = journal_->events().readAfter(0, {}, 100000);
        if (events.size() % kBatchSize != 0) ++bad_reads;
        for (size_t i = 0; i < events.size(); ++i) {
          if (events[i].sequence != static_cast<int64_t>(i) + 1) ++bad_reads;
        }
        ++observations;
      } while (writing.load());
    });
  }
  std::thread writer([&] {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<NewEvent> batch;
      for (int i = 0; i < kBatchSize; ++i) {
        batch.push_back(event(std::to_string(b * kBatchSize + i), kT1));
      }
      journal_->events().commit("writer", batch, cursorAt(kT1, (b + 1) * kBatchSize));
    }
    writing = false;
  });
  writer.join();
  for (auto& t : readers) t.join();

  EXPECT_EQ(bad_counts.load(), 0);
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_GE(observations.load(), 3);
  EXPECT_EQ(journal_->events().countAfter(0, {"writer"}), kBatches * kBatchSize);
  EXPECT_EQ(journal_->events().cursor("writer")->offset, kBatches * kBatchSize);
}

}  // namespace
}  // namespace ferry::core
