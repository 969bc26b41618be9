// Durable MPI state on SOCI (SQLite or PostgreSQL): source patients, golden records with
// survivorship provenance, links, the review queue, merge events and an append-only audit, in
// tables prefixed `mpi_` with their own numbered migrations (mpi_schema_migrations). See
// docs/mpi.md section 9. Thread-safety: one session guarded by a mutex; every call of
// transaction() runs alone, so MpiStore may be shared between threads. An MpiTx (and the
// session's compiled statements it uses) belongs to the one thread running its transaction.
// commit() and flush() may run on any thread; flush()'s wait for the disk runs beside a
// transaction.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/mpi/match_config.h"

namespace soci {
class session;
}

namespace switchboard::mpi {

enum class LinkOrigin : uint8_t { kAuto, kManual };
const char* linkOriginName(LinkOrigin o);  // "AUTO", "MANUAL"
std::optional<LinkOrigin> parseLinkOrigin(std::string_view s);
std::optional<Decision> parseDecision(std::string_view s);  // "MATCH", "POSSIBLE_MATCH", ...

struct SourcePatient {
  std::string id;  // "<sourceSystem>/<Patient.id>"
  std::string sourceSystem;
  std::string resource;    // the FHIR Patient JSON as received
  std::string normalized;  // normalised comparison form as JSON (inspection; rebuilt at start)
  int64_t createdAt = 0;   // ms since the epoch
  int64_t updatedAt = 0;
};

struct GoldenRecord {
  std::string id;
  bool active = true;
  std::string replacedBy;  // golden id when merged into another, else empty
  std::string resource;    // the golden Patient JSON (survivorship result)
  std::string provenance;  // JSON object: field -> {"value", "source", "rule"}
  int64_t createdAt = 0;
  int64_t updatedAt = 0;
};

// One link between a source patient and a golden record. Every source has exactly one link
// whose golden is its owner (result MATCH or POSSIBLE_MATCH); MANUAL NO_MATCH links record a
// reviewer's "not the same person" against another golden.
struct MpiLink {
  std::string sourceId;
  std::string goldenId;
  Decision result = Decision::kMatch;
  LinkOrigin origin = LinkOrigin::kAuto;
  double score = 0;           // calibrated probability
  double weight = 0;          // match weight in bits
  std::string contributions;  // Scorer::explainJson of the deciding pair, or "{}"
  std::string reviewer;       // MANUAL only
  std::string reason;         // MANUAL only
  int64_t updatedAt = 0;
};

enum class ReviewStatus : uint8_t { kOpen, kMerged, kNotDuplicate };
const char* reviewStatusName(ReviewStatus s);  // "open", "merged", "not-duplicate"
std::optional<ReviewStatus> parseReviewStatus(std::string_view s);

// A pair of source patients the matcher could not decide.
struct ReviewItem {
  int64_t id = 0;
  std::string sourceId;     // the submitted record
  std::string candidateId;  // the existing record it resembles
  double score = 0;
  double weight = 0;
  std::string contributions;
  ReviewStatus status = ReviewStatus::kOpen;
  std::string reviewer;
  std::string reason;
  int64_t createdAt = 0;
  int64_t decidedAt = 0;     // 0 while open
  int64_t mergeEventId = 0;  // the merge a "merged" decision made, 0 otherwise
  std::string undoState;     // JSON the undo of a "not-duplicate" decision restores, or ""
};

struct ReviewFilter {
  std::optional<ReviewStatus> status;
  double minScore = 0;
  int limit = 50;
  // Keyset paging in (score desc, id desc) order: only items listed after the item with this
  // id (0: from the start).
  int64_t afterId = 0;
};

struct MergeEvent {
  int64_t id = 0;
  std::string fromGolden;  // made inactive, replaced-by intoGolden
  std::string intoGolden;  // survivor
  std::string reviewer;
  std::string reason;
  int64_t reviewItemId = 0;
  std::string before;  // JSON snapshot of both goldens and the moved links, for undo
  int64_t createdAt = 0;
  int64_t undoneAt = 0;
  std::string undoneBy;
};

struct AuditEntry {
  int64_t id = 0;
  int64_t at = 0;
  std::string actor;
  std::string action;   // e.g. "source.submit", "review.decide", "merge", "merge.undo"
  std::string subject;  // ids, never demographics
  std::string detail;   // JSON, free of PHI
};

enum class SqlDialect { kSqlite, kPostgresql };

// Operations inside one transaction. SOCI errors surface as exceptions that
// MpiStore::transaction converts to an Error; nothing here is called outside it.
// The frequent statements are compiled once per session (Prepared, owned by the MpiStore) and
// then only re-executed with new values; the rare ones (scans, paging, merges) run as one-off
// statements.
class MpiTx {
 public:
  struct Prepared;  // the session's compiled statements and their bound values (mpi_store.cc)
  // prepared: the session's statement cache, or null for one private to this transaction.
  MpiTx(soci::session& sql, SqlDialect dialect, Prepared* prepared = nullptr);
  ~MpiTx();
  MpiTx(const MpiTx&) = delete;
  MpiTx& operator=(const MpiTx&) = delete;

  void putSource(const SourcePatient& s);  // insert or replace
  std::optional<SourcePatient> source(const std::string& id);
  void forEachSource(const std::function<void(SourcePatient&&)>& visit);

  void putGolden(const GoldenRecord& g);  // insert or replace
  std::optional<GoldenRecord> golden(const std::string& id);
  void forEachGolden(const std::function<void(GoldenRecord&&)>& visit);

  void putLink(const MpiLink& l);  // insert or replace (key: source, golden)
  void deleteLink(const std::string& sourceId, const std::string& goldenId);
  std::vector<MpiLink> linksOfSource(const std::string& sourceId);
  std::vector<MpiLink> linksOfGolden(const std::string& goldenId);
  // The sources whose link to goldenId is MATCH or POSSIBLE_MATCH (its members), by source id:
  // linksOfGolden and source() in one query.
  std::vector<SourcePatient> membersOfGolden(const std::string& goldenId);
  void forEachLink(const std::function<void(MpiLink&&)>& visit);

  int64_t insertReview(const ReviewItem& r);  // returns the new id
  void updateReview(const ReviewItem& r);  // status, reviewer, reason, decidedAt, mergeEventId, undoState
  std::optional<ReviewItem> review(int64_t id);
  std::vector<ReviewItem> reviews(const ReviewFilter& f);
  // The open item for this unordered pair, if any.
  std::optional<ReviewItem> openReviewForPair(const std::string& a, const std::string& b);
  std::vector<ReviewItem> openReviewsOf(const std::string& sourceId);

  int64_t insertMerge(const MergeEvent& m);
  void updateMergeUndo(const MergeEvent& m);  // undoneAt, undoneBy
  std::optional<MergeEvent> merge(int64_t id);

  int64_t appendAudit(const AuditEntry& a);
  std::vector<AuditEntry> audit(const std::string& subject, int limit = 100);

  SqlDialect dialect() const { return dialect_; }
  // The session of this transaction, for tests that check what the schema refuses.
  soci::session& session() { return sql_; }

 private:
  Prepared& prepared();
  int64_t lastInsertRowid();  // SQLite: the rowid of this session's last INSERT

  soci::session& sql_;
  SqlDialect dialect_;
  Prepared* prepared_;
  std::unique_ptr<Prepared> own_;
};

class MpiStore {
 public:
  // url: "sqlite3://db=PATH [timeout=N]" (SOCI connect string), "sqlite:PATH", or
  // "postgresql://host=... port=... dbname=... user=..." (SOCI/libpq connect string).
  // Opens the session, sets SQLite to WAL and applies pending migrations.
  static Result<std::unique_ptr<MpiStore>> open(const std::string& url);
  // backend: "sqlite3" or "postgresql"; connect: the backend's SOCI connect string.
  static Result<std::unique_ptr<MpiStore>> open(const std::string& backend,
                                                const std::string& connect);
  ~MpiStore();
  MpiStore(const MpiStore&) = delete;
  MpiStore& operator=(const MpiStore&) = delete;

  // When a transaction is committed and on disk.
  enum class Durability {
    kFlushed,  // committed and on disk before transaction() returns
    // SQLite: the transaction joins the store's open batch, one SQLite transaction shared by
    // every kDeferred transaction until the next commit(), flush() or kFlushed transaction
    // commits it (each joins as a savepoint, so a failing one rolls back alone). Until then it
    // is visible on this store's session only, and a crash of the process loses it; once the
    // batch is committed an OS crash may still lose it until the next flush of the log. A
    // batch whose COMMIT fails is rolled back whole and counted as lost (lostBatches(),
    // batchLost()): the caller learns it there, not from transaction(). PostgreSQL: the same
    // as kFlushed.
    kDeferred,
  };

  // Runs fn in one transaction: committed when fn returns a value, rolled back when it returns
  // an error or a database call throws (converted to kTransient for connection failures,
  // kException otherwise). kFlushed first commits the open batch, if any, so it reads and
  // writes committed state (a batch that fails to commit there is lost; fn runs all the same).
  // batch, when given, receives the number of the batch a kDeferred transaction joined
  // (numbered from 1), else 0.
  Result<void> transaction(const std::function<Result<void>(MpiTx&)>& fn,
                           Durability durability = Durability::kFlushed,
                           std::uint64_t* batch = nullptr);

  // Commits the open batch, if any, without a flush. An error when its COMMIT failed: the
  // batch is then rolled back and lost.
  Result<void> commit();
  // commit(), then puts every transaction committed so far on disk (one fdatasync of SQLite's
  // log, shared by all batches since the last flush; nothing when there are none). kTransient
  // when the flush fails.
  Result<void> flush();
  // Batches rolled back at or before their COMMIT (a failed COMMIT, a lost connection, an error
  // that made SQLite roll back the whole transaction), and whether one numbered first..last was.
  std::uint64_t lostBatches() const { return lostCount_.load(std::memory_order_acquire); }
  bool batchLost(std::uint64_t first, std::uint64_t last);
  // SQLite: fdatasync calls on the log since open (kFlushed commits and flush()), for tests and
  // metrics. 0 on PostgreSQL.
  std::uint64_t logFlushes() const { return logFlushes_.load(std::memory_order_relaxed); }

  // Highest applied migration.
  Result<int> schemaVersion();
  static int latestSchemaVersion();
  SqlDialect dialect() const { return dialect_; }
  // Drops every mpi_ table and migrates again (tests on a shared PostgreSQL database).
  Result<void> resetForTests();

 private:
  MpiStore(std::unique_ptr<soci::session> sql, SqlDialect dialect);
  Result<void> migrate();
  // fdatasync of the log; counts it.
  Result<void> flushLog();
  // flushLog, then records the first `upTo` batch commits as on disk (they were counted before
  // the flush began).
  Result<void> flushUpTo(std::uint64_t upTo);
  // With mutex_ held: fn as a savepoint in the open batch (opened first when there is none).
  Result<void> inBatchLocked(const std::function<Result<void>(MpiTx&)>& fn, std::uint64_t* batch);
  // With mutex_ held: COMMIT of the open batch; on failure it is rolled back and lost.
  Result<void> commitBatchLocked();
  // With mutex_ held: the open batch is gone (rolled back here, or already by SQLite).
  void loseBatchLocked();
  // With mutex_ held, outside a transaction: temporary storage on disk again if a batch left
  // it in memory (see inBatchLocked).
  void restoreTempStoreLocked();

  std::mutex mutex_;
  std::unique_ptr<soci::session> sql_;
  SqlDialect dialect_;
  // Compiled on first use; dropped before a reconnect and when the tables are recreated.
  // Declared after sql_ so it is destroyed before the session it belongs to.
  std::unique_ptr<MpiTx::Prepared> prepared_;
  // SQLite: the write-ahead log, opened after the migrations (-1: PostgreSQL or in-memory).
  int walFd_ = -1;
  std::uint64_t batch_ = 0;          // the open batch's number, 0 when none is open
  std::uint64_t batches_ = 0;        // batches opened so far
  long long batchChanges_ = 0;       // the session's total changes when the batch opened
  bool tempInMemory_ = false;        // temp_store MEMORY, set for batches (inBatchLocked)
  std::vector<std::uint64_t> lost_;  // lost batches, ascending (rare)
  std::atomic<std::uint64_t> lostCount_{0};
  std::atomic<std::uint64_t> committed_{0};  // batch commits that wrote to the log (SQLite)
  std::atomic<std::uint64_t> flushed_{0};    // of those, the ones known to be on disk
  std::atomic<std::uint64_t> logFlushes_{0};
};

}  // namespace switchboard::mpi
