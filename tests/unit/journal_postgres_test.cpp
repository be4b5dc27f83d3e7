// What only the PostgreSQL journal has: a sequence several connections commit to concurrently, the
// owner's advisory lock across connections and reconnects, a database of another program refused,
// the URL's password kept out of messages. Against a private schema of the PostgreSQL server
// scripts/test starts (PgScratch.h); the journal tests of both backends are in
// journal_sqlite_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "PgScratch.h"
#include "journal/Journal.h"
#include "journal/PostgresJournal.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kT1 = "2025-04-23T10:01:53.812Z";
const std::string kT2 = "2025-04-23T10:05:00.000Z";

NewEvent event(const std::string& key, const std::string& version = kT1) {
  NewEvent e;
  e.entity = "order";
  e.key = key;
  e.version = version;
  e.version_ns = *parseInstantNs(version);
  e.body = R"({"id":")" + key + R"("})";
  return e;
}

Cursor cursorAt(const std::string& since, int64_t offset = 0) {
  return Cursor{since, *parseInstantNs(since), offset};
}

class PostgresJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      pg_ = std::make_unique<test::PgScratch>();
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
  }
  // This test's host ids start with its schema's name: tests running at once (ctest -j) on the
  // same server never cut each other's connections.
  std::string host(const std::string& name) const { return pg_->schema() + "-" + name; }
  std::unique_ptr<PostgresJournal> open(const std::string& name = "test") {
    return std::make_unique<PostgresJournal>(pg_->url(), host(name));
  }
  // The application_name of this process's journal connections on host `name`.
  std::string ownerName(const std::string& name) const {
    return "ferry/" + host(name) + "/" + std::to_string(::getpid());
  }
  // Ends the server side of every connection of this test's journals.
  void terminateJournalConnections() {
    pg_->exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE "
        "'ferry/" +
        pg_->schema() + "-%'");
  }

  std::unique_ptr<test::PgScratch> pg_;
};

// Several connections commit pages of random sizes at once while a sink-like reader follows
// "events after my offset" in small reads. With a bigserial a page that took lower sequences can
// commit after one that took higher ones, and the reader, having moved past them, skips it. Here
// every read must continue exactly where the offset stands (sequence offset + 1, then
// contiguous), and the reader must end up with every event of every writer exactly once.
TEST_F(PostgresJournalTest, ConcurrentCommittersNeverLetAReaderSkipAnEvent) {
  constexpr int kWriters = 4;
  constexpr int kPagesEach = 60;
  open();  // creates the schema
  std::atomic<int> writing{kWriters};
  std::atomic<int64_t> written{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto journal = open("writer" + std::to_string(w));
      std::mt19937 rng(w + 1);
      for (int p = 0; p < kPagesEach; ++p) {
        std::vector<NewEvent> page;
        const int size = 1 + static_cast<int>(rng() % 150);
        for (int i = 0; i < size; ++i)
          page.push_back(
              event(std::to_string(w) + "-" + std::to_string(p) + "-" + std::to_string(i)));
        journal->commit("src" + std::to_string(w), page, cursorAt(kT1, p));
        written += size;
      }
      --writing;
    });
  }
  auto reader = open("reader");
  int64_t offset = 0, reads = 0, misplaced = 0, read_count = 0;
  std::string example;
  auto follow = [&] {
    const auto events = reader->readAfter(offset, {}, 37);
    ++reads;
    read_count += static_cast<int64_t>(events.size());
    for (const auto& e : events) {
      if (e.sequence != offset + 1 && ++misplaced <= 3)
        example +=
            " at offset " + std::to_string(offset) + " read " + std::to_string(e.sequence) + ";";
      offset = e.sequence;
    }
    return !events.empty();
  };
  while (writing.load() > 0) follow();
  for (auto& t : writers) t.join();
  while (follow()) {
  }
  EXPECT_EQ(misplaced, 0) << "the reader skipped events:" << example;
  EXPECT_EQ(read_count, written.load()) << "every event read once";
  EXPECT_EQ(offset, written.load());
  EXPECT_EQ(reader->lastSequence(), written.load()) << "no sequence lost or handed out twice";
  EXPECT_EQ(reader->countAfter(0, {}), written.load());
  EXPECT_GT(reads, kWriters * kPagesEach / 10) << "precondition: the reader followed the writers";
}

TEST_F(PostgresJournalTest, ADatabaseOfAnotherProgramIsRefusedAndLeftAlone) {
  pg_->exec("CREATE TABLE invoices (id integer PRIMARY KEY)");
  try {
    open();
    FAIL() << "took another program's schema for a new journal";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr(pg_->url()));
    EXPECT_THAT(e.what(), HasSubstr("1 table(s) but no ferry journal"));
  }
  EXPECT_EQ(pg_->exec("SELECT count(*) FROM information_schema.tables WHERE table_schema = '" +
                      pg_->schema() + "'")[0][0],
            "1");
  EXPECT_FALSE(PostgresJournal::exists(pg_->url()));
}

TEST_F(PostgresJournalTest, TheSchemaIsCreatedOnceWithAnIdentityThatStays) {
  EXPECT_FALSE(PostgresJournal::exists(pg_->url()));
  std::string identity;
  {
    auto journal = open();
    identity = journal->identity();
    EXPECT_EQ(journal->schemaVersion(), PostgresJournal::kSchemaVersion);
  }
  EXPECT_TRUE(PostgresJournal::exists(pg_->url()));
  EXPECT_THAT(identity, ::testing::MatchesRegex("[0-9]{8}T[0-9]{6}Z-[0-9a-f]{16}"));
  EXPECT_EQ(open()->identity(), identity);
  EXPECT_EQ(pg_->exec("SELECT schema_version FROM ferry_journal")[0][0],
            std::to_string(PostgresJournal::kSchemaVersion));
}

// A journal of an older schema is brought forward when opened, and keeps what it holds.
TEST_F(PostgresJournalTest, ASchemaOneJournalIsUpgradedAndKeepsItsEvents) {
  std::string identity;
  {
    auto journal = open();
    identity = journal->identity();
    journal->commit("src", {event("A1")}, cursorAt(kT1));
  }
  // What schema 1 was: no source dead letters.
  pg_->exec("DROP TABLE source_dead_letters; UPDATE ferry_journal SET schema_version = 1");
  auto journal = open();
  EXPECT_EQ(journal->schemaVersion(), PostgresJournal::kSchemaVersion);
  EXPECT_EQ(journal->identity(), identity);
  EXPECT_EQ(journal->readAfter(0, {}, 10).size(), 1u);
  EXPECT_TRUE(journal->sourceDeadLetters(std::nullopt).empty());
}

TEST_F(PostgresJournalTest, AnUnreachableServerIsNamedWithoutThePassword) {
  // A port nobody listens on (the test server's port plus one is free only by chance: use 1).
  const std::string url = "postgresql://ferry:s3cret-Passw0rd@127.0.0.1:1/ferry";
  try {
    PostgresJournal journal(url, "test");
    FAIL() << "opened a journal on a closed port";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("postgresql://ferry:***@127.0.0.1:1/ferry"));
    EXPECT_THAT(e.what(), HasSubstr("cannot connect to PostgreSQL"));
    EXPECT_THAT(e.what(), Not(HasSubstr("s3cret-Passw0rd")));
  }
  EXPECT_EQ(journalDisplayName(url), "postgresql://ferry:***@127.0.0.1:1/ferry");
  EXPECT_EQ(journalDisplayName("/var/lib/ferry/journal.db"), "/var/lib/ferry/journal.db");
}

TEST_F(PostgresJournalTest, OneOwnerAtATimeAndTheOwnerIsNamed) {
  auto first = open("host-a");
  auto second = open("host-b");
  EXPECT_FALSE(PostgresJournal::ownerOf(pg_->url()).has_value());
  EXPECT_FALSE(first->own().has_value());
  const auto holder = second->own();
  ASSERT_TRUE(holder.has_value()) << "two owners at once";
  EXPECT_EQ(*holder, ownerName("host-a"));
  EXPECT_EQ(PostgresJournal::ownerOf(pg_->url()), holder);
  // Another journal in another schema of the same database has an owner of its own.
  test::PgScratch other;
  PostgresJournal elsewhere(other.url(), host("host-b"));
  EXPECT_FALSE(elsewhere.own().has_value());
  // The lock goes with the owner's connection (once the server has ended its side).
  first.reset();
  std::optional<std::string> still;
  for (int i = 0; i < 100 && (still = second->own()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(still.has_value()) << "still owned by " << *still;
}

// PostgreSQL restarted or failed over: the call that meets the dead connection fails (the runners
// retry it), the next one connects again, and an owner takes its lock again before it writes.
TEST_F(PostgresJournalTest, ALostConnectionIsMadeAgainAndTheOwnerKeepsTheJournal) {
  auto owner = open("host-a");
  ASSERT_FALSE(owner->own().has_value());
  owner->commit("src", {event("A1")}, cursorAt(kT1));
  terminateJournalConnections();
  EXPECT_THROW(owner->commit("src", {event("A2")}, cursorAt(kT1)), JournalError);
  EXPECT_EQ(owner->commit("src", {event("A2")}, cursorAt(kT1)), 2);
  EXPECT_EQ(PostgresJournal::ownerOf(pg_->url()), ownerName("host-a"))
      << "the lock was taken again";

  // Another ferry took the journal while the owner's connection was down: the former owner
  // writes nothing more.
  terminateJournalConnections();
  auto usurper = open("host-b");
  ASSERT_FALSE(usurper->own().has_value());
  EXPECT_THROW(owner->lastSequence(), JournalError);  // meets the dead connection
  try {
    owner->commit("src", {event("A3")}, cursorAt(kT2));
    FAIL() << "a former owner wrote";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another ferry (" + ownerName("host-b") + ")"));
  }
  EXPECT_EQ(owner->lastSequence(), 2) << "reads still work";
  EXPECT_EQ(usurper->cursor("src")->since, kT1);
}

// Dedupe's memory is the latest_versions table: it survives restarts and purges, forgets only
// when asked, and a failed commit changes no version.
TEST_F(PostgresJournalTest, LatestVersionsSurvivePurgeAndRestartAndForgetOnlyWhenAsked) {
  auto journal = open();
  journal->commit("src", {event("A1", kT1), event("A2", kT1), event("A1", kT2)}, cursorAt(kT2));
  EXPECT_EQ(journal->purge(3, nowMs() + 1000), 3);
  journal = open();
  auto seen = journal->latestVersions("src", {{"order", "A1"}, {"order", "A2"}, {"order", "A3"}});
  ASSERT_TRUE(seen[0].has_value());
  EXPECT_EQ(seen[0]->version, kT2) << "the page's last version of a key wins";
  EXPECT_EQ(seen[0]->version_ns, *parseInstantNs(kT2));
  EXPECT_TRUE(seen[1].has_value());
  EXPECT_FALSE(seen[2].has_value());
  EXPECT_THROW(journal->commit("src", {event("A2", kT2), event("", kT2)}, cursorAt(kT2)),
               JournalError);
  EXPECT_EQ(journal->latestVersions("src", {{"order", "A2"}})[0]->version, kT1);
  journal->resetCursor("src", cursorAt(kT1), true);
  journal = open();
  EXPECT_FALSE(journal->latestVersions("src", {{"order", "A1"}})[0].has_value());
  // Keys with quotes, backslashes, commas and braces travel through the array parameters.
  const std::string odd = R"(a"b\c,{d} e)";
  journal->commit("src", {event(odd)}, cursorAt(kT1));
  EXPECT_TRUE(journal->latestVersions("src", {{"order", odd}})[0].has_value());
  EXPECT_EQ(journal->readAfter(0, {"src", R"(x"y)"}, 10).size(), 1u);
}

TEST_F(PostgresJournalTest, MetadataTravelsFromCommitToReadsAndDeadLetters) {
  auto journal = open();
  NewEvent e = event("A1");
  e.meta = R"({"etag":"W/\"7\""})";
  journal->commit("src", {e}, cursorAt(kT1));
  EXPECT_EQ(journal->readAfter(0, {}, 10)[0].meta, e.meta);
  journal->advanceSink("out", 1, std::nullopt, {{1, "refused"}});
  EXPECT_EQ(journal->deadLetters(std::nullopt)[0].event.meta, e.meta);
  EXPECT_EQ(journal->eventsOfKey("A1")[0].meta, e.meta);
}

}  // namespace
}  // namespace ferry::core
