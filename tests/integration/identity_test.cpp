// End to end, the journal's identity: a journal file that is empty (truncated, or created by
// hand) or another program's database is refused with the fix instead of being taken for a new
// journal, which would fetch and deliver everything again; a journal keeps its identity across
// runs, and a new journal gets another one.
#include "FerryTest.h"

namespace ferry::it {
namespace {

std::string identityOf(const std::string& journal, const std::string& scratch) {
  RunResult r = runCommand({"sqlite3", journal, "SELECT id FROM journal_identity"}, scratch);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.substr(0, r.out.find('\n'));
}

TEST_F(FerryTest, AJournalKeepsItsIdentityAndANewJournalGetsAnother) {
  const std::string data = dir_.file("data.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, itemLine("k1", versionAt(1000)));
  writeConfig(sourceSection("src", data) + sinkSection("out", out));
  ASSERT_EQ(runOnce().exit_code, 0);
  const std::string first = identityOf(dir_.file("journal.db"), dir_.path());
  EXPECT_EQ(first.size(), 33u) << first;  // 20261203T155600Z-<16 hex digits>
  EXPECT_EQ(first[8], 'T');
  ASSERT_EQ(runOnce().exit_code, 0);
  EXPECT_EQ(identityOf(dir_.file("journal.db"), dir_.path()), first);

  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((dir_.file("journal.db") + suffix).c_str());
  ASSERT_EQ(runOnce().exit_code, 0);
  EXPECT_NE(identityOf(dir_.file("journal.db"), dir_.path()), first);
}

TEST_F(FerryTest, AnEmptyJournalFileIsRefusedWithTheFix) {
  const std::string data = dir_.file("data.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, itemLine("k1", versionAt(1000)));
  writeConfig(sourceSection("src", data) + sinkSection("out", out));
  ASSERT_EQ(runOnce().exit_code, 0);
  ASSERT_EQ(readSinkLines(out).size(), 1u);

  // The journal is truncated (a restore gone wrong, a disk tool): nothing may be delivered again.
  for (const char* suffix : {"-wal", "-shm"}) ::unlink((dir_.file("journal.db") + suffix).c_str());
  writeFile(dir_.file("journal.db"), "");
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 74) << describe(r);
  EXPECT_NE(r.err.find(dir_.file("journal.db") + ": the file is empty, so it is no journal"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("restore it from a backup, or remove the file"), std::string::npos)
      << r.err;
  EXPECT_EQ(readSinkLines(out).size(), 1u) << "nothing was delivered again";
}

TEST_F(FerryTest, AnotherProgramsDatabaseIsNotTakenForANewJournal) {
  const std::string data = dir_.file("data.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, itemLine("k1", versionAt(1000)));
  writeConfig(sourceSection("src", data) + sinkSection("out", out));
  RunResult made = runCommand(
      {"sqlite3", dir_.file("journal.db"), "CREATE TABLE invoices (id INTEGER PRIMARY KEY)"},
      dir_.path());
  ASSERT_EQ(made.exit_code, 0) << made.err;
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 74) << describe(r);
  EXPECT_NE(r.err.find("it is an SQLite database but not a ferry journal (it has 1 table(s)"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(readSinkLines(out).empty());
  RunResult tables =
      runCommand({"sqlite3", dir_.file("journal.db"), ".tables"}, dir_.path());
  EXPECT_EQ(tables.out.find("events"), std::string::npos) << "the file was left as it was";
}

}  // namespace
}  // namespace ferry::it
