// The in-memory hand-off against a real SQLite journal: a sink that is caught up reads what was
// just committed from memory, a sink that falls behind what memory holds reads the journal, and
// whichever way it reads, it gets every event once and in order.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "delivery/Handoff.h"
#include "journal/Journal.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

class HandoffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ferry-handoff-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    journal_ = openSqliteJournal((dir_ / "ferry.db").string());
  }
  void TearDown() override {
    journal_.reset();
    fs::remove_all(dir_);
  }

  // `count` events of `source` with 1 KiB bodies, keys continuing from the last call.
  std::vector<NewEvent> events(int count) {
    std::vector<NewEvent> out;
    for (int i = 0; i < count; ++i, ++next_key_) {
      NewEvent e;
      e.entity = "order";
      e.key = "k" + std::to_string(next_key_);
      e.version = formatInstantMs((1700000000000 + next_key_) * 1000000);
      e.version_ns = (1700000000000 + next_key_) * 1000000;
      e.body = "{\"id\":\"" + e.key + "\",\"pad\":\"" + std::string(1000, 'x') + "\"}";
      out.push_back(std::move(e));
    }
    return out;
  }

  // Commits through the hand-off, as a source runner does.
  int64_t publish(Handoff& handoff, const std::string& source, int count) {
    auto batch = events(count);
    Cursor cursor{"2030-01-01T00:00:00.000Z", 0, 0};
    return handoff.commitAndPublish(
        source, batch, 0, [&] { return journal_->events().commit(source, batch, cursor); });
  }

  // Reads everything after `offset` the way a sink does, `limit` at a time; returns the keys.
  std::vector<std::string> drain(Handoff& handoff, int64_t& offset,
                                 const std::vector<std::string>& sources, size_t limit) {
    std::vector<std::string> keys;
    while (true) {
      EventBatch batch = readFeed(handoff, journal_->events(), offset, sources, limit);
      if (batch.empty()) break;
      for (const auto& e : batch) {
        EXPECT_GT(e->sequence, offset);
        keys.push_back(e->key);
        offset = e->sequence;
      }
      // Events of other sources after the last one read are passed over, as the sink's offset
      // is moved to the batch's last event.
    }
    return keys;
  }

  static std::vector<std::string> keyRange(int from, int to) {
    std::vector<std::string> keys;
    for (int i = from; i < to; ++i) keys.push_back("k" + std::to_string(i));
    return keys;
  }

  fs::path dir_;
  std::unique_ptr<Journal> journal_;
  int next_key_ = 0;
};

TEST_F(HandoffTest, CaughtUpSinkReadsFromMemoryWithTheJournalsSequences) {
  Handoff handoff(1 << 20);
  EXPECT_FALSE(handoff.readAfter(0, {}, 10).has_value()) << "nothing published yet";
  const int64_t last = publish(handoff, "a", 5);
  auto memory = handoff.readAfter(0, {}, 10);
  ASSERT_TRUE(memory.has_value());
  auto stored = journal_->events().readAfter(0, {}, 10);
  ASSERT_EQ(memory->size(), 5u);
  ASSERT_EQ(stored.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*memory)[i]->sequence, stored[i].sequence);
    EXPECT_EQ((*memory)[i]->key, stored[i].key);
    EXPECT_EQ((*memory)[i]->body, stored[i].body);
    EXPECT_EQ((*memory)[i]->source, "a");
  }
  EXPECT_EQ(memory->back()->sequence, last);
  EXPECT_EQ(handoff.countAfter(last, {}), 0);
  EXPECT_EQ(handoff.countAfter(last - 2, {}), 2);
}

TEST_F(HandoffTest, SinkThatFallsBehindReadsTheJournalAndLosesNothing) {
  // Room for about 20 events: a sink that waits while 100 are committed falls out of memory.
  Handoff handoff(20 * 1200);
  int64_t offset = 0;
  publish(handoff, "a", 10);
  EXPECT_EQ(drain(handoff, offset, {}, 4), keyRange(0, 10));

  for (int i = 0; i < 10; ++i) publish(handoff, "a", 10);
  EXPECT_FALSE(handoff.readAfter(offset, {}, 4).has_value())
      << "memory answered for events it no longer holds";
  EXPECT_EQ(countFeed(handoff, journal_->events(), offset, {}), 100);
  EXPECT_EQ(drain(handoff, offset, {}, 7), keyRange(10, 110));

  // Caught up again: the next commit comes from memory.
  publish(handoff, "a", 3);
  EXPECT_TRUE(handoff.readAfter(offset, {}, 10).has_value());
  EXPECT_EQ(drain(handoff, offset, {}, 10), keyRange(110, 113));
}

TEST_F(HandoffTest, RoutingFiltersBySource) {
  Handoff handoff(1 << 20);
  publish(handoff, "a", 3);  // k0..k2
  publish(handoff, "b", 2);  // k3..k4
  publish(handoff, "a", 2);  // k5..k6
  int64_t offset = 0;
  EXPECT_EQ(drain(handoff, offset, {"b"}, 10), keyRange(3, 5));
  offset = 0;
  EXPECT_EQ(drain(handoff, offset, {"a"}, 2),
            (std::vector<std::string>{"k0", "k1", "k2", "k5", "k6"}));
  EXPECT_EQ(handoff.countAfter(0, {"a"}), 5);
}

TEST_F(HandoffTest, EventsWrittenPastTheHandoffAreReadFromTheJournal) {
  Handoff handoff(1 << 20);
  int64_t offset = 0;
  publish(handoff, "a", 3);
  EXPECT_EQ(drain(handoff, offset, {}, 10), keyRange(0, 3));
  // Something else appends to the journal (another writer): memory never saw these.
  auto foreign = events(4);
  journal_->events().commit("other", foreign, Cursor{"2030-01-01T00:00:00.000Z", 0, 0});
  // The next publish finds the gap; memory no longer vouches for it, so the sink reads the
  // journal and gets the foreign events before the new ones.
  publish(handoff, "a", 2);
  EXPECT_FALSE(handoff.readAfter(offset, {}, 10).has_value());
  EXPECT_EQ(drain(handoff, offset, {}, 10), keyRange(3, 9));
}

TEST_F(HandoffTest, AFailedCommitPublishesNothing) {
  Handoff handoff(1 << 20);
  publish(handoff, "a", 2);
  auto batch = events(2);
  batch[1].key.clear();  // the journal refuses an event without a key: nothing is stored
  Cursor cursor{"2030-01-01T00:00:00.000Z", 0, 0};
  EXPECT_THROW(handoff.commitAndPublish(
                   "a", batch, 0, [&] { return journal_->events().commit("a", batch, cursor); }),
               JournalError);
  EXPECT_EQ(batch.size(), 2u) << "the events must stay with the caller for its retry";
  int64_t offset = 0;
  EXPECT_EQ(drain(handoff, offset, {}, 10), keyRange(0, 2));
  EXPECT_EQ(journal_->events().lastSequence(), 2);
}

}  // namespace
}  // namespace ferry::core
