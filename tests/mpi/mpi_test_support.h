// Test support for the MPI store, service and HTTP suites: opens a fresh MpiStore on the backend
// named by SWITCHBOARD_MPI_STORE_BACKEND (sqlite, the default, in a temporary directory; or
// postgresql from SWITCHBOARD_TEST_PG, whose mpi_ tables are dropped first).
#pragma once

#include <boost/test/unit_test.hpp>

#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "engine/mpi/mpi_store.h"

namespace switchboard::mpi::testing {

inline std::string backendName() {
  const char* b = std::getenv("SWITCHBOARD_MPI_STORE_BACKEND");
  return b && *b ? b : "sqlite";
}

inline std::string sourceDir() {
  const char* s = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(s != nullptr, "SWITCHBOARD_SOURCE_DIR is not set");
  return s;
}

// A store URL for a fresh database. On PostgreSQL the caller must reset the tables.
inline std::string freshStoreUrl() {
  if (backendName() == "postgresql") {
    const char* pg = std::getenv("SWITCHBOARD_TEST_PG");
    BOOST_REQUIRE_MESSAGE(pg != nullptr && *pg,
                          "SWITCHBOARD_TEST_PG is not set (scripts/test provides a cluster)");
    return pg;
  }
  static std::atomic<int> n{0};
  auto dir =
      std::filesystem::temp_directory_path() / ("switchboard-mpi-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return "sqlite3://db=" + (dir / ("mpi" + std::to_string(n++) + ".db")).string();
}

inline std::unique_ptr<MpiStore> freshStore(std::string* urlOut = nullptr) {
  std::string url = freshStoreUrl();
  auto s = MpiStore::open(url);
  BOOST_REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message));
  if (backendName() == "postgresql") {
    auto r = (*s)->resetForTests();
    BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  }
  if (urlOut) *urlOut = url;
  return std::move(*s);
}

// SQLite only: while `refuse` is set, every COMMIT on the store's connection fails (a commit
// hook turns it into a rollback), to test what a failed commit leaves behind. `refuse` must
// outlive the store.
inline void refuseCommitsWhile(MpiStore& store, const std::atomic<bool>& refuse) {
  BOOST_REQUIRE(store.transaction([&](MpiTx& tx) -> Result<void> {
    auto* backend = static_cast<soci::sqlite3_session_backend*>(tx.session().get_backend());
    sqlite_api::sqlite3_commit_hook(
        backend->conn_,
        [](void* flag) { return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0; },
        const_cast<std::atomic<bool>*>(&refuse));
    return {};
  }));
}

// SQLite only: whether another connection to the store at `url` sees a committed row of
// `table` whose `column` is `value` (what a crash of the process would leave).
inline bool committedRow(const std::string& url, const std::string& table,
                         const std::string& column, const std::string& value) {
  soci::session other(*soci::factory_sqlite3(), url.substr(std::string("sqlite3://").size()));
  int n = 0;
  other << "SELECT COUNT(*) FROM " << table << " WHERE " << column << " = :v", soci::use(value),
      soci::into(n);
  return n > 0;
}

// Removes the temporary SQLite files when the test module ends.
struct TempDirCleanup {
  ~TempDirCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(
        std::filesystem::temp_directory_path() / ("switchboard-mpi-" + std::to_string(::getpid())),
        ec);
  }
};

}  // namespace switchboard::mpi::testing
