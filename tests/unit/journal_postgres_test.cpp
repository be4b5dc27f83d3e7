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
#include <set>
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
  // What schema 1 was: no source dead letters, no hosts, no leases.
  pg_->exec(
      "DROP TABLE source_dead_letters, hosts, leases; UPDATE ferry_journal SET schema_version = 1");
  auto journal = open();
  EXPECT_EQ(journal->schemaVersion(), PostgresJournal::kSchemaVersion);
  EXPECT_EQ(journal->identity(), identity);
  EXPECT_EQ(journal->readAfter(0, {}, 10).size(), 1u);
  EXPECT_TRUE(journal->sourceDeadLetters(std::nullopt).empty());
  EXPECT_TRUE(journal->leases().empty());
  EXPECT_TRUE(journal->hosts().empty());
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

TEST_F(PostgresJournalTest, OneFerryPerHostIdAnyNumberOfHostIdsAndTheHolderIsNamed) {
  auto first = open("host-a");
  auto second = open("host-a");
  auto other_host = open("host-b");
  EXPECT_FALSE(PostgresJournal::ownerOf(pg_->url()).has_value());
  EXPECT_FALSE(first->own().has_value());
  const auto holder = second->own();
  ASSERT_TRUE(holder.has_value()) << "two ferries with one host_id at once";
  EXPECT_EQ(*holder, ownerName("host-a"));
  EXPECT_EQ(PostgresJournal::ownerOf(pg_->url(), host("host-a")), holder);
  EXPECT_FALSE(other_host->own().has_value()) << "another host_id shares the journal";
  EXPECT_EQ(PostgresJournal::ownerOf(pg_->url(), host("host-b")), ownerName("host-b"));
  EXPECT_TRUE(PostgresJournal::ownerOf(pg_->url()).has_value());
  // Another journal in another schema of the same database has hosts of its own.
  test::PgScratch other;
  PostgresJournal elsewhere(other.url(), host("host-a"));
  EXPECT_FALSE(elsewhere.own().has_value());
  // The lock goes with the holder's connection (once the server has ended its side).
  first.reset();
  std::optional<std::string> still;
  for (int i = 0; i < 100 && (still = second->own()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(still.has_value()) << "still held by " << *still;
}

// PostgreSQL restarted or failed over: the call that meets the dead connection fails (the runners
// retry it), the next one connects again, and a host takes its lock again before it writes.
TEST_F(PostgresJournalTest, ALostConnectionIsMadeAgainAndTheHostKeepsItsLock) {
  auto owner = open("host-a");
  ASSERT_FALSE(owner->own().has_value());
  owner->commit("src", {event("A1")}, cursorAt(kT1));
  terminateJournalConnections();
  EXPECT_THROW(owner->commit("src", {event("A2")}, cursorAt(kT1)), JournalError);
  EXPECT_EQ(owner->commit("src", {event("A2")}, cursorAt(kT1)), 2);
  EXPECT_EQ(PostgresJournal::ownerOf(pg_->url()), ownerName("host-a"))
      << "the lock was taken again";

  // Another ferry with the same host_id started while the first one's connection was down: the
  // first writes nothing more.
  terminateJournalConnections();
  auto usurper = open("host-a");
  ASSERT_FALSE(usurper->own().has_value());
  EXPECT_THROW(owner->lastSequence(), JournalError);  // meets the dead connection
  try {
    owner->commit("src", {event("A3")}, cursorAt(kT2));
    FAIL() << "a second ferry of one host_id wrote";
  } catch (const JournalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another ferry (" + ownerName("host-a") + ")"));
  }
  EXPECT_EQ(owner->lastSequence(), 2) << "reads still work";
  EXPECT_EQ(usurper->cursor("src")->since, kT1);
}

// Leases: a claim takes a free group and increments its token; a held one is refused until it
// expires (PostgreSQL's clock); a renewal keeps it; a release frees it at once; the hosts table
// has the heartbeats.
TEST_F(PostgresJournalTest, LeasesAreClaimedRenewedReleasedAndEachClaimIncrementsTheToken) {
  auto a = open("host-a");
  auto b = open("host-b");
  a->defineGroups({{"sink out", {"out"}}, {"budget x", {"v1", "v2"}}});
  b->defineGroups({{"sink out", {"out"}}, {"budget x", {"v1", "v2"}}});
  auto leases = a->leases();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].group, "budget x");
  EXPECT_EQ(leases[0].members, (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(leases[0].owner, "");

  const auto first = a->claim("sink out", 60000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 1);
  EXPECT_FALSE(b->claim("sink out", 60000).has_value()) << "held and not expired";
  EXPECT_EQ(a->renew({{"sink out", *first}}, 60000), std::set<std::string>{"sink out"});
  EXPECT_TRUE(b->renew({{"sink out", *first}}, 60000).empty()) << "b does not hold it";

  // Released: b takes it at once, with the next token; a's renewal with its old token fails.
  a->release("sink out", *first);
  const auto second = b->claim("sink out", 60000);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*second, 2);
  EXPECT_TRUE(a->renew({{"sink out", *first}}, 60000).empty());

  // Expired: a short lease runs out, and the other host claims it with token 3.
  b->release("sink out", *second);
  ASSERT_EQ(a->claim("sink out", 1), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(b->claim("sink out", 60000), 4) << "an expired lease is taken";

  int64_t db_now = 0;
  a->heartbeat(60000);
  b->heartbeat(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto hosts = a->hosts(&db_now);
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_GT(hosts[0].expires_at_ms, db_now) << hosts[0].host_id << " is live";
  EXPECT_LT(hosts[1].expires_at_ms, db_now) << hosts[1].host_id << " is silent";
  a->leave();
  EXPECT_EQ(a->hosts().size(), 1u);
}

// Fencing: once a host leases, a write for an instance is checked against its group's token in
// the write's own transaction. A former owner (frozen, cut off) whose lease another host claimed
// is refused, and nothing of its write is stored; the new owner writes.
TEST_F(PostgresJournalTest, AWriteOfAFormerOwnerIsRefusedByTheFencingToken) {
  auto a = open("host-a");
  auto b = open("host-b");
  ASSERT_FALSE(a->own().has_value());
  ASSERT_FALSE(b->own().has_value());
  a->defineGroups({{"source src", {"src"}}});
  const auto token_a = a->claim("source src", 1);  // runs out at once, as for a frozen host
  ASSERT_TRUE(token_a.has_value());
  a->setFences({{"src", {"source src", *token_a}}});
  EXPECT_EQ(a->commit("src", {event("A1")}, cursorAt(kT1)), 1) << "the holder writes";
  a->stateSet("src", "k", std::string("v1"));

  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto token_b = b->claim("source src", 60000);
  ASSERT_TRUE(token_b.has_value()) << "the expired lease is taken over";
  EXPECT_EQ(*token_b, *token_a + 1);
  b->setFences({{"src", {"source src", *token_b}}});
  try {
    a->commit("src", {event("A2")}, cursorAt(kT2));
    FAIL() << "a former owner wrote";
  } catch (const JournalFenced& e) {
    EXPECT_THAT(e.what(), HasSubstr("writing for 'src': refused: the lease of group source src "
                                    "is now held by " +
                                    host("host-b")));
  }
  EXPECT_THROW(a->stateSet("src", "k", std::string("v2")), JournalFenced);
  EXPECT_THROW(a->setSinkOffset("src", 5), JournalFenced);
  EXPECT_EQ(a->lastSequence(), 1) << "nothing of the refused commit was stored";
  EXPECT_EQ(a->cursor("src")->since, kT1);
  EXPECT_EQ(a->stateGet("src", "k"), "v1");
  // An instance this host holds no lease for is refused too; a write for no instance is not.
  EXPECT_THROW(a->commit("other", {event("O1")}, cursorAt(kT1)), JournalFenced);
  EXPECT_GT(a->submitCommand("sink.pause", "out", "{}"), 0);
  // The new owner resumes from the journalled cursor and writes.
  EXPECT_EQ(b->cursor("src")->since, kT1);
  EXPECT_EQ(b->commit("src", {event("A2")}, cursorAt(kT2)), 2);
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
