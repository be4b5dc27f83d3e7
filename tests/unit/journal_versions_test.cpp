// Dedupe's memory in the SQLite journal: the latest version of each key, found through the
// in-memory VersionIndex and the file behind it, after restarts, purges, forgetting, hash
// collisions and another connection's writes; the upgrade of a schema-1 file; event metadata.
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "journal/Journal.h"
#include "journal/SqliteJournal.h"
#include "journal/VersionIndex.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;
using namespace Poco::Data::Keywords;
using ::testing::HasSubstr;

const std::string kT1 = "2025-04-23T10:01:53.812Z";
const std::string kT2 = "2025-04-23T10:05:00.000Z";
const std::string kT3 = "2025-04-23T11:00:00.000Z";
const std::string kT4 = "2025-04-24T08:00:00.000Z";

// Every key gets the same hash: one key holds the slot, the others must be found in the table.
uint64_t collidingHash(std::string_view, std::string_view, std::string_view) { return 42; }
// Two buckets: keys ending in an even digit collide with each other, odd ones likewise.
uint64_t twoBuckets(std::string_view, std::string_view, std::string_view key) {
  return key.empty() ? 0 : static_cast<uint64_t>(key.back() % 2);
}

NewEvent event(const std::string& key, const std::string& version) {
  NewEvent e;
  e.entity = "order";
  e.key = key;
  e.version = version;
  e.version_ns = *parseInstantNs(version);
  e.body = R"({"id":")" + key + R"("})";
  return e;
}

class VersionsTest : public ::testing::TestWithParam<KeyHasher> {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ferry-versions-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "ferry.db").string();
    open();
  }
  void TearDown() override {
    journal_.reset();
    fs::remove_all(dir_);
  }

  void open() { journal_ = std::make_unique<SqliteJournal>(path_, GetParam()); }
  void reopen() {
    journal_.reset();
    open();
  }

  int64_t commit(const std::string& source, std::vector<NewEvent> events) {
    return journal_->commit(source, events, Cursor{kT1, *parseInstantNs(kT1), 0});
  }

  // The latest version of each of `keys` (orders of `source`), "-" for none.
  std::vector<std::string> latest(const std::string& source, const std::vector<std::string>& keys) {
    std::vector<KeyRef> refs;
    for (const auto& k : keys) refs.push_back({"order", k});
    std::vector<std::string> out;
    for (const auto& seen : journal_->latestVersions(source, refs)) {
      out.push_back(seen ? seen->version : "-");
      if (seen) EXPECT_EQ(seen->version_ns, *parseInstantNs(seen->version));
    }
    return out;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<SqliteJournal> journal_;
};

using Versions = std::vector<std::string>;

TEST_P(VersionsTest, KeysAreFoundAgainAfterARestart) {
  commit("dh", {event("A1", kT1), event("A2", kT2), event("A3", kT1)});
  commit("dh", {event("A1", kT3)});
  commit("tc", {event("A1", kT2)});
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4"}), (Versions{kT3, kT2, kT1, "-"}));
  reopen();  // the index is rebuilt from the file
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4"}), (Versions{kT3, kT2, kT1, "-"}));
  EXPECT_EQ(latest("tc", {"A1", "A2"}), (Versions{kT2, "-"}));
  // And it keeps up with later commits.
  commit("dh", {event("A2", kT3), event("A4", kT1), event("A2", kT4)});
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4"}), (Versions{kT3, kT4, kT1, kT1}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4"}), (Versions{kT3, kT4, kT1, kT1}));
}

TEST_P(VersionsTest, PurgedKeysAreStillKnown) {
  commit("dh", {event("A1", kT1), event("A2", kT1), event("A3", kT2)});
  commit("dh", {event("A1", kT2), event("A4", kT1)});
  commit("tc", {event("A1", kT4)});
  // Everything but the last event goes.
  EXPECT_EQ(journal_->purge(5, nowMs() + 1000), 5);
  EXPECT_EQ(journal_->countAfter(0, {}), 1);
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4", "A5"}), (Versions{kT2, kT1, kT2, kT1, "-"}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4", "A5"}), (Versions{kT2, kT1, kT2, kT1, "-"}));
  EXPECT_EQ(latest("tc", {"A1"}), (Versions{kT4}));

  // A purged key that changes again: its new event is its latest, also once that is purged.
  commit("dh", {event("A2", kT3), event("A5", kT3)});
  EXPECT_EQ(latest("dh", {"A1", "A2", "A5"}), (Versions{kT2, kT3, kT3}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2", "A5"}), (Versions{kT2, kT3, kT3}));
  EXPECT_EQ(journal_->purge(journal_->lastSequence(), nowMs() + 1000), 3);
  EXPECT_EQ(latest("dh", {"A1", "A2", "A5"}), (Versions{kT2, kT3, kT3}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2", "A3", "A4", "A5"}), (Versions{kT2, kT3, kT2, kT1, kT3}));
  EXPECT_EQ(latest("tc", {"A1"}), (Versions{kT4}));
}

TEST_P(VersionsTest, ALargePurgeRunsInChunksAndKeepsEveryVersion) {
  std::vector<NewEvent> events;
  for (int i = 0; i < 25000; ++i) events.push_back(event("K" + std::to_string(i), kT1));
  commit("dh", std::move(events));
  commit("dh", {event("K7", kT2)});
  EXPECT_EQ(journal_->purge(25000, nowMs() + 1000), 25000);
  EXPECT_EQ(journal_->countAfter(0, {}), 1);
  reopen();
  EXPECT_EQ(latest("dh", {"K0", "K7", "K12345", "K24999", "K25000"}),
            (Versions{kT1, kT2, kT1, kT1, "-"}));
}

TEST_P(VersionsTest, ForgottenVersionsStayForgottenAfterARestart) {
  commit("dh", {event("A1", kT1), event("A2", kT1)});
  commit("tc", {event("A1", kT2), event("A2", kT2)});
  EXPECT_EQ(journal_->purge(1, nowMs() + 1000), 1);  // dh's A1 lives on in the table only
  journal_->resetCursor("dh", Cursor{kT1, *parseInstantNs(kT1), 0}, true);
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{"-", "-"}));
  EXPECT_EQ(latest("tc", {"A1", "A2"}), (Versions{kT2, kT2}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{"-", "-"}));
  EXPECT_EQ(latest("tc", {"A1", "A2"}), (Versions{kT2, kT2}));
  // Fetched again, they are known again.
  commit("dh", {event("A1", kT1)});
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{kT1, "-"}));
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{kT1, "-"}));
  EXPECT_EQ(latest("tc", {"A1", "A2"}), (Versions{kT2, kT2}));
  // The forgotten events themselves stay for the sinks, and purging them later forgets nothing.
  EXPECT_EQ(journal_->purge(journal_->lastSequence(), nowMs() + 1000), 4);
  reopen();
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{kT1, "-"}));
  EXPECT_EQ(latest("tc", {"A1", "A2"}), (Versions{kT2, kT2}));
}

TEST_P(VersionsTest, AFailedCommitChangesNoVersion) {
  commit("dh", {event("A1", kT1)});
  std::vector<NewEvent> bad = {event("A1", kT2), event("A2", kT2), event("", kT2)};
  EXPECT_THROW(commit("dh", bad), JournalError);
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{kT1, "-"}));
  commit("dh", {event("A2", kT3)});
  EXPECT_EQ(latest("dh", {"A1", "A2"}), (Versions{kT1, kT3}));
}

INSTANTIATE_TEST_SUITE_P(Hashes, VersionsTest,
                         ::testing::Values(&defaultKeyHash, &twoBuckets, &collidingHash),
                         [](const ::testing::TestParamInfo<KeyHasher>& info) {
                           return std::string(info.param == &defaultKeyHash ? "Default"
                                              : info.param == &twoBuckets   ? "TwoBuckets"
                                                                            : "AllColliding");
                         });

class JournalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ferry-journal-file-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "ferry.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  Poco::Data::Session inspect() {
    Poco::Data::SQLite::Connector::registerConnector();
    return Poco::Data::Session(Poco::Data::SQLite::Connector::KEY, path_);
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(JournalFileTest, AnotherConnectionsEventsMakeTheNextCommitFailAndAreThenKnown) {
  SqliteJournal ours(path_);
  SqliteJournal theirs(path_);
  const Cursor cursor{kT1, *parseInstantNs(kT1), 0};
  std::vector<NewEvent> first = {event("A1", kT1)};
  ours.commit("dh", first, cursor);
  std::vector<NewEvent> foreign = {event("A1", kT3)};
  theirs.commit("dh", foreign, cursor);
  // Our page was deduplicated against what we knew, which is stale: refused, fetched again.
  std::vector<NewEvent> page = {event("A1", kT2)};
  try {
    ours.commit("dh", page, cursor);
    FAIL() << "a commit over another connection's events succeeded";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path_));
    EXPECT_THAT(e.what(), HasSubstr("another connection"));
  }
  EXPECT_EQ(ours.countAfter(0, {}), 2);
  const auto seen = ours.latestVersions("dh", {{"order", "A1"}});
  ASSERT_TRUE(seen[0].has_value());
  EXPECT_EQ(seen[0]->version, kT3);
  std::vector<NewEvent> next = {event("A2", kT4)};
  EXPECT_EQ(ours.commit("dh", next, cursor), 3);
}

TEST_F(JournalFileTest, PurgeStopsAtTheFirstEventTooRecentToGo) {
  SqliteJournal journal(path_);
  const Cursor cursor{kT1, *parseInstantNs(kT1), 0};
  std::vector<NewEvent> events;
  for (const char* key : {"A1", "A2", "A3", "A4"}) events.push_back(event(key, kT1));
  journal.commit("dh", events, cursor);
  {
    // The clock went back after event 2 was fetched: event 3 looks older than event 2.
    Poco::Data::Session db = inspect();
    db << "UPDATE events SET fetched_at_ms = fetched_at_ms + 3600000 WHERE sequence = 2", now;
  }
  EXPECT_EQ(journal.purge(4, nowMs() + 1000), 1);
  EXPECT_EQ(journal.readAfter(0, {}, 10).front().sequence, 2);
  const auto seen = journal.latestVersions("dh", {{"order", "A1"}, {"order", "A3"}});
  EXPECT_TRUE(seen[0].has_value());
  EXPECT_TRUE(seen[1].has_value());
}

TEST_F(JournalFileTest, MetadataTravelsFromCommitToReadsAndDeadLetters) {
  auto journal = openSqliteJournal(path_);
  const Cursor cursor{kT1, *parseInstantNs(kT1), 0};
  NewEvent with = event("A1", kT1);
  with.meta = R"({"own_lines":[1,3]})";
  std::vector<NewEvent> events = {with, event("A2", kT1)};
  journal->events().commit("tc", events, cursor);
  const auto read = journal->events().readAfter(0, {}, 10);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].meta, R"({"own_lines":[1,3]})");
  EXPECT_EQ(read[1].meta, "");
  EXPECT_EQ(journal->events().eventsOfKey("A1").at(0).meta, R"({"own_lines":[1,3]})");

  journal->ledger().advanceSink("erp", 2, std::nullopt, {{1, "no such column"}, {2, "bad"}});
  journal->events().purge(2, nowMs() + 1000);  // the dead letters keep their copies
  const auto dead = journal->ledger().deadLetters(std::nullopt);
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].event.meta, R"({"own_lines":[1,3]})");
  EXPECT_EQ(dead[1].event.meta, "");
  journal->ledger().requestReplay("erp", {});
  EXPECT_EQ(journal->ledger().pendingReplays("erp", 10).at(0).event.meta, R"({"own_lines":[1,3]})");
}

// The schema of version 1, as released: a file of it must open and keep everything.
TEST_F(JournalFileTest, ASchemaOneJournalIsUpgradedAndKeepsItsVersions) {
  {
    Poco::Data::Session db = inspect();
    for (const char* sql : {
             "PRAGMA journal_mode = WAL",
             R"(CREATE TABLE events (
                  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                  source TEXT NOT NULL CHECK (source <> ''),
                  entity TEXT NOT NULL CHECK (entity <> ''),
                  key TEXT NOT NULL CHECK (key <> ''),
                  version TEXT NOT NULL CHECK (version <> ''),
                  previous TEXT NOT NULL, body TEXT NOT NULL, echo INTEGER NOT NULL,
                  fetched_at_ms INTEGER NOT NULL))",
             "CREATE INDEX events_source_sequence ON events (source, sequence)",
             R"(CREATE TABLE latest_versions (
                  source TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,
                  version TEXT NOT NULL, version_ns INTEGER NOT NULL,
                  PRIMARY KEY (source, entity, key)) WITHOUT ROWID)",
             R"(CREATE TABLE cursors (
                  source TEXT PRIMARY KEY, since TEXT NOT NULL, since_ns INTEGER NOT NULL,
                  since_offset INTEGER NOT NULL CHECK (since_offset >= 0),
                  updated_at_ms INTEGER NOT NULL))",
             R"(CREATE TABLE sink_offsets (
                  sink TEXT PRIMARY KEY, sequence INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL))",
             R"(CREATE TABLE deliveries (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,
                  first_sequence INTEGER NOT NULL, last_sequence INTEGER NOT NULL,
                  delivered_at_ms INTEGER NOT NULL, detail TEXT NOT NULL))",
             "CREATE INDEX deliveries_last_sequence ON deliveries (last_sequence, first_sequence)",
             R"(CREATE TABLE dead_letters (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,
                  sequence INTEGER NOT NULL, source TEXT NOT NULL, entity TEXT NOT NULL,
                  key TEXT NOT NULL, version TEXT NOT NULL, previous TEXT NOT NULL,
                  body TEXT NOT NULL, echo INTEGER NOT NULL, fetched_at_ms INTEGER NOT NULL,
                  reason TEXT NOT NULL, failed_at_ms INTEGER NOT NULL,
                  replay_requested INTEGER NOT NULL DEFAULT 0, UNIQUE (sink, sequence)))",
             "CREATE INDEX dead_letters_sequence ON dead_letters (sequence)",
             R"(CREATE TABLE delivered_hooks (
                  source TEXT PRIMARY KEY, sequence INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL))",
             R"(CREATE TABLE plugin_state (
                  instance TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                  updated_at_ms INTEGER NOT NULL, PRIMARY KEY (instance, key)) WITHOUT ROWID)",
             R"(CREATE TABLE instance_status (
                  name TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
                  message TEXT NOT NULL, updated_at_ms INTEGER NOT NULL,
                  retry_attempt INTEGER NOT NULL, next_attempt_at_ms INTEGER NOT NULL))",
             // Schema 1 wrote every commit's versions to latest_versions. A1 changed twice (its
             // first event was purged since), A2 once; one dead letter.
             "INSERT INTO events VALUES (2, 'dh', 'order', 'A1', '2025-04-23T11:00:00.000Z', "
             "'2025-04-23T10:01:53.812Z', '{\"id\":\"A1\"}', 0, 1000)",
             "INSERT INTO events VALUES (3, 'dh', 'order', 'A2', '2025-04-23T10:05:00.000Z', '', "
             "'{\"id\":\"A2\"}', 0, 1000)",
             "UPDATE sqlite_sequence SET seq = 3 WHERE name = 'events'",
             "INSERT INTO latest_versions VALUES ('dh', 'order', 'A1', "
             "'2025-04-23T11:00:00.000Z', 1745406000000000000)",
             "INSERT INTO latest_versions VALUES ('dh', 'order', 'A2', "
             "'2025-04-23T10:05:00.000Z', 1745402700000000000)",
             "INSERT INTO latest_versions VALUES ('dh', 'order', 'A0', "
             "'2025-04-23T10:01:53.812Z', 1745402513812000000)",
             "INSERT INTO dead_letters (sink, sequence, source, entity, key, version, previous, "
             "body, echo, fetched_at_ms, reason, failed_at_ms) SELECT 'erp', sequence, source, "
             "entity, key, version, previous, body, echo, fetched_at_ms, 'bad', 2000 FROM events "
             "WHERE sequence = 3",
             "INSERT INTO sink_offsets VALUES ('erp', 3, 2000)",
             "PRAGMA user_version = 1",
         }) {
      db << sql, now;
    }
  }
  SqliteJournal journal(path_);
  EXPECT_EQ(journal.settings().schema_version, SqliteJournal::kSchemaVersion);
  const auto seen = journal.latestVersions(
      "dh", {{"order", "A0"}, {"order", "A1"}, {"order", "A2"}, {"order", "A9"}});
  ASSERT_EQ(seen.size(), 4u);
  ASSERT_TRUE(seen[0] && seen[1] && seen[2]);
  EXPECT_EQ(seen[0]->version, kT1);
  EXPECT_EQ(seen[1]->version, kT3);
  EXPECT_EQ(seen[2]->version, kT2);
  EXPECT_EQ(seen[1]->version_ns, *parseInstantNs(kT3));
  EXPECT_FALSE(seen[3]);
  const auto events = journal.readAfter(0, {}, 10);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].body, R"({"id":"A1"})");
  EXPECT_EQ(events[0].previous, kT1);
  EXPECT_EQ(events[1].meta, "");
  const auto dead = journal.deadLetters(std::nullopt);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].event.key, "A2");
  EXPECT_EQ(dead[0].event.meta, "");
  // The controls of schema 2 are there too: the sink is known, a request can be stored.
  EXPECT_EQ(journal.ledger().sinkOffset("erp"), 3);
  EXPECT_EQ(journal.controls().knownSinks(), std::vector<std::string>{"erp"});
  EXPECT_EQ(journal.controls().submitCommand("sink.pause", "erp", "{}"), 1);

  // New commits, purges and a restart over the upgraded file.
  const Cursor cursor{kT1, *parseInstantNs(kT1), 0};
  std::vector<NewEvent> next = {event("A2", kT4), event("A3", kT1)};
  EXPECT_EQ(journal.commit("dh", next, cursor), 5);
  EXPECT_EQ(journal.purge(5, nowMs() + 1000), 4);
  const auto after = journal.latestVersions(
      "dh", {{"order", "A0"}, {"order", "A1"}, {"order", "A2"}, {"order", "A3"}});
  ASSERT_TRUE(after[0] && after[1] && after[2] && after[3]);
  EXPECT_EQ(after[0]->version, kT1);
  EXPECT_EQ(after[1]->version, kT3);
  EXPECT_EQ(after[2]->version, kT4);
  EXPECT_EQ(after[3]->version, kT1);
}

TEST(VersionIndexTest, FindsWhatWasSetAndStaysCompactAtAMillionKeys) {
  VersionIndex index;
  constexpr int kKeys = 1000000;
  for (int i = 0; i < kKeys; ++i)
    index.set(defaultKeyHash("dh", "order", std::to_string(i)), i + 1);
  EXPECT_EQ(index.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; i += 997)
    EXPECT_EQ(index.find(defaultKeyHash("dh", "order", std::to_string(i))), i + 1);
  EXPECT_FALSE(index.find(defaultKeyHash("dh", "order", "absent")).has_value());
  EXPECT_FALSE(index.find(defaultKeyHash("tc", "order", "0")).has_value());
  // 16 bytes a slot, at most 80 % of the slots used, segments grown by half.
  EXPECT_LE(index.bytes(), static_cast<size_t>(kKeys) * 32);
  index.set(defaultKeyHash("dh", "order", "5"), VersionIndex::kInTable);
  EXPECT_EQ(index.find(defaultKeyHash("dh", "order", "5")), VersionIndex::kInTable);
  EXPECT_EQ(index.size(), static_cast<size_t>(kKeys));
  // Hash 0 is a key like any other.
  index.set(0, 7);
  EXPECT_EQ(index.find(0), 7);
  index.clear();
  EXPECT_FALSE(index.find(0).has_value());
  EXPECT_EQ(index.size(), 0u);
}

}  // namespace
}  // namespace ferry::core
