// MPI persistence on SOCI. Every statement is parameterised; the only text assembled at run
// time is the dialect's auto-increment column type in the migrations. The statements a
// submission runs are compiled once per session (MpiTx::Prepared) and re-executed.
// Thread-safety: see mpi_store.h.
#include "engine/mpi/mpi_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <tuple>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace switchboard::mpi {

const char* linkOriginName(LinkOrigin o) { return o == LinkOrigin::kManual ? "MANUAL" : "AUTO"; }

std::optional<LinkOrigin> parseLinkOrigin(std::string_view s) {
  if (s == "AUTO") return LinkOrigin::kAuto;
  if (s == "MANUAL") return LinkOrigin::kManual;
  return std::nullopt;
}

std::optional<Decision> parseDecision(std::string_view s) {
  if (s == "MATCH") return Decision::kMatch;
  if (s == "POSSIBLE_MATCH") return Decision::kPossibleMatch;
  if (s == "NO_MATCH") return Decision::kNoMatch;
  return std::nullopt;
}

const char* reviewStatusName(ReviewStatus s) {
  switch (s) {
    case ReviewStatus::kOpen:
      return "open";
    case ReviewStatus::kMerged:
      return "merged";
    case ReviewStatus::kNotDuplicate:
      return "not-duplicate";
  }
  return "open";
}

std::optional<ReviewStatus> parseReviewStatus(std::string_view s) {
  if (s == "open") return ReviewStatus::kOpen;
  if (s == "merged") return ReviewStatus::kMerged;
  if (s == "not-duplicate") return ReviewStatus::kNotDuplicate;
  return std::nullopt;
}

namespace {

// Migrations: each is a list of statements; "%ID%" stands for the dialect's auto-increment
// primary key column type.
struct Migration {
  int version;
  std::vector<std::string> sqlite;
  std::vector<std::string> postgresql;
};

std::vector<std::string> commonV1() {
  return {
      "CREATE TABLE mpi_source_patients (id TEXT PRIMARY KEY, source_system TEXT NOT NULL, "
      "resource TEXT NOT NULL, normalized TEXT NOT NULL, created_at BIGINT NOT NULL, "
      "updated_at BIGINT NOT NULL)",
      "CREATE TABLE mpi_golden_records (id TEXT PRIMARY KEY, active INTEGER NOT NULL, "
      "replaced_by TEXT NOT NULL, resource TEXT NOT NULL, provenance TEXT NOT NULL, "
      "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
      "CREATE TABLE mpi_links (source_id TEXT NOT NULL, golden_id TEXT NOT NULL, "
      "match_result TEXT NOT NULL, link_source TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, "
      "weight DOUBLE PRECISION NOT NULL, contributions TEXT NOT NULL, reviewer TEXT NOT NULL, "
      "reason TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (source_id, golden_id))",
      "CREATE INDEX mpi_links_golden ON mpi_links (golden_id)",
      "CREATE TABLE mpi_review_items (id %ID%, source_id TEXT NOT NULL, "
      "candidate_id TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, "
      "weight DOUBLE PRECISION NOT NULL, contributions TEXT NOT NULL, status TEXT NOT NULL, "
      "reviewer TEXT NOT NULL, reason TEXT NOT NULL, created_at BIGINT NOT NULL, "
      "decided_at BIGINT NOT NULL, merge_event_id BIGINT NOT NULL, undo_state TEXT NOT NULL)",
      "CREATE INDEX mpi_review_status_score ON mpi_review_items (status, score, id)",
      "CREATE INDEX mpi_review_source ON mpi_review_items (source_id)",
      "CREATE INDEX mpi_review_candidate ON mpi_review_items (candidate_id)",
      "CREATE TABLE mpi_merge_events (id %ID%, from_golden TEXT NOT NULL, "
      "into_golden TEXT NOT NULL, reviewer TEXT NOT NULL, reason TEXT NOT NULL, "
      "review_item_id BIGINT NOT NULL, before_state TEXT NOT NULL, created_at BIGINT NOT NULL, "
      "undone_at BIGINT NOT NULL, undone_by TEXT NOT NULL)",
      "CREATE TABLE mpi_audit (id %ID%, at BIGINT NOT NULL, actor TEXT NOT NULL, "
      "action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL)",
      "CREATE INDEX mpi_audit_subject ON mpi_audit (subject)",
  };
}

std::vector<Migration> migrations() {
  Migration v1{1, commonV1(), commonV1()};
  // The audit is append-only: the database itself refuses UPDATE and DELETE.
  v1.sqlite.push_back(
      "CREATE TRIGGER mpi_audit_no_update BEFORE UPDATE ON mpi_audit "
      "BEGIN SELECT RAISE(ABORT, 'mpi_audit is append-only'); END");
  v1.sqlite.push_back(
      "CREATE TRIGGER mpi_audit_no_delete BEFORE DELETE ON mpi_audit "
      "BEGIN SELECT RAISE(ABORT, 'mpi_audit is append-only'); END");
  v1.postgresql.push_back(
      "CREATE OR REPLACE FUNCTION mpi_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
      "$f$ BEGIN RAISE EXCEPTION 'mpi_audit is append-only'; END $f$");
  v1.postgresql.push_back(
      "CREATE TRIGGER mpi_audit_no_change BEFORE UPDATE OR DELETE ON mpi_audit "
      "FOR EACH ROW EXECUTE FUNCTION mpi_audit_append_only()");
  return {v1};
}

std::string withIdType(std::string sql, SqlDialect d) {
  const std::string id =
      d == SqlDialect::kSqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
  for (size_t p; (p = sql.find("%ID%")) != std::string::npos;) sql.replace(p, 4, id);
  return sql;
}

class Txn {
 public:
  Txn(soci::session& sql, SqlDialect d) : sql_(sql) {
    if (d == SqlDialect::kSqlite) {
      sql_ << "BEGIN IMMEDIATE";
    } else {
      sql_.begin();
    }
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn() {
    if (done_) return;
    try {
      sql_.rollback();
    } catch (const std::exception&) {
      // The connection is gone; the server rolls the transaction back itself.
    }
  }
  void commit() {
    sql_.commit();
    done_ = true;
  }

 private:
  soci::session& sql_;
  bool done_ = false;
};

constexpr const char* kLinkCols =
    "source_id, golden_id, match_result, link_source, score, weight, contributions, reviewer, "
    "reason, updated_at";
constexpr const char* kReviewCols =
    "id, source_id, candidate_id, score, weight, contributions, status, reviewer, reason, "
    "created_at, decided_at, merge_event_id, undo_state";

struct LinkRow {
  MpiLink l;
  std::string result, origin;
  long long updatedAt = 0;
  void bind(soci::statement& st) {
    st.exchange(soci::into(l.sourceId));
    st.exchange(soci::into(l.goldenId));
    st.exchange(soci::into(result));
    st.exchange(soci::into(origin));
    st.exchange(soci::into(l.score));
    st.exchange(soci::into(l.weight));
    st.exchange(soci::into(l.contributions));
    st.exchange(soci::into(l.reviewer));
    st.exchange(soci::into(l.reason));
    st.exchange(soci::into(updatedAt));
  }
  MpiLink get() const {
    MpiLink out = l;
    out.result = parseDecision(result).value_or(Decision::kNoMatch);
    out.origin = parseLinkOrigin(origin).value_or(LinkOrigin::kAuto);
    out.updatedAt = updatedAt;
    return out;
  }
};

struct ReviewRow {
  ReviewItem r;
  long long id = 0, createdAt = 0, decidedAt = 0, mergeEventId = 0;
  std::string status;
  void bind(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(r.sourceId));
    st.exchange(soci::into(r.candidateId));
    st.exchange(soci::into(r.score));
    st.exchange(soci::into(r.weight));
    st.exchange(soci::into(r.contributions));
    st.exchange(soci::into(status));
    st.exchange(soci::into(r.reviewer));
    st.exchange(soci::into(r.reason));
    st.exchange(soci::into(createdAt));
    st.exchange(soci::into(decidedAt));
    st.exchange(soci::into(mergeEventId));
    st.exchange(soci::into(r.undoState));
  }
  ReviewItem get() const {
    ReviewItem out = r;
    out.id = id;
    out.status = parseReviewStatus(status).value_or(ReviewStatus::kOpen);
    out.createdAt = createdAt;
    out.decidedAt = decidedAt;
    out.mergeEventId = mergeEventId;
    return out;
  }
};

// Runs a SELECT whose columns fill `row` and whose parameters are `uses` (lvalues that outlive
// the statement), calling onRow for each result row.
template <typename Row, typename F, typename... Uses>
void fetchRows(soci::session& sql, const std::string& text, Row& row, F&& onRow, Uses&... uses) {
  soci::statement st(sql);
  row.bind(st);
  (st.exchange(soci::use(uses)), ...);
  st.alloc();
  st.prepare(text);
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) onRow(row.get());
}

}  // namespace

namespace {
struct SourceRow {
  SourcePatient s;
  long long c = 0, u = 0;
  void bind(soci::statement& st) {
    st.exchange(soci::into(s.id));
    st.exchange(soci::into(s.sourceSystem));
    st.exchange(soci::into(s.resource));
    st.exchange(soci::into(s.normalized));
    st.exchange(soci::into(c));
    st.exchange(soci::into(u));
  }
  SourcePatient get() const {
    SourcePatient out = s;
    out.createdAt = c;
    out.updatedAt = u;
    return out;
  }
};
struct GoldenRow {
  GoldenRecord g;
  int active = 1;
  long long c = 0, u = 0;
  void bind(soci::statement& st) {
    st.exchange(soci::into(g.id));
    st.exchange(soci::into(active));
    st.exchange(soci::into(g.replacedBy));
    st.exchange(soci::into(g.resource));
    st.exchange(soci::into(g.provenance));
    st.exchange(soci::into(c));
    st.exchange(soci::into(u));
  }
  GoldenRecord get() const {
    GoldenRecord out = g;
    out.active = active != 0;
    out.createdAt = c;
    out.updatedAt = u;
    return out;
  }
};
struct IdRow {  // the id an INSERT ... RETURNING id gives back
  long long id = 0;
  void bind(soci::statement& st) { st.exchange(soci::into(id)); }
  long long get() const { return id; }
};
struct NoRow {
  void bind(soci::statement&) {}
};
constexpr const char* kSourceCols =
    "id, source_system, resource, normalized, created_at, updated_at";
constexpr const char* kGoldenCols =
    "id, active, replaced_by, resource, provenance, created_at, updated_at";

// A statement compiled on first use and from then on only re-executed with new values (the text
// is parsed once per session, not on every call). Row receives each result row (NoRow: none);
// P are the types of its parameters, bound in order. Not thread-safe: it belongs to the session.
template <typename Row, typename... P>
class Cached {
 public:
  // For statements without results.
  template <typename... V>
  void exec(soci::session& sql, const char* text, const V&... values) {
    compile(sql, text);
    params_ = std::forward_as_tuple(values...);
    st_->execute(true);
  }
  // Calls onRow(row.get()) for every result row. All rows are fetched, so the statement has
  // finished (SQLite: it is not left pending when the transaction commits).
  template <typename F, typename... V>
  void query(soci::session& sql, const char* text, F&& onRow, const V&... values) {
    compile(sql, text);
    params_ = std::forward_as_tuple(values...);
    st_->execute(false);
    while (st_->fetch()) onRow(row_.get());
  }

 private:
  void compile(soci::session& sql, const char* text) {
    if (st_) return;
    st_.emplace(sql);
    try {
      row_.bind(*st_);
      std::apply([&](auto&... p) { (st_->exchange(soci::use(p)), ...); }, params_);
      st_->alloc();
      st_->prepare(text);
      st_->define_and_bind();
    } catch (...) {
      st_.reset();
      throw;
    }
  }

  Row row_;
  std::tuple<P...> params_;
  std::optional<soci::statement> st_;  // last: its bindings point at row_ and params_
};

using Str = std::string;
using I64 = long long;

}  // namespace

// The statements a submission (and a review decision) runs, compiled once per session.
struct MpiTx::Prepared {
  Cached<NoRow, Str, Str, Str, Str, I64, I64> putSource;
  Cached<SourceRow, Str> source;
  Cached<NoRow, Str, int, Str, Str, Str, I64, I64> putGolden;
  Cached<GoldenRow, Str> golden;
  Cached<NoRow, Str, Str, Str, Str, double, double, Str, Str, Str, I64> putLink;
  Cached<NoRow, Str, Str> deleteLink;
  Cached<LinkRow, Str> linksOfSource;
  Cached<LinkRow, Str> linksOfGolden;
  Cached<SourceRow, Str> membersOfGolden;
  Cached<IdRow, Str, Str, double, double, Str, Str, Str, Str, I64, I64, I64, Str> insertReview;
  Cached<NoRow, Str, Str, double, double, Str, Str, Str, Str, I64, I64, I64, Str>
      insertReviewSqlite;
  Cached<NoRow, Str, Str, Str, I64, I64, Str, I64> updateReview;
  Cached<ReviewRow, I64> review;
  Cached<ReviewRow, Str, Str, Str, Str, Str, Str> openReviewForPair;
  Cached<ReviewRow, Str, Str, Str> openReviewsOf;
  Cached<IdRow, I64, Str, Str, Str, Str> appendAudit;
  Cached<NoRow, I64, Str, Str, Str, Str> appendAuditSqlite;
  // A batched transaction's savepoint (SQLite): one per submission, so compiled once as well
  // (as one-off statements they cost more than the rest of the store's work per submission).
  Cached<NoRow> savepoint;
  Cached<NoRow> release;
};

// ---- MpiTx ----

MpiTx::MpiTx(soci::session& sql, SqlDialect dialect, Prepared* prepared)
    : sql_(sql), dialect_(dialect), prepared_(prepared) {}

MpiTx::~MpiTx() = default;

int64_t MpiTx::lastInsertRowid() {
  auto* backend = static_cast<soci::sqlite3_session_backend*>(sql_.get_backend());
  return sqlite_api::sqlite3_last_insert_rowid(backend->conn_);
}

MpiTx::Prepared& MpiTx::prepared() {
  if (prepared_) return *prepared_;
  if (!own_) own_ = std::make_unique<Prepared>();
  return *own_;
}

void MpiTx::putSource(const SourcePatient& s) {
  prepared().putSource.exec(
      sql_,
      "INSERT INTO mpi_source_patients (id, source_system, resource, normalized, created_at, "
      "updated_at) VALUES (:id, :sys, :res, :norm, :c, :u) ON CONFLICT (id) DO UPDATE SET "
      "source_system = excluded.source_system, resource = excluded.resource, "
      "normalized = excluded.normalized, updated_at = excluded.updated_at",
      s.id, s.sourceSystem, s.resource, s.normalized, I64{s.createdAt}, I64{s.updatedAt});
}

std::optional<SourcePatient> MpiTx::source(const std::string& id) {
  std::optional<SourcePatient> out;
  prepared().source.query(
      sql_,
      "SELECT id, source_system, resource, normalized, created_at, updated_at "
      "FROM mpi_source_patients WHERE id = :id",
      [&](SourcePatient&& s) { out = std::move(s); }, id);
  return out;
}

void MpiTx::forEachSource(const std::function<void(SourcePatient&&)>& visit) {
  SourceRow row;
  fetchRows(
      sql_,
      std::string() + "SELECT " + kSourceCols + " FROM mpi_source_patients ORDER BY created_at, id",
      row, visit);
}

void MpiTx::putGolden(const GoldenRecord& g) {
  prepared().putGolden.exec(
      sql_,
      "INSERT INTO mpi_golden_records (id, active, replaced_by, resource, provenance, "
      "created_at, updated_at) VALUES (:id, :a, :r, :res, :p, :c, :u) ON CONFLICT (id) DO "
      "UPDATE SET active = excluded.active, replaced_by = excluded.replaced_by, "
      "resource = excluded.resource, provenance = excluded.provenance, "
      "updated_at = excluded.updated_at",
      g.id, g.active ? 1 : 0, g.replacedBy, g.resource, g.provenance, I64{g.createdAt},
      I64{g.updatedAt});
}

std::optional<GoldenRecord> MpiTx::golden(const std::string& id) {
  std::optional<GoldenRecord> out;
  prepared().golden.query(
      sql_,
      "SELECT id, active, replaced_by, resource, provenance, created_at, updated_at "
      "FROM mpi_golden_records WHERE id = :id",
      [&](GoldenRecord&& g) { out = std::move(g); }, id);
  return out;
}

void MpiTx::forEachGolden(const std::function<void(GoldenRecord&&)>& visit) {
  GoldenRow row;
  fetchRows(sql_, std::string() + "SELECT " + kGoldenCols + " FROM mpi_golden_records ORDER BY id",
            row, visit);
}

void MpiTx::putLink(const MpiLink& l) {
  prepared().putLink.exec(
      sql_,
      "INSERT INTO mpi_links (source_id, golden_id, match_result, link_source, score, weight, "
      "contributions, reviewer, reason, updated_at) VALUES (:s, :g, :r, :o, :sc, :w, :c, :rv, "
      ":rs, :u) ON CONFLICT (source_id, golden_id) DO UPDATE SET "
      "match_result = excluded.match_result, link_source = excluded.link_source, "
      "score = excluded.score, weight = excluded.weight, "
      "contributions = excluded.contributions, reviewer = excluded.reviewer, "
      "reason = excluded.reason, updated_at = excluded.updated_at",
      l.sourceId, l.goldenId, std::string_view(decisionName(l.result)),
      std::string_view(linkOriginName(l.origin)), l.score, l.weight, l.contributions, l.reviewer,
      l.reason, I64{l.updatedAt});
}

void MpiTx::deleteLink(const std::string& sourceId, const std::string& goldenId) {
  prepared().deleteLink.exec(sql_, "DELETE FROM mpi_links WHERE source_id = :s AND golden_id = :g",
                             sourceId, goldenId);
}

std::vector<MpiLink> MpiTx::linksOfSource(const std::string& sourceId) {
  std::vector<MpiLink> out;
  prepared().linksOfSource.query(
      sql_,
      "SELECT source_id, golden_id, match_result, link_source, score, weight, contributions, "
      "reviewer, reason, updated_at FROM mpi_links WHERE source_id = :s ORDER BY golden_id",
      [&](MpiLink&& l) { out.push_back(std::move(l)); }, sourceId);
  return out;
}

std::vector<MpiLink> MpiTx::linksOfGolden(const std::string& goldenId) {
  std::vector<MpiLink> out;
  prepared().linksOfGolden.query(
      sql_,
      "SELECT source_id, golden_id, match_result, link_source, score, weight, contributions, "
      "reviewer, reason, updated_at FROM mpi_links WHERE golden_id = :g ORDER BY source_id",
      [&](MpiLink&& l) { out.push_back(std::move(l)); }, goldenId);
  return out;
}

std::vector<SourcePatient> MpiTx::membersOfGolden(const std::string& goldenId) {
  std::vector<SourcePatient> out;
  prepared().membersOfGolden.query(
      sql_,
      "SELECT s.id, s.source_system, s.resource, s.normalized, s.created_at, s.updated_at "
      "FROM mpi_links l JOIN mpi_source_patients s ON s.id = l.source_id "
      "WHERE l.golden_id = :g AND l.match_result IN ('MATCH', 'POSSIBLE_MATCH') "
      "ORDER BY l.source_id",
      [&](SourcePatient&& s) { out.push_back(std::move(s)); }, goldenId);
  return out;
}

void MpiTx::forEachLink(const std::function<void(MpiLink&&)>& visit) {
  LinkRow row;
  fetchRows(sql_,
            std::string() + "SELECT " + kLinkCols + " FROM mpi_links ORDER BY source_id, golden_id",
            row, visit);
}

int64_t MpiTx::insertReview(const ReviewItem& r) {
  if (dialect_ == SqlDialect::kSqlite) {
    // The rowid SQLite just assigned, as appendAudit does: RETURNING collects the returned row
    // in a temporary table on every execution.
    prepared().insertReviewSqlite.exec(
        sql_,
        "INSERT INTO mpi_review_items (source_id, candidate_id, score, weight, contributions, "
        "status, reviewer, reason, created_at, decided_at, merge_event_id, undo_state) VALUES "
        "(:s, :c, :sc, :w, :ct, :st, :rv, :rs, :ca, :da, :m, :us)",
        r.sourceId, r.candidateId, r.score, r.weight, r.contributions,
        std::string_view(reviewStatusName(r.status)), r.reviewer, r.reason, I64{r.createdAt},
        I64{r.decidedAt}, I64{r.mergeEventId}, r.undoState);
    return lastInsertRowid();
  }
  int64_t id = 0;
  prepared().insertReview.query(
      sql_,
      "INSERT INTO mpi_review_items (source_id, candidate_id, score, weight, contributions, "
      "status, reviewer, reason, created_at, decided_at, merge_event_id, undo_state) VALUES "
      "(:s, :c, :sc, :w, :ct, :st, :rv, :rs, :ca, :da, :m, :us) RETURNING id",
      [&](long long v) { id = v; }, r.sourceId, r.candidateId, r.score, r.weight,
      r.contributions, std::string_view(reviewStatusName(r.status)), r.reviewer, r.reason,
      I64{r.createdAt}, I64{r.decidedAt}, I64{r.mergeEventId}, r.undoState);
  return id;
}

void MpiTx::updateReview(const ReviewItem& r) {
  prepared().updateReview.exec(
      sql_,
      "UPDATE mpi_review_items SET status = :st, reviewer = :rv, reason = :rs, "
      "decided_at = :da, merge_event_id = :m, undo_state = :us WHERE id = :id",
      std::string_view(reviewStatusName(r.status)), r.reviewer, r.reason, I64{r.decidedAt},
      I64{r.mergeEventId}, r.undoState, I64{r.id});
}

std::optional<ReviewItem> MpiTx::review(int64_t id) {
  std::optional<ReviewItem> out;
  prepared().review.query(
      sql_,
      "SELECT id, source_id, candidate_id, score, weight, contributions, status, reviewer, "
      "reason, created_at, decided_at, merge_event_id, undo_state FROM mpi_review_items "
      "WHERE id = :id",
      [&](ReviewItem&& r) { out = std::move(r); }, I64{id});
  return out;
}

std::vector<ReviewItem> MpiTx::reviews(const ReviewFilter& f) {
  std::string status = f.status ? reviewStatusName(*f.status) : "";
  int anyStatus = f.status ? 0 : 1;
  int hasAfter = f.afterId > 0 ? 1 : 0;
  long long after = f.afterId;
  int limit = std::clamp(f.limit, 1, 1000);
  double minScore = f.minScore;
  ReviewRow row;
  std::vector<ReviewItem> out;
  // Keyset paging: the cursor item's own stored score is compared, so no float round trip.
  fetchRows(
      sql_,
      std::string() + "SELECT " + kReviewCols +
          " FROM mpi_review_items r WHERE (:any = 1 OR status = :st) AND score >= "
          ":min AND (:hasAfter = 0 OR score < (SELECT c.score FROM mpi_review_items "
          "c WHERE c.id = :a1) OR (score = (SELECT c.score FROM mpi_review_items c "
          "WHERE c.id = :a2) AND id < :a3)) ORDER BY score DESC, id DESC LIMIT :lim",
      row, [&](ReviewItem&& r) { out.push_back(std::move(r)); }, anyStatus, status, minScore,
      hasAfter, after, after, after, limit);
  return out;
}

std::optional<ReviewItem> MpiTx::openReviewForPair(const std::string& a, const std::string& b) {
  std::optional<ReviewItem> out;
  // One direction of the pair per SELECT: written as one condition with OR, SQLite (without
  // statistics) walked every open item through the status index and sorted them, a cost that
  // grew with the review queue on every candidate of every submission; each SELECT here is a
  // lookup in the candidate index.
  prepared().openReviewForPair.query(
      sql_,
      "SELECT id, source_id, candidate_id, score, weight, contributions, status, reviewer, "
      "reason, created_at, decided_at, merge_event_id, undo_state FROM mpi_review_items "
      "WHERE status = :st1 AND source_id = :a1 AND candidate_id = :b1 UNION ALL "
      "SELECT id, source_id, candidate_id, score, weight, contributions, status, reviewer, "
      "reason, created_at, decided_at, merge_event_id, undo_state FROM mpi_review_items "
      "WHERE status = :st2 AND source_id = :b2 AND candidate_id = :a2 ORDER BY id LIMIT 1",
      [&](ReviewItem&& r) { out = std::move(r); }, std::string_view("open"), a, b,
      std::string_view("open"), b, a);
  return out;
}

std::vector<ReviewItem> MpiTx::openReviewsOf(const std::string& sourceId) {
  std::vector<ReviewItem> out;
  prepared().openReviewsOf.query(
      sql_,
      "SELECT id, source_id, candidate_id, score, weight, contributions, status, reviewer, "
      "reason, created_at, decided_at, merge_event_id, undo_state FROM mpi_review_items "
      "WHERE status = :st AND (source_id = :a1 OR candidate_id = :a2) ORDER BY id",
      [&](ReviewItem&& r) { out.push_back(std::move(r)); }, std::string_view("open"), sourceId,
      sourceId);
  return out;
}

int64_t MpiTx::insertMerge(const MergeEvent& m) {
  long long item = m.reviewItemId, created = m.createdAt, undone = m.undoneAt, id = 0;
  sql_ << "INSERT INTO mpi_merge_events (from_golden, into_golden, reviewer, reason, "
          "review_item_id, before_state, created_at, undone_at, undone_by) VALUES (:f, :i, :rv, "
          ":rs, :ri, :b, :c, :ua, :ub) RETURNING id",
      soci::use(m.fromGolden), soci::use(m.intoGolden), soci::use(m.reviewer), soci::use(m.reason),
      soci::use(item), soci::use(m.before), soci::use(created), soci::use(undone),
      soci::use(m.undoneBy), soci::into(id);
  return id;
}

void MpiTx::updateMergeUndo(const MergeEvent& m) {
  long long undone = m.undoneAt, id = m.id;
  sql_ << "UPDATE mpi_merge_events SET undone_at = :ua, undone_by = :ub WHERE id = :id",
      soci::use(undone), soci::use(m.undoneBy), soci::use(id);
}

std::optional<MergeEvent> MpiTx::merge(int64_t id) {
  long long key = id, rid = 0, item = 0, created = 0, undone = 0;
  MergeEvent m;
  soci::statement st =
      (sql_.prepare << "SELECT id, from_golden, into_golden, reviewer, reason, review_item_id, "
                       "before_state, created_at, undone_at, undone_by FROM mpi_merge_events "
                       "WHERE id = :id",
       soci::use(key), soci::into(rid), soci::into(m.fromGolden), soci::into(m.intoGolden),
       soci::into(m.reviewer), soci::into(m.reason), soci::into(item), soci::into(m.before),
       soci::into(created), soci::into(undone), soci::into(m.undoneBy));
  st.execute();
  if (!st.fetch()) return std::nullopt;
  m.id = rid;
  m.reviewItemId = item;
  m.createdAt = created;
  m.undoneAt = undone;
  return m;
}

int64_t MpiTx::appendAudit(const AuditEntry& a) {
  int64_t id = 0;
  if (dialect_ == SqlDialect::kSqlite) {
    // The rowid SQLite just assigned, not RETURNING: for that SQLite collects the returned rows in
    // a temporary table on every execution.
    prepared().appendAuditSqlite.exec(
        sql_, "INSERT INTO mpi_audit (at, actor, action, subject, detail) VALUES (:at, :ac, :an, :s, :d)",
        I64{a.at}, a.actor, a.action, a.subject, a.detail);
    return lastInsertRowid();
  }
  prepared().appendAudit.query(
      sql_,
      "INSERT INTO mpi_audit (at, actor, action, subject, detail) VALUES (:at, :ac, :an, :s, "
      ":d) RETURNING id",
      [&](long long v) { id = v; }, I64{a.at}, a.actor, a.action, a.subject, a.detail);
  return id;
}

std::vector<AuditEntry> MpiTx::audit(const std::string& subject, int limit) {
  long long id = 0, at = 0;
  AuditEntry a;
  std::vector<AuditEntry> out;
  soci::statement st =
      (sql_.prepare << "SELECT id, at, actor, action, subject, detail FROM mpi_audit WHERE "
                       "subject = :s ORDER BY id LIMIT :lim",
       soci::use(subject), soci::use(limit), soci::into(id), soci::into(at), soci::into(a.actor),
       soci::into(a.action), soci::into(a.subject), soci::into(a.detail));
  st.execute();
  while (st.fetch()) {
    a.id = id;
    a.at = at;
    out.push_back(a);
  }
  return out;
}

// ---- MpiStore ----

namespace {
sqlite_api::sqlite3* sqliteHandle(soci::session& sql) {
  return static_cast<soci::sqlite3_session_backend*>(sql.get_backend())->conn_;
}
// Rows changed by this SQLite connection since it opened: a transaction that changed none wrote
// nothing to the log and needs no flush.
long long totalChanges(soci::session& sql) {
  return sqlite_api::sqlite3_total_changes(sqliteHandle(sql));
}
// Runs a statement of a batch's start or end straight through SQLite: a one-off soci statement
// costs several times more to set up than SQLite takes to parse and run these. Throws
// soci::soci_error, as a soci statement would.
void execSqlite(soci::session& sql, const char* text) {
  char* err = nullptr;
  if (sqlite_api::sqlite3_exec(sqliteHandle(sql), text, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = std::string(text) + ": " + (err != nullptr ? err : "failed");
    sqlite_api::sqlite3_free(err);
    throw soci::soci_error(message);
  }
}
}  // namespace

MpiStore::MpiStore(std::unique_ptr<soci::session> sql, SqlDialect dialect)
    : sql_(std::move(sql)), dialect_(dialect) {}

MpiStore::~MpiStore() {
  {
    // The open batch's savepoints were all released: committed as if flush() had been called,
    // without the wait for the disk.
    std::lock_guard lock(mutex_);
    (void)commitBatchLocked();
  }
  if (walFd_ >= 0) ::close(walFd_);
}

Result<std::unique_ptr<MpiStore>> MpiStore::open(const std::string& url) {
  if (url.starts_with("sqlite3://")) return open("sqlite3", url.substr(10));
  if (url.starts_with("sqlite:")) return open("sqlite3", "db=" + url.substr(7));
  if (url.starts_with("postgresql://")) return open("postgresql", url.substr(13));
  return fail(ErrorCode::kInvalid,
              "MPI store url must start with 'sqlite3://', 'sqlite:' or 'postgresql://'");
}

Result<std::unique_ptr<MpiStore>> MpiStore::open(const std::string& backend,
                                                 const std::string& connect) {
  auto sql = std::make_unique<soci::session>();
  SqlDialect dialect;
  std::string walPath;
  try {
    if (backend == "sqlite3" || backend == "sqlite") {
      dialect = SqlDialect::kSqlite;
      // Create the parent directory of db=PATH so a fresh data dir works.
      std::string path;
      if (auto p = connect.find("db="); p != std::string::npos) {
        path = connect.substr(p + 3, connect.find(' ', p) - p - 3);
      }
      if (path.empty()) return fail(ErrorCode::kInvalid, "sqlite3 connect string needs db=PATH");
      if (path != ":memory:") {
        std::error_code ec;
        auto parent = std::filesystem::path(path).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      }
      std::string conn =
          connect.find("timeout=") == std::string::npos ? connect + " timeout=10" : connect;
      sql->open(*soci::factory_sqlite3(), conn);
      *sql << "PRAGMA busy_timeout = 10000";
      *sql << "PRAGMA journal_mode = WAL";
      // COMMIT writes the log without a flush; transaction() flushes it itself (Durability).
      // Checkpoints still flush the log before copying it and the database file after.
      *sql << "PRAGMA synchronous = NORMAL";
      // 16 MiB of pages (the default is 2 MiB): a submission reads golden records and index
      // pages all over the file, each page not cached a read call.
      *sql << "PRAGMA cache_size = -16384";

      walPath = path == ":memory:" ? std::string() : path + "-wal";
    } else if (backend == "postgresql") {
      dialect = SqlDialect::kPostgresql;
      sql->open(*soci::factory_postgresql(), connect);
      *sql << "SET client_min_messages = WARNING";  // no NOTICEs on stderr from IF NOT EXISTS
    } else {
      return fail(ErrorCode::kInvalid,
                  "unknown MPI store backend '" + backend + "' (expected sqlite3 or postgresql)");
    }
  } catch (const std::exception& e) {
    return fail(ErrorCode::kTransient, std::string("cannot open the MPI store: ") + e.what());
  }
  std::unique_ptr<MpiStore> store(new MpiStore(std::move(sql), dialect));
  if (auto m = store->migrate(); !m) return std::unexpected(m.error());
  if (!walPath.empty()) {
    store->walFd_ = ::open(walPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (store->walFd_ < 0) {
      return fail(ErrorCode::kTransient,
                  "cannot open the MPI store's log " + walPath + ": " + std::strerror(errno));
    }
    if (auto f = store->flushLog(); !f) return std::unexpected(f.error());  // the migrations
  }
  return store;
}

int MpiStore::latestSchemaVersion() { return migrations().back().version; }

Result<void> MpiStore::migrate() {
  std::lock_guard lock(mutex_);
  try {
    *sql_ << "CREATE TABLE IF NOT EXISTS mpi_schema_migrations (version INTEGER PRIMARY KEY, "
             "applied_at BIGINT NOT NULL)";
    for (const Migration& m : migrations()) {
      Txn txn(*sql_, dialect_);
      if (dialect_ == SqlDialect::kPostgresql) {
        // Two engines starting together: the second waits and then sees the version applied.
        *sql_ << "SELECT pg_advisory_xact_lock(7236857364)";
      }
      int count = 0;
      int version = m.version;
      *sql_ << "SELECT COUNT(*) FROM mpi_schema_migrations WHERE version = :v", soci::use(version),
          soci::into(count);
      if (count > 0) {
        txn.commit();
        continue;
      }
      for (const std::string& s : dialect_ == SqlDialect::kSqlite ? m.sqlite : m.postgresql) {
        *sql_ << withIdType(s, dialect_);
      }
      long long now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      *sql_ << "INSERT INTO mpi_schema_migrations (version, applied_at) VALUES (:v, :t)",
          soci::use(version), soci::use(now);
      txn.commit();
    }
  } catch (const std::exception& e) {
    return fail(ErrorCode::kException, std::string("MPI store migration failed: ") + e.what());
  }
  return {};
}

Result<int> MpiStore::schemaVersion() {
  std::lock_guard lock(mutex_);
  try {
    int v = 0;
    soci::indicator ind = soci::i_ok;
    *sql_ << "SELECT MAX(version) FROM mpi_schema_migrations", soci::into(v, ind);
    return ind == soci::i_ok ? v : 0;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kException, std::string("MPI store: ") + e.what());
  }
}

Result<void> MpiStore::transaction(const std::function<Result<void>(MpiTx&)>& fn,
                                   Durability durability, std::uint64_t* batch) {
  std::lock_guard lock(mutex_);
  if (batch != nullptr) *batch = 0;
  try {
    if (!sql_->is_connected()) {
      if (batch_ != 0) loseBatchLocked();  // it went with the connection
      prepared_.reset();                   // compiled on the lost connection
      tempInMemory_ = false;               // a new connection starts with the default
      sql_->reconnect();
    }
    if (!prepared_) prepared_ = std::make_unique<MpiTx::Prepared>();
    if (durability == Durability::kDeferred && dialect_ == SqlDialect::kSqlite) {
      return inBatchLocked(fn, batch);
    }
    // This transaction reads and writes committed state. A batch that fails to commit here is
    // recorded as lost for its owners; this transaction does not depend on it.
    (void)commitBatchLocked();
    restoreTempStoreLocked();
    Txn txn(*sql_, dialect_);
    MpiTx tx(*sql_, dialect_, prepared_.get());
    const long long changesBefore = walFd_ < 0 ? 0 : totalChanges(*sql_);
    Result<void> r = fn(tx);
    if (!r) return r;  // Txn's destructor rolls back
    txn.commit();
    if (walFd_ < 0 || totalChanges(*sql_) == changesBefore) {
      return {};  // nothing written by this transaction
    }
    // Flushed under the lock: the log then holds nothing unflushed that this commit follows.
    return flushUpTo(committed_.load(std::memory_order_acquire));
  } catch (const soci::soci_error& e) {
    const bool lost = !sql_->is_connected();
    if (lost) {
      prepared_.reset();
      if (batch_ != 0) loseBatchLocked();
    }
    return fail(lost ? ErrorCode::kTransient : ErrorCode::kException,
                std::string("MPI store: ") + e.what());
  } catch (const std::exception& e) {
    return fail(ErrorCode::kException, std::string("MPI store: ") + e.what());
  }
}

Result<void> MpiStore::inBatchLocked(const std::function<Result<void>(MpiTx&)>& fn,
                                     std::uint64_t* batch) {
  // The batch's first transaction needs no savepoint: rolling the whole batch back undoes it
  // alone. So a batch of one (a quiet engine) costs what a transaction of its own did.
  const bool first = batch_ == 0;
  if (first) {
    // A later transaction's savepoint keeps the original of every page it changes (SQLite's
    // sub-journal) so that it can roll back alone. SQLite decides at BEGIN where that journal
    // lives: in a temporary file once it passes 64 KiB (most new submissions: 17 write calls
    // each), or in memory with temp_store MEMORY. That setting is put back by the next
    // transaction that is not batched (restoreTempStoreLocked), so large sorts (the rebuild at
    // start) still spill to disk, while a pipeline that only submits sets it once.
    if (!tempInMemory_) {
      execSqlite(*sql_, "PRAGMA temp_store = MEMORY");
      tempInMemory_ = true;
    }
    execSqlite(*sql_, "BEGIN IMMEDIATE");
    batch_ = ++batches_;
    batchChanges_ = totalChanges(*sql_);
  } else {
    prepared_->savepoint.exec(*sql_, "SAVEPOINT mpi_tx");
  }
  if (batch != nullptr) *batch = batch_;
  // Undoes this transaction's changes only; when SQLite has already rolled back the whole
  // transaction (some I/O and memory errors do), a batch holding others' changes is lost.
  auto undo = [&] {
    try {
      const bool open = sqlite_api::sqlite3_get_autocommit(sqliteHandle(*sql_)) == 0;
      if (first) {
        if (open) execSqlite(*sql_, "ROLLBACK");
        batch_ = 0;
        return;
      }
      if (!open) {
        loseBatchLocked();
        return;
      }
      *sql_ << "ROLLBACK TO mpi_tx";
      prepared_->release.exec(*sql_, "RELEASE mpi_tx");
    } catch (const std::exception&) {
      if (first) {
        batch_ = 0;  // nothing of anyone else's was in it
      } else {
        loseBatchLocked();
      }
    }
  };
  Result<void> r;
  try {
    MpiTx tx(*sql_, dialect_, prepared_.get());
    r = fn(tx);
    if (r && !first) prepared_->release.exec(*sql_, "RELEASE mpi_tx");
  } catch (const std::exception&) {
    undo();
    throw;
  }
  if (!r) undo();
  return r;
}

Result<void> MpiStore::commitBatchLocked() {
  if (batch_ == 0) return {};
  const std::uint64_t b = batch_;
  try {
    const bool wrote = totalChanges(*sql_) != batchChanges_;
    execSqlite(*sql_, "COMMIT");
    batch_ = 0;
    if (wrote && walFd_ >= 0) committed_.fetch_add(1, std::memory_order_release);
    return {};
  } catch (const std::exception& e) {
    loseBatchLocked();
    return fail(ErrorCode::kTransient, "MPI store: committing batch " + std::to_string(b) +
                                           " failed, its changes are lost: " + e.what());
  }
}

void MpiStore::loseBatchLocked() {
  try {
    if (sql_->is_connected() && sqlite_api::sqlite3_get_autocommit(sqliteHandle(*sql_)) == 0) {
      *sql_ << "ROLLBACK";
    }
  } catch (const std::exception&) {
    // SQLite rolls back an unfinished transaction itself when the connection closes.
  }
  lost_.push_back(batch_);
  batch_ = 0;
  lostCount_.fetch_add(1, std::memory_order_release);
}

void MpiStore::restoreTempStoreLocked() {
  if (!tempInMemory_) return;
  try {
    execSqlite(*sql_, "PRAGMA temp_store = DEFAULT");
    tempInMemory_ = false;
  } catch (const std::exception&) {
    // Left in memory for this transaction: a sort too large for the cache stays in memory.
  }
}

Result<void> MpiStore::commit() {
  std::lock_guard lock(mutex_);
  return commitBatchLocked();
}

bool MpiStore::batchLost(std::uint64_t first, std::uint64_t last) {
  if (first == 0 || lostCount_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard lock(mutex_);
  auto it = std::lower_bound(lost_.begin(), lost_.end(), first);
  return it != lost_.end() && *it <= last;
}

Result<void> MpiStore::flushLog() {
  logFlushes_.fetch_add(1, std::memory_order_relaxed);
  if (::fdatasync(walFd_) != 0) {
    return fail(ErrorCode::kTransient,
                std::string("MPI store: flushing the write-ahead log failed: ") + std::strerror(errno));
  }
  return {};
}

Result<void> MpiStore::flush() {
  if (auto c = commit(); !c) return c;
  if (walFd_ < 0) return {};
  // Commits counted before the flush starts are in the log already (counted after COMMIT).
  const std::uint64_t upTo = committed_.load(std::memory_order_acquire);
  if (flushed_.load(std::memory_order_acquire) >= upTo) return {};
  return flushUpTo(upTo);
}

Result<void> MpiStore::flushUpTo(std::uint64_t upTo) {
  if (auto f = flushLog(); !f) return f;
  for (std::uint64_t seen = flushed_.load(); seen < upTo && !flushed_.compare_exchange_weak(seen, upTo);) {
  }
  return {};
}

Result<void> MpiStore::resetForTests() {
  {
    std::lock_guard lock(mutex_);
    prepared_.reset();  // compiled against the tables about to be dropped
    try {
      if (auto c = commitBatchLocked(); !c) return c;
      for (const char* t : {"mpi_audit", "mpi_merge_events", "mpi_review_items", "mpi_links",
                            "mpi_golden_records", "mpi_source_patients", "mpi_schema_migrations"}) {
        *sql_ << "DROP TABLE IF EXISTS " << t;
      }
      if (dialect_ == SqlDialect::kPostgresql) {
        *sql_ << "DROP FUNCTION IF EXISTS mpi_audit_append_only()";
      }
    } catch (const std::exception& e) {
      return fail(ErrorCode::kException, std::string("MPI store reset: ") + e.what());
    }
  }
  return migrate();
}

}  // namespace switchboard::mpi
