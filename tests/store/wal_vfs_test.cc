// The VFS that writes a transaction's log in one system call (engine/store/wal_vfs.h): fewer
// writes, and nothing any connection or a killed process could tell apart from SQLite's own VFS.
// Raw SQLite connections on temp files; part of the store_sqlite binary (skipped for PostgreSQL).
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/store/wal_vfs.h"

extern char** environ;

namespace {

bool skipped() {
  const char* b = std::getenv("SWITCHBOARD_STORE_BACKEND");
  return b != nullptr && std::string(b) == "postgresql";
}

std::filesystem::path tempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sb-walvfs-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct Conn {
  sqlite3* db = nullptr;
  explicit Conn(const std::filesystem::path& path, int autocheckpoint = 1000) {
    BOOST_REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                  nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA wal_autocheckpoint = " + std::to_string(autocheckpoint));
  }
  ~Conn() { sqlite3_close(db); }
  int exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    return rc;
  }
  long long one(const std::string& sql) {  // first column of the first row; -1 on error
    sqlite3_stmt* st = nullptr;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string v;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
  }
};

// Ten rows of ~3 KB: about ten log frames, twenty writes asked for by SQLite.
const char* kTenRows =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
    "INSERT INTO t SELECT printf('%03000d', i) FROM n";

// A writer commits pairs of rows (with checkpoints and log restarts every few commits) while two
// readers check, in each read transaction, that both tables hold the same rows and the newest rows
// are intact: a commit published before its frames were written would show as a count mismatch,
// wrong text, or a corrupt page. The readers read the writer's frames from the log's mapping.
// `truncating`: the log is also cut to nothing at every restart (journal_size_limit 0) and by
// TRUNCATE checkpoints, so reads meet a log that shrinks and grows again under the mapping.
void readersCheckEverySnapshot(const std::string& name, bool truncating) {
  auto dir = tempDir(name);
  const auto path = dir / "r.db";
  {
    Conn setup(path);
    BOOST_REQUIRE(setup.exec("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); "
                             "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)") == SQLITE_OK);
  }
  const auto before = switchboard::store::walVfsStats();
  std::atomic<bool> done{false};
  std::atomic<int> problems{0}, reads{0};
  auto reader = [&] {
    Conn r(path);
    while (!done.load()) {
      if (r.exec("BEGIN") != SQLITE_OK) continue;
      const long long na = r.one("SELECT count(*) FROM a");
      const long long nb = r.one("SELECT count(*) FROM b");
      const long long bad = r.one(
          "SELECT count(*) FROM a WHERE id > (SELECT max(id) - 20 FROM a) AND v <> "
          "printf('%01500d', id)");
      if (na < 0 || na != nb || bad != 0) ++problems;
      r.exec("COMMIT");
      ++reads;
    }
  };
  std::thread r1(reader), r2(reader);
  int truncations = 0;
  {
    Conn w(path, /*autocheckpoint=*/16);
    if (truncating) BOOST_REQUIRE(w.exec("PRAGMA journal_size_limit = 0") == SQLITE_OK);
    for (int i = 1; i <= 1500; ++i) {
      const std::string id = std::to_string(i);
      const int rc =
          w.exec("BEGIN; INSERT INTO a VALUES (" + id + ", printf('%01500d', " + id +
                 ")); INSERT INTO b VALUES (" + id + ", printf('%01500d', " + id + ")); COMMIT");
      if (rc != SQLITE_OK) {
        ++problems;
        w.exec("ROLLBACK");
      }
      if (truncating && i % 25 == 0 && w.exec("PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK &&
          std::filesystem::file_size(dir / "r.db-wal") == 0) {
        ++truncations;
      }
    }
  }
  done = true;
  r1.join();
  r2.join();
  const auto after = switchboard::store::walVfsStats();
  BOOST_TEST(problems.load() == 0);
  BOOST_TEST(reads.load() > 10);
  if (truncating) BOOST_TEST(truncations > 0);
  // Most log reads were copies from the mapping (the readers' pages of the writer's commits).
  BOOST_TEST(after.logReads - before.logReads > 100u);
  BOOST_TEST(after.logMappedReads - before.logMappedReads > (after.logReads - before.logReads) / 2);
  Conn check(path);
  BOOST_TEST(check.text("PRAGMA integrity_check") == "ok");
  BOOST_TEST(check.one("SELECT count(*) FROM a") == 1500);
  std::filesystem::remove_all(dir);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(wal_vfs)

BOOST_AUTO_TEST_CASE(a_commit_reaches_the_log_in_one_write) {
  if (skipped()) return;
  BOOST_REQUIRE(switchboard::store::installWalCoalescingVfs());
  auto dir = tempDir("one-write");
  Conn c(dir / "t.db");
  BOOST_REQUIRE(c.exec("CREATE TABLE t (v TEXT)") == SQLITE_OK);
  const auto before = switchboard::store::walVfsStats();
  for (int i = 0; i < 20; ++i) BOOST_REQUIRE(c.exec(kTenRows) == SQLITE_OK);
  const auto after = switchboard::store::walVfsStats();
  BOOST_TEST(after.logWrites - before.logWrites >= 20u * 2 * 10);  // header and page per frame
  BOOST_TEST(after.logSyscalls - before.logSyscalls <= 20u);       // one per commit (~31 KiB each)
  Conn other(dir / "t.db");  // and another connection reads it all
  BOOST_TEST(other.one("SELECT count(*) FROM t") == 200);
  BOOST_TEST(other.one("SELECT sum(length(v)) FROM t") == 200 * 3000);
  std::filesystem::remove_all(dir);
}

// A transaction larger than one write of the VFS underneath (SQLite's unix VFS writes at most
// 128 KiB at once) and than the 4 MiB held back goes out in pieces, all of it.
BOOST_AUTO_TEST_CASE(a_large_transaction_reaches_the_log_whole) {
  if (skipped()) return;
  auto dir = tempDir("large");
  Conn c(dir / "l.db");
  BOOST_REQUIRE(c.exec("CREATE TABLE t (v TEXT)") == SQLITE_OK);
  BOOST_REQUIRE(
      c.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
             "INSERT INTO t SELECT printf('%03000d', i) FROM n") == SQLITE_OK);  // ~6 MiB
  Conn other(dir / "l.db");
  BOOST_TEST(other.one("SELECT count(*) FROM t") == 2000);
  BOOST_TEST(other.one("SELECT count(*) FROM t WHERE v <> printf('%03000d', rowid)") == 0);
  BOOST_TEST(other.text("PRAGMA integrity_check") == "ok");
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(readers_never_see_a_commit_before_its_frames) {
  if (skipped()) return;
  readersCheckEverySnapshot("readers", false);
}

BOOST_AUTO_TEST_CASE(mapped_log_reads_stay_correct_while_the_log_is_truncated) {
  if (skipped()) return;
  readersCheckEverySnapshot("truncated", true);
}

// The child half of the next test: commits forever, appending each committed count to a progress
// file after its COMMIT returned, with a large uncommitted transaction now and then.
BOOST_AUTO_TEST_CASE(killed_writer_child) {
  const char* path = std::getenv("SB_WAL_CHILD_DB");
  if (path == nullptr) return;  // only when started by the test below
  Conn w(path, 64);
  w.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)");
  std::ofstream progress(std::string(path) + ".progress");
  for (long long i = 1;; ++i) {
    if (i % 7 == 0) {  // frames written and rolled back
      w.exec("BEGIN");
      w.exec("INSERT INTO t (v) SELECT printf('%02000d', 0) FROM t LIMIT 50");
      w.exec("ROLLBACK");
    }
    if (w.exec("INSERT INTO t (id, v) VALUES (" + std::to_string(i) + ", printf('%02000d', " +
               std::to_string(i) + "))") != SQLITE_OK) {
      std::_Exit(3);
    }
    progress << i << '\n' << std::flush;
  }
}

BOOST_AUTO_TEST_CASE(a_killed_process_keeps_every_commit_that_returned) {
  if (skipped()) return;
  auto dir = tempDir("killed");
  const std::string db = (dir / "k.db").string();
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("SB_WAL_CHILD_DB=" + db);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string only = "--run_test=wal_vfs/killed_writer_child";
  char* argv[] = {self.data(), only.data(), nullptr};
  pid_t child = 0;
  BOOST_REQUIRE(posix_spawn(&child, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  long long last = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (last < 400 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(db + ".progress");
    for (long long v; in >> v;) last = v;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  BOOST_REQUIRE(WIFSIGNALED(status));
  std::ifstream in(db + ".progress");
  for (long long v; in >> v;) last = v;  // what was reported before the kill
  BOOST_REQUIRE(last >= 400);
  Conn after(dir / "k.db");
  BOOST_TEST(after.text("PRAGMA integrity_check") == "ok");
  const long long rows = after.one("SELECT count(*) FROM t");
  BOOST_TEST(rows >= last);      // every commit that returned
  BOOST_TEST(rows <= last + 1);  // and at most the one in flight
  BOOST_TEST(after.one("SELECT count(*) FROM t WHERE v <> printf('%02000d', id)") == 0);
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
