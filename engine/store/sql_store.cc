// The Store on SOCI: one schema and one set of statements for SQLite (WAL, writes serialised by a
// process-wide mutex, durable writes flushed after their turn: see Commit) and PostgreSQL (row
// locks, FOR UPDATE SKIP LOCKED claiming). See docs/store.md for the schema and the lifecycle.
// Thread-safety: sessions come from a pool; every method takes its own session.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <variant>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <soci/soci.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "engine/core/thread_name.h"
#include "engine/store/codec.h"
#include "engine/store/migrations.h"
#include "engine/store/store.h"
#include "engine/store/wal_vfs.h"

namespace switchboard::store {
namespace {

// SQLite's memory statistics take one process-wide mutex on every allocation and free, dozens per
// stored message and from every thread that touches a database (store and MPI alike); nothing
// here reads them. sqlite3_config works only before SQLite initialises: at static initialisation.
[[maybe_unused]] const bool kSqliteMemStatusOff =
    sqlite_api::sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
// Every SQLite database of the process goes through the VFS that writes a transaction's log in
// one system call (engine/store/wal_vfs.h); after the configuration above, which must come first.
[[maybe_unused]] const bool kWalCoalescingVfs = installWalCoalescingVfs();

using Clock = std::chrono::system_clock;

Millis wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

// A statement whose text and parameters are assembled at run time (optional filters).
// Parameters are kept in deques so the addresses SOCI binds stay valid.
class DynamicQuery {
 public:
  DynamicQuery& sql(std::string_view text) {
    text_ += text;
    return *this;
  }
  DynamicQuery& param(std::string value) {
    text_ += ":p" + std::to_string(count_++);
    strings_.push_back(std::move(value));
    order_.push_back({true, strings_.size() - 1});
    return *this;
  }
  DynamicQuery& param(long long value) {
    text_ += ":p" + std::to_string(count_++);
    numbers_.push_back(value);
    order_.push_back({false, numbers_.size() - 1});
    return *this;
  }
  const std::string& text() const { return text_; }
  void bindUses(soci::statement& st) {
    for (const auto& [isString, index] : order_) {
      if (isString) {
        st.exchange(soci::use(strings_[index]));
      } else {
        st.exchange(soci::use(numbers_[index]));
      }
    }
  }

 private:
  std::string text_;
  int count_ = 0;
  std::deque<std::string> strings_;
  std::deque<long long> numbers_;
  std::vector<std::pair<bool, std::size_t>> order_;
};

// Columns of a message row, in the order of kMessageColumns.
constexpr const char* kMessageColumns =
    "id, channel_id, idempotency_key, received_at, content_type, body, body_encoding, metadata, "
    "status, error";
// Where kMessageColumns come from: a message row and its body's (schema version 5).
constexpr const char* kMessageFrom =
    " FROM messages JOIN message_bodies b ON b.message_id = messages.id";

struct MessageRow {
  long long id = 0;
  std::string channelId;
  std::string key;
  soci::indicator keyInd = soci::i_ok;
  long long receivedAt = 0;
  std::string contentType;
  std::string body;
  std::string bodyEncoding;
  std::string metadata;
  std::string status;
  std::string error;

  void bind(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(channelId));
    st.exchange(soci::into(key, keyInd));
    st.exchange(soci::into(receivedAt));
    st.exchange(soci::into(contentType));
    st.exchange(soci::into(body));
    st.exchange(soci::into(bodyEncoding));
    st.exchange(soci::into(metadata));
    st.exchange(soci::into(status));
    st.exchange(soci::into(error));
  }

  Result<core::StoredMessage> toMessage() const {
    core::StoredMessage m;
    m.id = id;
    m.channelId = channelId;
    if (keyInd == soci::i_ok) m.idempotencyKey = key;
    m.receivedAtMs = receivedAt;
    m.contentType = contentType;
    auto decoded = decodeBody(body, bodyEncoding);
    if (!decoded) return std::unexpected(decoded.error());
    m.body = std::move(*decoded);
    m.metadata = decodeMetadata(metadata);
    m.status = status;
    m.error = error;
    return m;
  }
};

constexpr const char* kDeliveryColumns =
    "id, message_id, channel_id, destination, status, attempts, created_at, next_attempt_at, "
    "payload, payload_encoding, content_type, last_status_code, last_response, dead_reason, after_destination";
// Where kDeliveryColumns come from: a delivery row and its payload's (schema version 4).
constexpr const char* kDeliveryFrom =
    " FROM deliveries JOIN payloads p ON p.payload_id = deliveries.payload_id";

// A delivery that waits for a sibling ("after") is claimable once the sibling is no longer pending.
// It is stored "waiting" and released by the sibling's last attempt (BatchWriter::attempt); this
// check holds it back again if the sibling becomes pending once more (a dead one replayed).
constexpr const char* kAfterSiblingDone =
    "(after_destination = '' OR NOT EXISTS (SELECT 1 FROM deliveries u WHERE u.message_id = deliveries.message_id "
    "AND u.run = deliveries.run AND u.destination = deliveries.after_destination AND u.status = 'pending'))";

// What a claimed delivery carries besides its columns: its message's metadata, and the status and
// last response of the sibling it waits for.
constexpr const char* kDeliveryContext =
    "(SELECT metadata FROM messages m WHERE m.id = deliveries.message_id), "
    "COALESCE((SELECT u.status FROM deliveries u WHERE u.message_id = deliveries.message_id AND "
    "u.run = deliveries.run AND u.destination = deliveries.after_destination), ''), "
    "COALESCE((SELECT u.last_response FROM deliveries u WHERE u.message_id = deliveries.message_id AND "
    "u.run = deliveries.run AND u.destination = deliveries.after_destination), '')";

struct DeliveryRow {
  long long id = 0;
  long long messageId = 0;
  std::string channelId;
  std::string destination;
  std::string status;
  long long attempts = 0;
  long long createdAt = 0;
  long long nextAttemptAt = 0;
  std::string payload;
  std::string payloadEncoding;
  std::string contentType;
  long long lastStatusCode = 0;
  std::string lastResponse;
  std::string deadReason;
  std::string after;

  void bind(soci::statement& st) {
    st.exchange(soci::into(id));
    st.exchange(soci::into(messageId));
    st.exchange(soci::into(channelId));
    st.exchange(soci::into(destination));
    st.exchange(soci::into(status));
    st.exchange(soci::into(attempts));
    st.exchange(soci::into(createdAt));
    st.exchange(soci::into(nextAttemptAt));
    st.exchange(soci::into(payload));
    st.exchange(soci::into(payloadEncoding));
    st.exchange(soci::into(contentType));
    st.exchange(soci::into(lastStatusCode));
    st.exchange(soci::into(lastResponse));
    st.exchange(soci::into(deadReason));
    st.exchange(soci::into(after));
  }

  Result<DeliveryRecord> toRecord() const {
    DeliveryRecord d;
    d.id = id;
    d.messageId = messageId;
    d.channelId = channelId;
    d.destination = destination;
    d.status = status;
    d.attempts = static_cast<int>(attempts);
    d.createdAtMs = createdAt;
    d.nextAttemptAtMs = nextAttemptAt;
    auto decoded = decodeBody(payload, payloadEncoding);
    if (!decoded) return std::unexpected(decoded.error());
    d.payload = std::move(*decoded);
    d.contentType = contentType;
    d.lastStatusCode = static_cast<int>(lastStatusCode);
    d.lastResponse = lastResponse;
    d.deadReason = deadReason;
    d.after = after;
    return d;
  }
};

// Runs a prepared dynamic query and calls `onRow` after each fetched row.
template <typename Row, typename F>
void fetchAll(soci::session& sql, DynamicQuery& q, Row& row, F&& onRow) {
  soci::statement st(sql);
  row.bind(st);
  q.bindUses(st);
  st.alloc();
  st.prepare(q.text());
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) onRow();
}


// BEGIN IMMEDIATE on SQLite so a writer takes the lock up front (no deadlock on lock upgrade
// when another process shares the file); rolled back unless committed.
class Txn {
 public:
  Txn(soci::session& sql, Dialect dialect) : sql_(sql) {
    if (dialect == Dialect::kSqlite) {
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

// SQLite: the rowid of the session's last successful INSERT. Used instead of RETURNING, for
// which SQLite collects the returned rows in a temporary table on every execution.
long long lastInsertRowid(soci::session& sql) {
  auto* backend = static_cast<soci::sqlite3_session_backend*>(sql.get_backend());
  return sqlite_api::sqlite3_last_insert_rowid(backend->conn_);
}

// Runs `st` to the end of its results (none for INSERT/UPDATE without RETURNING), calling onRow
// after each row. A statement kept for re-use must always run to the end: SQLite refuses to
// COMMIT while a write statement is pending, and a pending read keeps its snapshot open.
template <typename F>
void runToEnd(soci::statement& st, F&& onRow) {
  st.execute(false);
  while (st.fetch()) onRow();
}
// For statements without result rows (INSERT, UPDATE, PRAGMA): SOCI steps those only when asked
// to exchange data.
inline void runToEnd(soci::statement& st) {
  st.execute(true);
}

// SQLite has one writer at a time. Intake commits (a client is waiting for its 200) go before
// worker transactions (claims, finishes, attempts), which catch up between intake commits; under
// sustained overload the backlog limit turns intake away with 503 and the workers drain it.
class PriorityMutex {
 public:
  void lock(bool high) {
    std::unique_lock l(mu_);
    if (high) {
      ++highWaiting_;
      cv_.wait(l, [&] { return !locked_; });
      --highWaiting_;
    } else {
      cv_.wait(l, [&] { return !locked_ && highWaiting_ == 0; });
    }
    locked_ = true;
  }
  void unlock() {
    {
      std::lock_guard l(mu_);
      locked_ = false;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool locked_ = false;
  int highWaiting_ = 0;
};

// SQLite: copies the write-ahead log into the database file on a thread and session of its own.
// Left to SQLite, the writer whose commit takes the log past 1,000 pages copies them and fsyncs
// the database inside its own transaction, so every few hundred intake commits one batch of
// clients waited for a checkpoint (the tail of intake latency). Here each session's commit hook
// (attach) asks this thread for a passive checkpoint once the log holds kPages, and again each
// kStepPages it grows; it copies beside the writers without blocking them. Under steady writes
// it never catches the last frames, and the log is only rewound once all of them are copied, so
// the writer whose commit takes the log past kWriterPages checkpoints itself: by then most
// frames are copied and little is left to do.
class Checkpointer {
 public:
  static constexpr int kPages = 1000;             // SQLite's default automatic checkpoint
  static constexpr int kWriterPages = 4 * kPages;  // 16 MiB of log at 4 KiB pages
  static constexpr int kStepPages = 256;           // log growth between two requests

  explicit Checkpointer(std::unique_ptr<soci::session> session)
      : session_(std::move(session)), thread_([this](std::stop_token stop) {
          core::nameThisThread("sb-checkpoint");
          run(stop);
        }) {}
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  ~Checkpointer() {
    thread_.request_stop();
    cv_.notify_all();
  }

  // Replaces the session's automatic checkpoint with this one.
  void attach(soci::session& session) {
    auto* backend = static_cast<soci::sqlite3_session_backend*>(session.get_backend());
    sqlite_api::sqlite3_wal_hook(backend->conn_, &Checkpointer::committed, this);
  }

 private:
  // Asks again only once the log has grown by kStepPages since the last request: a pass per
  // commit copies the pages every commit touches (the tables' last leaves, the indexes' hot
  // pages) once per commit instead of once per step; a step much longer leaves the writer at
  // kWriterPages more to copy with every writer waiting. Commits take turns (writeMu_), so the
  // hook runs for one commit at a time.
  static int committed(void* self, sqlite_api::sqlite3* db, const char* name, int logPages) {
    auto* c = static_cast<Checkpointer*>(self);
    int next = c->nextRequest_.load(std::memory_order_relaxed);
    if (logPages + kStepPages < next) next = kPages;  // the log was rewound
    if (logPages >= kWriterPages) {
      sqlite_api::sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      next = kPages;
    } else if (logPages >= next) {
      next = logPages + kStepPages;
      c->request();
    }
    c->nextRequest_.store(next, std::memory_order_relaxed);
    return SQLITE_OK;
  }

  void request() {
    if (requested_.exchange(true)) return;
    std::lock_guard lock(mu_);
    cv_.notify_one();
  }

  void run(std::stop_token stop) {
    std::unique_lock lock(mu_);
    while (cv_.wait(lock, stop, [&] { return requested_.load(); })) {
      requested_.store(false);
      lock.unlock();
      try {
        // Frames a reader still needs stay; the next commit past kPages asks again.
        *session_ << "PRAGMA wal_checkpoint(PASSIVE)";
      } catch (const std::exception&) {
        // E.g. another process is checkpointing; the next commit past kPages asks again.
      }
      lock.lock();
    }
  }

  std::unique_ptr<soci::session> session_;
  std::atomic<bool> requested_{false};
  std::atomic<int> nextRequest_{kPages};  // log size (pages) at which a commit asks for a pass
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::jthread thread_;  // last: stopped and joined before the members above go
};

class SessionPool {
 public:
  class Lease {
   public:
    Lease(SessionPool& pool, soci::session* s, bool reconnected)
        : pool_(pool), session_(s), reconnected_(reconnected) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.giveBack(session_); }
    soci::session& operator*() { return *session_; }
    soci::session* operator->() { return session_; }
    // Whether the connection was re-established for this lease (statements compiled on the old
    // one are gone).
    bool reconnected() const { return reconnected_; }

   private:
    SessionPool& pool_;
    soci::session* session_;
    bool reconnected_;
  };

  void add(std::unique_ptr<soci::session> s) {
    free_.push_back(s.get());
    all_.push_back(std::move(s));
  }

  Lease acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    soci::session* s = free_.back();
    free_.pop_back();
    lock.unlock();
    bool reconnected = false;
    if (!s->is_connected()) {
      reconnected = true;
      try {
        s->reconnect();
      } catch (const std::exception&) {
        // Reported by the statement that uses it.
      }
    }
    return Lease(*this, s, reconnected);
  }

 private:
  void giveBack(soci::session* s) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(s);
    }
    cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<soci::session>> all_;
  std::vector<soci::session*> free_;
};

// Where an attempt that ends its delivery puts the deliveries waiting for it: leased to `owner`
// until `untilMs` and loaded into `out` (recordAttemptsAndClaim), unless not due at `nowMs` or
// their destination ("channel/destination") is paused.
struct HandOver {
  const std::string& owner;
  Millis nowMs = 0;
  Millis untilMs = 0;
  const std::vector<std::string>& paused;
  std::vector<DeliveryRecord>& out;
};

// The statements finishes and attempts run, compiled on first use and kept with their session
// (see Prepared).
class BatchWriter {
 public:
  BatchWriter(soci::session& sql, Dialect dialect) : sql_(sql), dialect_(dialect) {}

  // `lease`: the deliveries due at once that wait for no sibling are stored leased to it, and
  // their ids appended to *leased (FinishItem::deliveryLease).
  Result<void> finish(std::int64_t messageId, const std::string& owner,
                      const ProcessOutcome& outcome, Millis nowMs,
                      const std::optional<IntakeLease>& lease = std::nullopt,
                      std::vector<Store::LeasedDelivery>* leased = nullptr,
                      std::vector<Store::LeasedDelivery>* claimable = nullptr) {
    if (!finishSt_) {
      finishSt_.emplace((sql_.prepare << "UPDATE messages SET status = :s, error = :e, lease_owner = '', "
                                        "lease_until = 0, updated_at = :u WHERE id = :i AND lease_owner = :o "
                                        "AND status = 'received'",
                         soci::use(fStatus_), soci::use(fError_), soci::use(fNow_), soci::use(fId_), soci::use(fOwner_)));
      // SQLite: the new row's id from lastInsertRowid, not RETURNING.
      const bool sqlite = dialect_ == Dialect::kSqlite;
      payloadSt_.emplace(sql_);
      payloadSt_->exchange(soci::use(dPayload_));
      payloadSt_->exchange(soci::use(dEncoding_));
      if (!sqlite) payloadSt_->exchange(soci::into(dPayloadId_));
      payloadSt_->alloc();
      payloadSt_->prepare(
          std::string("INSERT INTO payloads (payload, payload_encoding) VALUES (:p, :e)") +
          (sqlite ? "" : " RETURNING payload_id"));
      payloadSt_->define_and_bind();
      deliverySt_.emplace(sql_);
      deliverySt_->exchange(soci::use(dDestination_));
      deliverySt_->exchange(soci::use(dStatus_));
      deliverySt_->exchange(soci::use(fNow_));
      deliverySt_->exchange(soci::use(dNext_));
      deliverySt_->exchange(soci::use(dPayloadId_));
      deliverySt_->exchange(soci::use(dContentType_));
      deliverySt_->exchange(soci::use(dAfter_));
      deliverySt_->exchange(soci::use(dLeaseOwner_));
      deliverySt_->exchange(soci::use(dLeaseUntil_));
      deliverySt_->exchange(soci::use(fId_));
      if (!sqlite) deliverySt_->exchange(soci::into(dId_));
      deliverySt_->alloc();
      deliverySt_->prepare(
          std::string(
              "INSERT INTO deliveries (message_id, run, channel_id, destination, status, "
              "created_at, next_attempt_at, payload_id, content_type, "
              "after_destination, lease_owner, lease_until) SELECT id, run, channel_id, :d, "
              ":st, :c, :n, :p, :t, :a, :lo, :lu FROM messages WHERE id = :i") +
          (sqlite ? "" : " RETURNING id"));
      deliverySt_->define_and_bind();
    }
    fStatus_ = outcome.status;
    fError_ = sanitizeText(outcome.error);
    fNow_ = nowMs;
    fId_ = messageId;
    fOwner_ = owner;
    finishSt_->execute(true);
    if (finishSt_->get_affected_rows() != 1) {
      return fail(ErrorCode::kConflict, "message " + std::to_string(messageId) + " is no longer leased by " + owner);
    }
    // The finish's events (the pipeline's, then one per delivery created) go in together: one
    // multi-row INSERT instead of one statement per event.
    finishEvents_.clear();
    for (const auto& [type, detail] : outcome.events) finishEvents_.push_back({0, type, detail});
    const std::string* stored = nullptr;  // the payload of dPayloadId_, written by this finish
    for (const NewDelivery& d : outcome.deliveries) {
      // Siblings with the same payload (the EHR's Bundle and the reply after it) share its row.
      if (stored == nullptr || *stored != d.payload) {
        auto encoded = encodeBody(d.payload);
        dPayload_ = std::move(encoded.text);
        dEncoding_ = std::move(encoded.encoding);
        if (dialect_ == Dialect::kSqlite) {
          runToEnd(*payloadSt_);
          dPayloadId_ = lastInsertRowid(sql_);
        } else {
          runToEnd(*payloadSt_, [] {});
        }
        stored = &d.payload;
      }
      dDestination_ = d.destination;
      // A delivery after a sibling of this run waits outside the claimable rows until the sibling
      // ends (attempt() releases it); after a destination the run does not have, it is due as is.
      const bool waits =
          !d.after.empty() &&
          std::any_of(outcome.deliveries.begin(), outcome.deliveries.end(),
                      [&](const NewDelivery& o) { return o.destination == d.after; });
      dStatus_ = waits ? "waiting" : "pending";
      dNext_ = d.nextAttemptAtMs;
      dContentType_ = sanitizeText(d.contentType);
      dAfter_ = d.after;
      const bool leaseIt = lease && d.after.empty() && d.nextAttemptAtMs <= nowMs;
      dLeaseOwner_ = leaseIt ? lease->owner : std::string();
      dLeaseUntil_ = leaseIt ? lease->untilMs : 0;
      if (dialect_ == Dialect::kSqlite) {
        runToEnd(*deliverySt_);
        dId_ = lastInsertRowid(sql_);
      } else {
        runToEnd(*deliverySt_, [] {});
      }
      finishEvents_.push_back({dId_, "delivery-created", d.destination});
      const std::size_t index = static_cast<std::size_t>(&d - outcome.deliveries.data());
      if (leaseIt && leased != nullptr) leased->push_back({index, dId_});
      if (!leaseIt && claimable != nullptr && d.after.empty() && d.nextAttemptAtMs <= nowMs) {
        claimable->push_back({index, dId_});
      }
    }
    events(messageId, nowMs, finishEvents_);
    return {};
  }

  // `sent`: the delivery as sent (Store::AttemptItem::sent), or null.
  Result<void> attempt(std::int64_t deliveryId, const std::string& owner, const AttemptRecord& a,
                       const DeliveryRecord* sent = nullptr, const std::optional<HandOver>& handOver = std::nullopt) {
    if (!lookupSt_) {
      lookupSt_.emplace(
          (sql_.prepare << "SELECT message_id, attempts, status, run, destination, payload_id FROM deliveries "
                           "WHERE id = :i AND lease_owner = :o",
           soci::use(aId_), soci::use(aOwner_), soci::into(aMessage_), soci::into(aAttempts_),
           soci::into(aStatus_), soci::into(aRun_), soci::into(aDestination_), soci::into(aPayloadId_)));
      releaseSt_.emplace(
          (sql_.prepare << "UPDATE deliveries SET status = 'pending' WHERE message_id = :m AND "
                           "run = :r AND after_destination = :d AND status = 'waiting'",
           soci::use(aMessage_), soci::use(aRun_), soci::use(aDestination_)));
      attemptSt_.emplace((sql_.prepare << "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, "
                                         "outcome, status_code, response) VALUES (:d, :a, :s, :u, :o, :c, :r)",
                          soci::use(aId_), soci::use(aNumber_), soci::use(aStarted_), soci::use(aDuration_),
                          soci::use(aOutcome_), soci::use(aCode_), soci::use(aResponse_)));
      updateSt_.emplace((sql_.prepare << "UPDATE deliveries SET attempts = :a, status = :s, next_attempt_at = :n, "
                                        "last_status_code = :c, last_response = :r, dead_reason = :x, "
                                        "lease_owner = '', lease_until = 0 WHERE id = :i",
                         soci::use(aNumber_), soci::use(aNewStatus_), soci::use(aNext_), soci::use(aCode_),
                         soci::use(aResponse_), soci::use(aDeadReason_), soci::use(aId_)));
      rollupSt_.emplace(
          (sql_.prepare
               << "SELECT count(*), sum(CASE WHEN d.status IN ('pending', 'waiting') THEN 1 ELSE 0 "
                  "END), "
                  "sum(CASE WHEN d.status = 'dead' THEN 1 ELSE 0 END) FROM deliveries d JOIN "
                  "messages m ON m.id = d.message_id AND m.run = d.run WHERE d.message_id = :i",
           soci::use(aMessage_), soci::into(rTotal_), soci::into(rPending_, rPendingInd_),
           soci::into(rDead_, rDeadInd_)));
      messageSt_.emplace((sql_.prepare << "UPDATE messages SET status = :s, updated_at = :a WHERE id = :i AND "
                                         "status = 'processed'",
                          soci::use(rStatus_), soci::use(rAt_), soci::use(aMessage_)));
    }
    aId_ = deliveryId;
    aOwner_ = owner;
    bool found = false;
    runToEnd(*lookupSt_, [&] { found = true; });
    if (!found || aStatus_ != "pending") {
      return fail(ErrorCode::kConflict, "delivery " + std::to_string(deliveryId) + " is no longer leased by " + owner);
    }
    if (dialect_ == Dialect::kPostgresql) {
      // Serialise the status roll-up with sibling deliveries finishing on other engines.
      if (!lockSt_) {
        lockSt_.emplace((sql_.prepare << "SELECT id FROM messages WHERE id = :i FOR UPDATE", soci::use(aMessage_),
                         soci::into(locked_)));
      }
      runToEnd(*lockSt_, [] {});
    }
    aNumber_ = aAttempts_ + 1;
    aStarted_ = a.startedAtMs;
    aDuration_ = a.durationMs;
    aOutcome_ = a.outcome;
    aCode_ = a.statusCode;
    aResponse_ = sanitizeText(a.response);
    aNewStatus_ = a.newStatus;
    aNext_ = a.nextAttemptAtMs;
    aDeadReason_ = a.newStatus == "dead" ? a.deadReason : std::string();
    attemptSt_->execute(true);
    updateSt_->execute(true);
    // Whether a delivery of this run is due now: this one (retried), or its "after" siblings
    // released below. Then the message cannot roll up yet and the roll-up query is skipped.
    bool runStillDue = aNewStatus_ == "pending";
    if (!runStillDue) {  // its "after" siblings are due now
      if (handOver) {
        runStillDue = handOverWaiting(*handOver, sent) > 0;
      } else {
        releaseSt_->execute(true);
        runStillDue = releaseSt_->get_affected_rows() > 0;
      }
    }
    const Millis at = a.startedAtMs + a.durationMs;
    const std::string summary = "attempt " + std::to_string(aNumber_) + ": " + aOutcome_ +
                                (a.statusCode ? " " + std::to_string(a.statusCode) : std::string()) +
                                (aResponse_.empty() ? std::string() : " " + aResponse_.substr(0, 200));
    if (aNewStatus_ == "succeeded") {
      event(aMessage_, deliveryId, at, "sent", summary);
      if (!a.externalId.empty()) {
        if (!externalSt_) {
          externalSt_.emplace((sql_.prepare << "INSERT INTO external_refs (external_id, message_id, delivery_id, at) "
                                              "VALUES (:e, :m, :d, :a) ON CONFLICT (external_id) DO NOTHING",
                               soci::use(xExternal_), soci::use(aMessage_), soci::use(aId_), soci::use(xAt_)));
        }
        xExternal_ = sanitizeText(a.externalId);
        xAt_ = at;
        runToEnd(*externalSt_);
      }
    } else if (aNewStatus_ == "pending") {
      event(aMessage_, deliveryId, at, "retry-scheduled", summary + "; next at " + std::to_string(aNext_));
    } else {
      event(aMessage_, deliveryId, at, "dead", aDeadReason_ + "; " + summary);
    }
    // Roll the message up once every delivery of its current run is terminal.
    if (runStillDue) return {};
    rPendingInd_ = rDeadInd_ = soci::i_ok;
    runToEnd(*rollupSt_, [] {});
    if (rTotal_ > 0 && !(rPendingInd_ == soci::i_ok && rPending_ > 0)) {
      rStatus_ = (rDeadInd_ == soci::i_ok && rDead_ > 0) ? "dead" : "delivered";
      rAt_ = at;
      messageSt_->execute(true);
    }
    return {};
  }

 private:
  // Releases the deliveries waiting for the one just recorded (aMessage_, aRun_, aDestination_)
  // and hands the due ones over (see HandOver) loaded as Claimer::leaseDelivery loads a claimed
  // one: the sibling's outcome is the attempt just recorded; the payload and metadata are those
  // of `sent` when given (the payload when they share its row), read from the database otherwise.
  // One whose payload cannot be decoded stays released for a claim, which reports it.
  // Returns how many it released.
  std::size_t handOverWaiting(const HandOver& h, const DeliveryRecord* sent) {
    if (!waitingSt_) {
      waitingSt_.emplace((sql_.prepare << "SELECT id, channel_id, destination, attempts, created_at, "
                                          "next_attempt_at, payload_id, content_type, last_status_code, last_response, "
                                          "dead_reason FROM deliveries WHERE "
                                          "message_id = :m AND run = :r AND after_destination = :d AND "
                                          "status = 'waiting'",
                          soci::use(aMessage_), soci::use(aRun_), soci::use(aDestination_), soci::into(w_.id),
                          soci::into(w_.channelId), soci::into(w_.destination), soci::into(w_.attempts),
                          soci::into(w_.createdAt), soci::into(w_.nextAttemptAt), soci::into(w_.payloadId),
                          soci::into(w_.contentType), soci::into(w_.lastStatusCode), soci::into(w_.lastResponse),
                          soci::into(w_.deadReason)));
      handLeaseSt_.emplace(
          (sql_.prepare << "UPDATE deliveries SET lease_owner = :o, lease_until = :u WHERE id = :i",
           soci::use(hOwner_), soci::use(hUntil_), soci::use(hId_)));
      handPayloadSt_.emplace(
          (sql_.prepare << "SELECT payload, payload_encoding FROM payloads WHERE payload_id = :p",
           soci::use(hPayloadId_), soci::into(hPayload_), soci::into(hEncoding_)));
      handMetadataSt_.emplace(
          (sql_.prepare << "SELECT metadata FROM messages WHERE id = :m", soci::use(aMessage_), soci::into(hMetadata_)));
    }
    std::vector<Waiting> rows;
    runToEnd(*waitingSt_, [&] { rows.push_back(w_); });
    releaseSt_->execute(true);
    if (sent != nullptr && sent->id != aId_) sent = nullptr;  // not the delivery recorded
    for (Waiting& r : rows) {
      if (r.nextAttemptAt > h.nowMs) continue;
      const std::string key = r.channelId + "/" + r.destination;
      if (std::find(h.paused.begin(), h.paused.end(), key) != h.paused.end()) continue;
      DeliveryRecord d;
      if (sent != nullptr && r.payloadId == aPayloadId_) {
        d.payload = sent->payload;
      } else {
        hPayloadId_ = r.payloadId;
        bool found = false;
        runToEnd(*handPayloadSt_, [&] { found = true; });
        if (!found) continue;
        auto decoded = decodeBody(hPayload_, hEncoding_);
        if (!decoded) continue;
        d.payload = std::move(*decoded);
      }
      if (sent != nullptr) {
        d.metadata = sent->metadata;
      } else {
        bool found = false;
        runToEnd(*handMetadataSt_, [&] { found = true; });
        if (!found) continue;
        d.metadata = decodeMetadata(hMetadata_);
      }
      hId_ = r.id;
      hOwner_ = h.owner;
      hUntil_ = h.untilMs;
      runToEnd(*handLeaseSt_);
      d.id = r.id;
      d.messageId = aMessage_;
      d.channelId = std::move(r.channelId);
      d.destination = std::move(r.destination);
      d.status = "pending";
      d.attempts = static_cast<int>(r.attempts);
      d.createdAtMs = r.createdAt;
      d.nextAttemptAtMs = r.nextAttemptAt;
      d.contentType = std::move(r.contentType);
      d.lastStatusCode = static_cast<int>(r.lastStatusCode);
      d.lastResponse = std::move(r.lastResponse);
      d.deadReason = std::move(r.deadReason);
      d.after = aDestination_;
      d.upstreamStatus = aNewStatus_;
      d.upstreamResponse = aResponse_;
      d.leaseUntilMs = h.untilMs;
      h.out.push_back(std::move(d));
    }
    return rows.size();
  }

  void event(long long messageId, long long deliveryId, long long at, const std::string& type,
             const std::string& detail) {
    events(messageId, at, {{deliveryId, type, detail}});
  }

  struct PendingEvent {
    long long deliveryId = 0;
    std::string type, detail;
  };
  static constexpr std::size_t kEventRows = 8;  // the most rows one events statement inserts

  // Appends `list` to message `messageId`'s events at `at`, in order, up to kEventRows rows per
  // statement (one compiled statement per row count, on first use).
  void events(long long messageId, long long at, const std::vector<PendingEvent>& list) {
    for (std::size_t start = 0; start < list.size(); start += kEventRows) {
      const std::size_t n = std::min(kEventRows, list.size() - start);
      auto& st = eventRowsSt_[n - 1];
      if (!st) {
        std::string text = "INSERT INTO events (message_id, delivery_id, at, type, detail) VALUES ";
        st.emplace(sql_);
        for (std::size_t i = 0; i < n; ++i) {
          text += i == 0 ? "(:m0, :d0, :a0, :t0, :x0)"
                         : ", (:m" + std::to_string(i) + ", :d" + std::to_string(i) + ", :a" +
                               std::to_string(i) + ", :t" + std::to_string(i) + ", :x" +
                               std::to_string(i) + ")";
          st->exchange(soci::use(erMessage_[i]));
          st->exchange(soci::use(erDelivery_[i]));
          st->exchange(soci::use(erAt_[i]));
          st->exchange(soci::use(erType_[i]));
          st->exchange(soci::use(erDetail_[i]));
        }
        st->alloc();
        st->prepare(text);
        st->define_and_bind();
      }
      for (std::size_t i = 0; i < n; ++i) {
        const PendingEvent& e = list[start + i];
        erMessage_[i] = messageId;
        erDelivery_[i] = e.deliveryId;
        erAt_[i] = at;
        erType_[i] = sanitizeText(e.type);
        erDetail_[i] = sanitizeText(e.detail);
      }
      st->execute(true);
    }
  }

  // A row of waitingSt_ (a delivery waiting for the one recorded).
  struct Waiting {
    long long id = 0, attempts = 0, createdAt = 0, nextAttemptAt = 0, payloadId = 0, lastStatusCode = 0;
    std::string channelId, destination, contentType, lastResponse, deadReason;
  };

  soci::session& sql_;
  Dialect dialect_;
  std::optional<soci::statement> finishSt_, payloadSt_, deliverySt_, lookupSt_, releaseSt_,
      attemptSt_, updateSt_, rollupSt_, messageSt_, lockSt_, externalSt_, waitingSt_, handLeaseSt_,
      handPayloadSt_, handMetadataSt_;
  Waiting w_;
  std::vector<PendingEvent> finishEvents_;
  std::array<std::optional<soci::statement>, kEventRows> eventRowsSt_;
  std::array<long long, kEventRows> erMessage_{}, erDelivery_{}, erAt_{};
  std::array<std::string, kEventRows> erType_, erDetail_;
  std::string hOwner_, hPayload_, hEncoding_, hMetadata_;
  long long hId_ = 0, hPayloadId_ = 0, hUntil_ = 0, aPayloadId_ = 0;
  std::string xExternal_;
  long long xAt_ = 0, locked_ = 0;
  std::string fStatus_, fError_, fOwner_, dDestination_, dStatus_, dPayload_, dEncoding_,
      dContentType_, dAfter_, dLeaseOwner_;
  long long dLeaseUntil_ = 0;
  long long fNow_ = 0, fId_ = 0, dNext_ = 0, dId_ = 0, dPayloadId_ = 0;
  std::string aOwner_, aStatus_, aOutcome_, aResponse_, aNewStatus_, aDeadReason_, rStatus_;
  long long aRun_ = 0;
  std::string aDestination_;
  long long aId_ = 0, aMessage_ = 0, aAttempts_ = 0, aNumber_ = 0, aStarted_ = 0, aDuration_ = 0, aCode_ = 0,
            aNext_ = 0, rTotal_ = 0, rPending_ = 0, rDead_ = 0, rAt_ = 0;
  soci::indicator rPendingInd_ = soci::i_ok, rDeadInd_ = soci::i_ok;
};

// The statements intake runs for each message, compiled on first use.
class IngestWriter {
 public:
  IngestWriter(soci::session& sql, Dialect dialect) : sql_(sql), dialect_(dialect) {}

  // Inserts `m` unless its idempotency key is stored already; {id, duplicate}. A received message
  // is stored leased to `lease` when given.
  Result<IngestOutcome> insert(const NewMessage& m, long long now, const std::optional<IntakeLease>& lease) {
    if (!insertSt_) {
      // SQLite: the new row's id from lastInsertRowid, not RETURNING.
      const bool sqlite = dialect_ == Dialect::kSqlite;
      std::string text =
          "INSERT INTO messages (channel_id, idempotency_key, received_at, content_type, "
          "body_size, metadata, status, error, updated_at, lease_owner, lease_until) "
          "VALUES (:c, :k, :r, :t, :z, :m, :s, :x, :u, :lo, :lu) "
          "ON CONFLICT (channel_id, idempotency_key) DO NOTHING";
      if (!sqlite) text += " RETURNING id";
      insertSt_.emplace(sql_);
      insertSt_->exchange(soci::use(channel_));
      insertSt_->exchange(soci::use(key_, keyInd_));
      insertSt_->exchange(soci::use(receivedAt_));
      insertSt_->exchange(soci::use(contentType_));
      insertSt_->exchange(soci::use(size_));
      insertSt_->exchange(soci::use(metadata_));
      insertSt_->exchange(soci::use(status_));
      insertSt_->exchange(soci::use(error_));
      insertSt_->exchange(soci::use(now_));
      insertSt_->exchange(soci::use(leaseOwner_));
      insertSt_->exchange(soci::use(leaseUntil_));
      if (!sqlite) insertSt_->exchange(soci::into(id_));
      insertSt_->alloc();
      insertSt_->prepare(text);
      insertSt_->define_and_bind();
      bodySt_.emplace((sql_.prepare
                           << "INSERT INTO message_bodies (message_id, body, body_encoding) "
                              "VALUES (:i, :b, :e)",
                       soci::use(id_), soci::use(body_), soci::use(encoding_)));
      findSt_.emplace((sql_.prepare << "SELECT id FROM messages WHERE channel_id = :c AND idempotency_key = :k",
                       soci::use(channel_), soci::use(key_), soci::into(existing_)));
      eventSt_.emplace((sql_.prepare << "INSERT INTO events (message_id, delivery_id, at, type, detail) "
                                       "VALUES (:m, 0, :a, :t, :d)",
                        soci::use(id_), soci::use(now_), soci::use(eventType_), soci::use(eventDetail_)));
    }
    channel_ = m.channelId;
    key_ = sanitizeText(m.idempotencyKey);
    keyInd_ = m.idempotencyKey.empty() ? soci::i_null : soci::i_ok;
    receivedAt_ = m.receivedAtMs;
    size_ = static_cast<long long>(m.body.size());
    contentType_ = sanitizeText(m.contentType);
    auto encoded = encodeBody(m.body);
    body_ = std::move(encoded.text);
    encoding_ = std::move(encoded.encoding);
    metadata_ = encodeMetadata(m.metadata);
    status_ = m.status;
    error_ = sanitizeText(m.error);
    now_ = now;
    const bool leased = lease && m.status == "received";
    leaseOwner_ = leased ? lease->owner : std::string();
    leaseUntil_ = leased ? lease->untilMs : 0;
    bool inserted = false;
    if (dialect_ == Dialect::kSqlite) {
      runToEnd(*insertSt_);
      inserted = insertSt_->get_affected_rows() > 0;
      if (inserted) id_ = lastInsertRowid(sql_);
    } else {
      runToEnd(*insertSt_, [&] { inserted = true; });
    }
    if (!inserted) {
      bool found = false;
      runToEnd(*findSt_, [&] { found = true; });
      if (!found) return fail(ErrorCode::kException, "idempotency conflict without a stored row");
      return IngestOutcome{existing_, true};
    }
    runToEnd(*bodySt_);
    eventType_ = m.status == "rejected" ? "rejected" : "received";
    eventDetail_ = m.status == "rejected" ? error_ : std::string();
    runToEnd(*eventSt_);
    return IngestOutcome{id_, false};
  }

 private:
  soci::session& sql_;
  Dialect dialect_;
  std::optional<soci::statement> insertSt_, bodySt_, findSt_, eventSt_;
  std::string channel_, key_, contentType_, body_, encoding_, metadata_, status_, error_, eventType_, eventDetail_,
      leaseOwner_;
  soci::indicator keyInd_ = soci::i_ok;
  long long receivedAt_ = 0, now_ = 0, id_ = 0, size_ = 0, existing_ = 0, leaseUntil_ = 0;
};

// The statements of claiming: pick due rows, lease each, load it. Compiled on first use.
class Claimer {
 public:
  Claimer(soci::session& sql, Dialect dialect) : sql_(sql), dialect_(dialect) {}

  // Up to `limit` received messages whose lease is free, loaded, each with its previous lease
  // owner ('' when it was never leased). Rows and lease updates are one transaction's work, so the
  // rows read here are the rows leased (PostgreSQL: locked FOR UPDATE, SKIP LOCKED).
  Result<std::vector<std::pair<core::StoredMessage, std::string>>> pickMessages(long long now, long long limit) {
    if (!pickMessagesSt_) {
      std::string text = std::string("SELECT ") + kMessageColumns + ", lease_owner" + kMessageFrom +
                         " WHERE status = 'received' AND lease_until <= :n ORDER BY id "
                         "LIMIT :l";
      if (dialect_ == Dialect::kPostgresql) text += " FOR UPDATE OF messages SKIP LOCKED";
      pickMessagesSt_.emplace(sql_);
      message_.bind(*pickMessagesSt_);
      pickMessagesSt_->exchange(soci::into(previousOwner_));
      pickMessagesSt_->exchange(soci::use(now_));
      pickMessagesSt_->exchange(soci::use(limit_));
      pickMessagesSt_->alloc();
      pickMessagesSt_->prepare(text);
      pickMessagesSt_->define_and_bind();
    }
    now_ = now;
    limit_ = limit;
    std::vector<std::pair<core::StoredMessage, std::string>> out;
    std::optional<Error> bad;
    runToEnd(*pickMessagesSt_, [&] {
      auto m = message_.toMessage();
      if (!m) {
        if (!bad) bad = m.error();
        return;
      }
      out.emplace_back(std::move(*m), previousOwner_);
    });
    if (bad) return std::unexpected(*bad);
    return out;
  }

  // Leases message `id` to `owner` until `until`.
  void leaseMessage(long long id, const std::string& owner, long long until) {
    if (!leaseMessageSt_) {
      leaseMessageSt_.emplace((sql_.prepare << "UPDATE messages SET lease_owner = :o, lease_until = :u WHERE id = :i",
                               soci::use(owner_), soci::use(until_), soci::use(id_)));
    }
    id_ = id;
    owner_ = owner;
    until_ = until;
    runToEnd(*leaseMessageSt_);
  }

  // Ids of up to `limit` due deliveries whose lease is free and whose "after" sibling is done.
  std::vector<long long> pickDeliveries(long long now, long long limit) {
    if (!pickDeliveriesSt_) {
      std::string text =
          std::string("SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= :n AND "
                      "lease_until <= :n2 AND ") +
          kAfterSiblingDone + " ORDER BY next_attempt_at, id LIMIT :l";
      if (dialect_ == Dialect::kPostgresql) text += " FOR UPDATE SKIP LOCKED";
      pickDeliveriesSt_.emplace(
          (sql_.prepare << text, soci::use(now_), soci::use(now_), soci::use(limit_), soci::into(id_)));
    }
    now_ = now;
    limit_ = limit;
    std::vector<long long> out;
    runToEnd(*pickDeliveriesSt_, [&] { out.push_back(id_); });
    return out;
  }

  // Leases delivery `id` to `owner` until `until` if it was never attempted (its row as its finish
  // stored it); false, leasing nothing, otherwise.
  bool leaseUnattempted(long long id, const std::string& owner, long long until) {
    if (!leaseUnattemptedSt_) {
      leaseUnattemptedSt_.emplace(
          (sql_.prepare << "UPDATE deliveries SET lease_owner = :o, lease_until = :u WHERE id = :i "
                           "AND attempts = 0",
           soci::use(owner_), soci::use(until_), soci::use(id_)));
    }
    id_ = id;
    owner_ = owner;
    until_ = until;
    leaseUnattemptedSt_->execute(true);
    return leaseUnattemptedSt_->get_affected_rows() == 1;
  }

  // Leases delivery `id` to `owner` until `until` and loads it with its message's metadata and
  // the outcome of the sibling it waits for.
  Result<DeliveryRecord> leaseDelivery(long long id, const std::string& owner, long long until) {
    if (!leaseDeliverySt_) {
      leaseDeliverySt_.emplace((sql_.prepare << "UPDATE deliveries SET lease_owner = :o, lease_until = :u WHERE id = :i",
                                soci::use(owner_), soci::use(until_), soci::use(id_)));
      loadDeliverySt_.emplace(sql_);
      delivery_.bind(*loadDeliverySt_);
      loadDeliverySt_->exchange(soci::into(metadata_));
      loadDeliverySt_->exchange(soci::into(upstreamStatus_));
      loadDeliverySt_->exchange(soci::into(upstreamResponse_));
      loadDeliverySt_->exchange(soci::use(id_));
      loadDeliverySt_->alloc();
      loadDeliverySt_->prepare(std::string("SELECT ") + kDeliveryColumns + ", " + kDeliveryContext +
                               kDeliveryFrom + " WHERE deliveries.id = :i");
      loadDeliverySt_->define_and_bind();
    }
    id_ = id;
    owner_ = owner;
    until_ = until;
    runToEnd(*leaseDeliverySt_);
    std::optional<Result<DeliveryRecord>> loaded;
    runToEnd(*loadDeliverySt_, [&] {
      loaded = delivery_.toRecord();
      if (!*loaded) return;
      (*loaded)->metadata = decodeMetadata(metadata_);
      (*loaded)->upstreamStatus = upstreamStatus_;
      (*loaded)->upstreamResponse = upstreamResponse_;
      (*loaded)->leaseUntilMs = until;
    });
    if (!loaded) return fail(ErrorCode::kNotFound, "delivery " + std::to_string(id) + " vanished while claimed");
    return std::move(*loaded);
  }

 private:
  soci::session& sql_;
  Dialect dialect_;
  std::optional<soci::statement> pickMessagesSt_, leaseMessageSt_, pickDeliveriesSt_,
      leaseDeliverySt_, loadDeliverySt_, leaseUnattemptedSt_;
  long long now_ = 0, limit_ = 0, id_ = 0, until_ = 0;
  std::string previousOwner_, owner_, metadata_, upstreamStatus_, upstreamResponse_;
  MessageRow message_;
  DeliveryRow delivery_;
};

// The statements of the hot paths (intake, claims, finishes, attempts), compiled once per session
// and re-executed: SQLite spends longer compiling these small statements than running them. Every
// execution runs to the end of its results (runToEnd). Dropped when a statement of its session
// fails, since the connection may be gone.
class Prepared {
 public:
  Prepared(soci::session& sql, Dialect dialect) : writer(sql, dialect), ingest(sql, dialect), claims(sql, dialect) {}

  BatchWriter writer;
  IngestWriter ingest;
  Claimer claims;

};

// How a write transaction commits. kFull returns once the transaction is on disk. On SQLite every
// session runs with synchronous=NORMAL (COMMIT writes the write-ahead log without fsync) and a kFull
// write fdatasyncs the log itself after COMMIT, outside the writers' turn: the next writer inserts
// and commits while the disk flushes, and flushes from several threads overlap (on this kind of
// virtual disk one flush takes about 4 ms alone, several in flight together complete as fast).
// The flush covers the log up to and including this commit, so the caller is answered only once
// its transaction is durable, as with synchronous=FULL (a later writer that saw this commit's rows,
// e.g. an idempotency key found already stored, returns only after its own flush, which covers
// this commit too); the log is never rewound before a
// checkpoint has copied it into the database file and synced that file.
// kRelaxed (no fsync) is for worker bookkeeping (claims, finishes), which only takes leases or
// records what the pipeline decided: losing it in an OS crash makes the rows claimable again and
// the work is redone, with nothing sent twice, because no destination is called before its
// delivery is claimed, and the attempt record written after a send commits with kFull, whose flush
// makes the log durable up to and including the bookkeeping before it. The one exception is the
// attempt record of sends whose repeat creates nothing new at the peer (recordAttempts with
// flush false): losing it sends the same payload again, which the peer absorbs. A process crash
// loses nothing either way: the log is written before COMMIT returns.
enum class Commit { kFull, kRelaxed };

class SqlStore final : public Store {
 public:
  // `walPath`: SQLite's write-ahead log file (empty for PostgreSQL).
  SqlStore(Dialect dialect, std::string connect, int poolSize, std::string walPath = {})
      : dialect_(dialect), connect_(std::move(connect)), poolSize_(poolSize), walPath_(std::move(walPath)) {}
  SqlStore(const SqlStore&) = delete;
  SqlStore& operator=(const SqlStore&) = delete;
  ~SqlStore() override {
    if (walFd_ >= 0) ::close(walFd_);
  }

  Result<void> open() {
    return guard("open", [&]() -> Result<void> {
      // SQLite: two sessions more than configured, so workers' bookkeeping does not queue for a
      // session behind intake committers (their writes take turns anyway). One session for every
      // write was tried twice: its page cache, never dropped, grew to 64 MiB (peak RSS under
      // bench/ingest 94 MiB against 20) and the engine spent more CPU per message, not less.
      // Since the pipeline's finishes ride in the intake committer's transactions (commit()),
      // most writes come from that one thread anyway, and its session's cache is no longer reset
      // by other sessions' commits: bench/ingest peak RSS 29-53 MiB, CPU per message down (a
      // 16 MiB cache instead kept RSS at 28-42 MiB but read pages back and widened p99; kept 64).
      const int total = poolSize_ + (dialect_ == Dialect::kSqlite ? 2 : 0);
      std::vector<soci::session*> sqliteSessions;
      for (int i = 0; i < total; ++i) {
        auto s = std::make_unique<soci::session>();
        if (dialect_ == Dialect::kSqlite) {
          s->open(*soci::factory_sqlite3(), connect_);
          *s << "PRAGMA busy_timeout = 10000";
          *s << "PRAGMA journal_mode = WAL";
          *s << "PRAGMA synchronous = NORMAL";  // kFull writes fsync the log after COMMIT (Commit)
          *s << "PRAGMA foreign_keys = ON";
          *s << "PRAGMA cache_size = -65536";  // 64 MiB page cache per session
          *s << "PRAGMA temp_store = MEMORY";
        } else {
          s->open(*soci::factory_postgresql(), connect_);
        }
        if (i == 0) {
          auto applied = applyMigrations(*s, dialect_);
          if (!applied) return applied;
        }
        prepared_[s.get()];
        if (dialect_ == Dialect::kSqlite) sqliteSessions.push_back(s.get());
        pool_.add(std::move(s));
      }
      if (dialect_ == Dialect::kSqlite) {
        // The log exists once a session is open in WAL mode, and is not deleted while one is.
        walFd_ = ::open(walPath_.c_str(), O_RDONLY | O_CLOEXEC);
        if (walFd_ < 0) {
          return fail(ErrorCode::kException,
                      "cannot open " + walPath_ + ": " + std::strerror(errno));
        }
        if (::fdatasync(walFd_) != 0) {  // the migrations just applied
          return fail(ErrorCode::kException,
                      "cannot flush " + walPath_ + ": " + std::strerror(errno));
        }
        auto s = std::make_unique<soci::session>();
        s->open(*soci::factory_sqlite3(), connect_);
        *s << "PRAGMA busy_timeout = 10000";
        *s << "PRAGMA synchronous = FULL";  // the database file is fsynced after each copy
        checkpointer_ = std::make_unique<Checkpointer>(std::move(s));
        for (soci::session* session : sqliteSessions) checkpointer_->attach(*session);
      }
      return {};
    });
  }

  std::string backend() const override { return dialect_ == Dialect::kSqlite ? "sqlite" : "postgresql"; }

  bool writersTakeTurns() const override { return dialect_ == Dialect::kSqlite; }

  Result<Committed> commit(const std::vector<NewMessage>& batch,
                           const std::optional<IntakeLease>& lease,
                           const std::vector<FinishBatch>& finishes,
                           const std::vector<AttemptBatch>& attempts) override {
    const bool intake = !batch.empty();
    const bool durable = intake || std::any_of(attempts.begin(), attempts.end(),
                                               [](const AttemptBatch& a) { return a.flush; });
    return write(
        "commit", /*high=*/intake, durable ? Commit::kFull : Commit::kRelaxed,
        [&](soci::session& sql) -> Result<Committed> {
          Committed out;
          Txn tr(sql, dialect_);
          if (intake) {
            out.ingested.resize(batch.size());
            std::map<std::pair<std::string_view, std::string_view>, std::size_t> seen;
            IngestWriter& writer = prepared(sql).ingest;
            const long long now = wallMs();
            for (std::size_t i = 0; i < batch.size(); ++i) {
              const NewMessage& m = batch[i];
              if (!m.idempotencyKey.empty()) {
                auto [it, fresh] = seen.try_emplace({m.channelId, m.idempotencyKey}, i);
                if (!fresh) {
                  out.ingested[i] = {out.ingested[it->second].messageId, true};
                  continue;
                }
              }
              auto r = writer.insert(m, now, lease);
              if (!r) return std::unexpected(r.error());
              out.ingested[i] = *r;
            }
          }
          BatchWriter& writer = prepared(sql).writer;
          out.finished.reserve(finishes.size());
          for (const FinishBatch& f : finishes) {
            std::vector<Result<void>>& results = out.finished.emplace_back();
            results.reserve(f.items->size());
            for (const FinishItem& item : *f.items) {
              results.push_back(writer.finish(item.messageId, f.owner, item.outcome, f.nowMs,
                                              item.deliveryLease, item.leasedDeliveries,
                                              item.claimableDeliveries));
            }
          }
          out.recorded.reserve(attempts.size());
          for (const AttemptBatch& a : attempts) {
            if (a.claim == nullptr) {
              out.recorded.push_back({recordIn(sql, a.owner, *a.items), {}});
              continue;
            }
            auto both = recordAndClaimIn(sql, a.owner, *a.items, *a.claim);
            if (!both) return std::unexpected(both.error());
            out.recorded.push_back(std::move(*both));
          }
          tr.commit();
          return out;
        });
  }

  Result<std::vector<core::StoredMessage>> claimMessages(const std::string& owner, int limit, Millis nowMs,
                                                         Millis leaseMs) override {
    return write("claimMessages", false, Commit::kRelaxed,
                 [&](soci::session& sql) -> Result<std::vector<core::StoredMessage>> {
      Claimer& claims = prepared(sql).claims;
      Txn tr(sql, dialect_);
      auto picked = claims.pickMessages(nowMs, limit);
      if (!picked) return std::unexpected(picked.error());
      std::vector<core::StoredMessage> out;
      if (picked->empty()) return out;
      out.reserve(picked->size());
      for (auto& [message, previous] : *picked) {
        claims.leaseMessage(message.id, owner, nowMs + leaseMs);
        if (!previous.empty()) {
          appendEvent(sql, message.id, 0, nowMs, "lease-expired",
                      "lease of " + previous + " expired; taken by " + owner);
        }
        out.push_back(std::move(message));
      }
      tr.commit();
      return out;
    });
  }

  Result<void> finishMessage(std::int64_t messageId, const std::string& owner, const ProcessOutcome& outcome,
                             Millis nowMs) override {
    auto r = finishMessages(owner, {{messageId, outcome, std::nullopt, nullptr}}, nowMs);
    if (!r) return std::unexpected(r.error());
    return r->at(0);
  }

  Result<std::vector<Result<void>>> finishMessages(const std::string& owner, const std::vector<FinishItem>& items,
                                                   Millis nowMs) override {
    return write("finishMessages", false, Commit::kRelaxed,
                 [&](soci::session& sql) -> Result<std::vector<Result<void>>> {
      BatchWriter& writer = prepared(sql).writer;
      Txn tr(sql, dialect_);
      std::vector<Result<void>> out;
      out.reserve(items.size());
      for (const FinishItem& item : items) {
        out.push_back(writer.finish(item.messageId, owner, item.outcome, nowMs, item.deliveryLease,
                                    item.leasedDeliveries, item.claimableDeliveries));
      }
      tr.commit();
      return out;
    });
  }

  Result<std::vector<DeliveryRecord>> claimDeliveries(const std::string& owner, int limit, Millis nowMs,
                                                      Millis leaseMs,
                                                      const std::vector<std::string>& paused) override {
    return write("claimDeliveries", false, Commit::kRelaxed,
                 [&](soci::session& sql) -> Result<std::vector<DeliveryRecord>> {
      Txn tr(sql, dialect_);
      auto out = claimIn(sql, owner, {limit, nowMs, leaseMs, paused});
      if (out && !out->empty()) tr.commit();
      return out;
    });
  }

  Result<RecordedAndClaimed> recordAttemptsAndClaim(const std::string& owner, const std::vector<AttemptItem>& items,
                                                    bool flush, const ClaimRequest& claim) override {
    return write("recordAttemptsAndClaim", false, flush ? Commit::kFull : Commit::kRelaxed,
                 [&](soci::session& sql) -> Result<RecordedAndClaimed> {
      Txn tr(sql, dialect_);
      if (!flush && dialect_ == Dialect::kPostgresql) sql << "SET LOCAL synchronous_commit TO OFF";
      auto out = recordAndClaimIn(sql, owner, items, claim);
      if (out) tr.commit();
      return out;
    });
  }

  // recordAttemptsAndClaim inside the caller's transaction.
  Result<RecordedAndClaimed> recordAndClaimIn(soci::session& sql, const std::string& owner,
                                              const std::vector<AttemptItem>& items,
                                              const ClaimRequest& claim) {
    RecordedAndClaimed out;
    out.recorded = recordIn(sql, owner, items,
                            HandOver{owner, claim.nowMs, claim.nowMs + claim.leaseMs,
                                     claim.pausedDestinations, out.claimed});
    // The claim takes what the batch has room for after the deliveries handed over.
    const int room = claim.limit - static_cast<int>(out.claimed.size());
    if (room > 0) {
      ClaimRequest rest = claim;
      rest.limit = room;
      auto claimed = claimIn(sql, owner, rest);
      if (!claimed) return std::unexpected(claimed.error());
      std::move(claimed->begin(), claimed->end(), std::back_inserter(out.claimed));
    }
    return out;
  }

  // The claim of claimDeliveries inside the caller's transaction.
  Result<std::vector<DeliveryRecord>> claimIn(soci::session& sql, const std::string& owner, const ClaimRequest& c) {
    Claimer& claims = prepared(sql).claims;
    std::vector<long long> ids = c.pausedDestinations.empty()
                                     ? claims.pickDeliveries(c.nowMs, c.limit)
                                     : pickDeliveriesExcept(sql, c.nowMs, c.limit, c.pausedDestinations);
    std::vector<DeliveryRecord> out;
    out.reserve(ids.size());
    for (long long id : ids) {
      if (c.known) {
        std::optional<DeliveryRecord> k = c.known(id);
        if (k && claims.leaseUnattempted(id, owner, c.nowMs + c.leaseMs)) {
          k->leaseUntilMs = c.nowMs + c.leaseMs;
          out.push_back(std::move(*k));
          continue;
        }
      }
      auto d = claims.leaseDelivery(id, owner, c.nowMs + c.leaseMs);
      if (!d) return std::unexpected(d.error());
      out.push_back(std::move(*d));
    }
    return out;
  }

  // The attempts of recordAttempts inside the caller's transaction.
  std::vector<Result<void>> recordIn(soci::session& sql, const std::string& owner, const std::vector<AttemptItem>& items,
                                     const std::optional<HandOver>& handOver = std::nullopt) {
    BatchWriter& writer = prepared(sql).writer;
    std::vector<Result<void>> out;
    out.reserve(items.size());
    for (const AttemptItem& item : items) {
      out.push_back(writer.attempt(item.deliveryId, owner, item.attempt, item.sent, handOver));
    }
    return out;
  }

  Result<void> recordAttempt(std::int64_t deliveryId, const std::string& owner,
                             const AttemptRecord& a) override {
    auto r = recordAttempts(owner, {{deliveryId, a}}, true);
    if (!r) return std::unexpected(r.error());
    return r->at(0);
  }

  Result<std::vector<Result<void>>> recordAttempts(const std::string& owner, const std::vector<AttemptItem>& items,
                                                   bool flush) override {
    return write("recordAttempts", false, flush ? Commit::kFull : Commit::kRelaxed,
                 [&](soci::session& sql) -> Result<std::vector<Result<void>>> {
      Txn tr(sql, dialect_);
      if (!flush && dialect_ == Dialect::kPostgresql) sql << "SET LOCAL synchronous_commit TO OFF";
      std::vector<Result<void>> out = recordIn(sql, owner, items);
      tr.commit();
      return out;
    });
  }

  Result<std::optional<ExternalRef>> linkExternal(const std::string& externalId, Millis nowMs,
                                                  const std::string& type, const std::string& detail) override {
    return write("linkExternal", [&](soci::session& sql) -> Result<std::optional<ExternalRef>> {
      Txn tr(sql, dialect_);
      std::string ext = sanitizeText(externalId);
      long long messageId = 0, deliveryId = 0;
      sql << "SELECT message_id, delivery_id FROM external_refs WHERE external_id = :e", soci::use(ext),
          soci::into(messageId), soci::into(deliveryId);
      if (!sql.got_data()) return std::optional<ExternalRef>();
      appendEvent(sql, messageId, deliveryId, nowMs, type, detail);
      tr.commit();
      return std::optional<ExternalRef>(ExternalRef{messageId, deliveryId});
    });
  }

  Result<void> releaseLeases(const std::string& owner) override {
    return write("releaseLeases", [&](soci::session& sql) -> Result<void> {
      Txn tr(sql, dialect_);
      sql << "UPDATE messages SET lease_owner = '', lease_until = 0 WHERE lease_owner = :o", soci::use(owner);
      sql << "UPDATE deliveries SET lease_owner = '', lease_until = 0 WHERE lease_owner = :o", soci::use(owner);
      tr.commit();
      return {};
    });
  }

  Result<void> replayMessage(std::int64_t messageId, Millis nowMs, const std::string& detail) override {
    return write("replayMessage", [&](soci::session& sql) -> Result<void> {
      Txn tr(sql, dialect_);
      long long id = messageId, now = nowMs;
      std::string status;
      sql << "SELECT status FROM messages WHERE id = :i" << (dialect_ == Dialect::kPostgresql ? " FOR UPDATE" : ""),
          soci::use(id), soci::into(status);
      if (!sql.got_data()) return fail(ErrorCode::kNotFound, "no message " + std::to_string(messageId));
      if (status == "rejected") {
        return fail(ErrorCode::kConflict, "message " + std::to_string(messageId) +
                                              " was rejected at intake; its input cannot be processed");
      }
      sql << "UPDATE messages SET status = 'received', error = '', run = run + 1, lease_owner = '', "
             "lease_until = 0, updated_at = :n WHERE id = :i",
          soci::use(now), soci::use(id);
      appendEvent(sql, id, 0, now, "replayed", "from " + status + (detail.empty() ? "" : "; " + detail));
      tr.commit();
      return {};
    });
  }

  Result<void> replayDelivery(std::int64_t deliveryId, Millis nowMs, const std::string& detail) override {
    return write("replayDelivery", [&](soci::session& sql) -> Result<void> {
      Txn tr(sql, dialect_);
      long long id = deliveryId, now = nowMs, messageId = 0;
      std::string status;
      sql << "SELECT status, message_id FROM deliveries WHERE id = :i", soci::use(id), soci::into(status),
          soci::into(messageId);
      if (!sql.got_data()) return fail(ErrorCode::kNotFound, "no delivery " + std::to_string(deliveryId));
      if (status != "dead") {
        return fail(ErrorCode::kConflict, "delivery " + std::to_string(deliveryId) + " is " + status +
                                              "; only dead deliveries can be replayed");
      }
      sql << "UPDATE deliveries SET status = 'pending', dead_reason = '', next_attempt_at = :n, lease_owner = '', "
             "lease_until = 0 WHERE id = :i",
          soci::use(now), soci::use(id);
      sql << "UPDATE messages SET status = 'processed', updated_at = :n WHERE id = :i AND status = 'dead'",
          soci::use(now), soci::use(messageId);
      appendEvent(sql, messageId, id, now, "replayed", "delivery" + (detail.empty() ? "" : "; " + detail));
      tr.commit();
      return {};
    });
  }

  Result<std::vector<MessageSummary>> listMessages(const MessageQuery& query) override {
    return read("listMessages", [&](soci::session& sql) -> Result<std::vector<MessageSummary>> {
      DynamicQuery q;
      q.sql("SELECT id, channel_id, idempotency_key, received_at, status, content_type, body_size, error "
            "FROM messages WHERE 1 = 1");
      if (query.channelId) q.sql(" AND channel_id = ").param(*query.channelId);
      if (query.status) q.sql(" AND status = ").param(*query.status);
      if (query.fromMs) q.sql(" AND received_at >= ").param(static_cast<long long>(*query.fromMs));
      if (query.toMs) q.sql(" AND received_at < ").param(static_cast<long long>(*query.toMs));
      if (query.beforeId) q.sql(" AND id < ").param(static_cast<long long>(*query.beforeId));
      q.sql(" ORDER BY id DESC LIMIT ").param(static_cast<long long>(std::clamp(query.limit, 1, 1000)));
      struct Row {
        MessageSummary s;
        std::string key;
        soci::indicator keyInd = soci::i_ok;
        long long id = 0, at = 0, size = 0;
        void bind(soci::statement& st) {
          st.exchange(soci::into(id));
          st.exchange(soci::into(s.channelId));
          st.exchange(soci::into(key, keyInd));
          st.exchange(soci::into(at));
          st.exchange(soci::into(s.status));
          st.exchange(soci::into(s.contentType));
          st.exchange(soci::into(size));
          st.exchange(soci::into(s.error));
        }
      } row;
      std::vector<MessageSummary> out;
      fetchAll(sql, q, row, [&] {
        MessageSummary s = row.s;
        s.id = row.id;
        s.receivedAtMs = row.at;
        s.idempotencyKey = row.keyInd == soci::i_ok ? row.key : std::string();
        s.size = row.size;
        out.push_back(std::move(s));
      });
      return out;
    });
  }

  Result<MessageDetail> getMessage(std::int64_t messageId) override {
    return read("getMessage", [&](soci::session& sql) -> Result<MessageDetail> {
      MessageDetail detail;
      DynamicQuery q;
      q.sql("SELECT ")
          .sql(kMessageColumns)
          .sql(kMessageFrom)
          .sql(" WHERE id = ")
          .param(static_cast<long long>(messageId));
      MessageRow m;
      std::optional<Result<core::StoredMessage>> message;
      fetchAll(sql, q, m, [&] { message = m.toMessage(); });
      if (!message) return fail(ErrorCode::kNotFound, "no message " + std::to_string(messageId));
      if (!*message) return std::unexpected(message->error());
      detail.message = std::move(**message);

      DynamicQuery ev;
      ev.sql("SELECT id, delivery_id, at, type, detail FROM events WHERE message_id = ")
          .param(static_cast<long long>(messageId))
          .sql(" ORDER BY id");
      struct EventRow {
        long long id = 0, delivery = 0, at = 0;
        std::string type, detail;
        void bind(soci::statement& st) {
          st.exchange(soci::into(id));
          st.exchange(soci::into(delivery));
          st.exchange(soci::into(at));
          st.exchange(soci::into(type));
          st.exchange(soci::into(detail));
        }
      } e;
      fetchAll(sql, ev, e, [&] {
        EventView v;
        v.id = e.id;
        if (e.delivery > 0) v.deliveryId = e.delivery;
        v.atMs = e.at;
        v.type = e.type;
        v.detail = e.detail;
        detail.events.push_back(std::move(v));
      });

      DynamicQuery dq;
      dq.sql("SELECT ")
          .sql(kDeliveryColumns)
          .sql(kDeliveryFrom)
          .sql(" WHERE message_id = ")
          .param(static_cast<long long>(messageId))
          .sql(" ORDER BY id");
      DeliveryRow d;
      std::optional<Error> bad;
      fetchAll(sql, dq, d, [&] {
        auto r = d.toRecord();
        if (!r) {
          bad = r.error();
          return;
        }
        r->metadata = detail.message.metadata;
        detail.deliveries.push_back({std::move(*r), {}});
      });
      if (bad) return std::unexpected(*bad);
      for (auto& dd : detail.deliveries) {
        DynamicQuery aq;
        aq.sql("SELECT attempt, started_at, duration_ms, outcome, status_code, response FROM attempts "
               "WHERE delivery_id = ")
            .param(static_cast<long long>(dd.delivery.id))
            .sql(" ORDER BY id");
        struct AttemptRow {
          long long attempt = 0, started = 0, duration = 0, code = 0;
          std::string outcome, response;
          void bind(soci::statement& st) {
            st.exchange(soci::into(attempt));
            st.exchange(soci::into(started));
            st.exchange(soci::into(duration));
            st.exchange(soci::into(outcome));
            st.exchange(soci::into(code));
            st.exchange(soci::into(response));
          }
        } a;
        fetchAll(sql, aq, a, [&] {
          dd.attempts.push_back({static_cast<int>(a.attempt), a.started, a.duration, a.outcome,
                                 static_cast<int>(a.code), a.response});
        });
      }
      return detail;
    });
  }

  Result<std::vector<DeliveryRecord>> listDeliveries(const DeliveryQuery& query) override {
    return read("listDeliveries", [&](soci::session& sql) -> Result<std::vector<DeliveryRecord>> {
      DynamicQuery q;
      q.sql("SELECT ").sql(kDeliveryColumns).sql(kDeliveryFrom).sql(" WHERE 1 = 1");
      if (query.status) q.sql(" AND status = ").param(*query.status);
      if (query.channelId) q.sql(" AND channel_id = ").param(*query.channelId);
      if (query.destination) q.sql(" AND destination = ").param(*query.destination);
      if (query.beforeId) q.sql(" AND id < ").param(static_cast<long long>(*query.beforeId));
      q.sql(" ORDER BY id DESC LIMIT ").param(static_cast<long long>(std::clamp(query.limit, 1, 1000)));
      DeliveryRow d;
      std::vector<DeliveryRecord> out;
      std::optional<Error> bad;
      fetchAll(sql, q, d, [&] {
        auto r = d.toRecord();
        if (!r) {
          bad = r.error();
          return;
        }
        out.push_back(std::move(*r));
      });
      if (bad) return std::unexpected(*bad);
      return out;
    });
  }

  Result<void> audit(const AuditRecord& r) override {
    return write("audit", [&](soci::session& sql) -> Result<void> {
      long long at = r.atMs;
      std::string actor = sanitizeText(r.actor), action = sanitizeText(r.action), target = sanitizeText(r.target),
                  detail = sanitizeText(r.detail);
      sql << "INSERT INTO audit (at, actor, action, target, detail) VALUES (:a, :b, :c, :d, :e)", soci::use(at),
          soci::use(actor), soci::use(action), soci::use(target), soci::use(detail);
      return {};
    });
  }

  Result<std::vector<AuditRecord>> listAudit(int limit) override {
    return read("listAudit", [&](soci::session& sql) -> Result<std::vector<AuditRecord>> {
      DynamicQuery q;
      q.sql("SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ")
          .param(static_cast<long long>(std::clamp(limit, 1, 1000)));
      struct Row {
        AuditRecord r;
        long long at = 0;
        void bind(soci::statement& st) {
          st.exchange(soci::into(at));
          st.exchange(soci::into(r.actor));
          st.exchange(soci::into(r.action));
          st.exchange(soci::into(r.target));
          st.exchange(soci::into(r.detail));
        }
      } row;
      std::vector<AuditRecord> out;
      fetchAll(sql, q, row, [&] {
        AuditRecord r = row.r;
        r.atMs = row.at;
        out.push_back(std::move(r));
      });
      return out;
    });
  }

  Result<StoreStats> stats() override {
    return read("stats", [&](soci::session& sql) -> Result<StoreStats> {
      StoreStats s;
      DynamicQuery mq;
      mq.sql("SELECT channel_id, status, count(*) FROM messages GROUP BY channel_id, status ORDER BY channel_id, status");
      struct MRow {
        std::string channel, status;
        long long count = 0;
        void bind(soci::statement& st) {
          st.exchange(soci::into(channel));
          st.exchange(soci::into(status));
          st.exchange(soci::into(count));
        }
      } m;
      fetchAll(sql, mq, m, [&] { s.messages.push_back({m.channel, m.status, m.count}); });
      DynamicQuery dq;
      // Only the statuses the metrics show (queued and dead): read through the status index, so a
      // scrape costs the deliveries still open, not every delivery ever made.
      dq.sql(
          "SELECT channel_id, destination, status, count(*) FROM deliveries WHERE status IN "
          "('pending', "
          "'waiting', 'dead') GROUP BY channel_id, destination, status ORDER BY channel_id, "
          "destination, status");
      struct DRow {
        std::string channel, destination, status;
        long long count = 0;
        void bind(soci::statement& st) {
          st.exchange(soci::into(channel));
          st.exchange(soci::into(destination));
          st.exchange(soci::into(status));
          st.exchange(soci::into(count));
        }
      } d;
      fetchAll(sql, dq, d, [&] { s.deliveries.push_back({d.channel, d.destination, d.status, d.count}); });
      if (dialect_ == Dialect::kSqlite) s.logFlushes = logFlushes_.load();
      return s;
    });
  }

  Result<std::int64_t> backlog() override {
    return read("backlog", [&](soci::session& sql) -> Result<std::int64_t> {
      long long messages = 0, deliveries = 0;
      sql << "SELECT count(*) FROM messages WHERE status = 'received'", soci::into(messages);
      sql << "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'waiting')",
          soci::into(deliveries);
      return messages + deliveries;
    });
  }

 private:
  void appendEvent(soci::session& sql, long long messageId, long long deliveryId, long long at,
                   const std::string& type, const std::string& detail) {
    std::string cleanType = sanitizeText(type), cleanDetail = sanitizeText(detail);
    sql << "INSERT INTO events (message_id, delivery_id, at, type, detail) VALUES (:m, :d, :a, :t, :x)",
        soci::use(messageId), soci::use(deliveryId), soci::use(at), soci::use(cleanType), soci::use(cleanDetail);
  }

  // Claimer::pickDeliveries without the destinations whose endpoint's circuit is open (rare: the
  // statement text depends on the list, so it is compiled each time).
  std::vector<long long> pickDeliveriesExcept(soci::session& sql, Millis nowMs, int limit,
                                              const std::vector<std::string>& paused) {
    DynamicQuery pick;
    pick.sql("SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ")
        .param(static_cast<long long>(nowMs))
        .sql(" AND lease_until <= ")
        .param(static_cast<long long>(nowMs))
        .sql(" AND (channel_id || '/' || destination) NOT IN (");
    for (std::size_t i = 0; i < paused.size(); ++i) {
      if (i > 0) pick.sql(", ");
      pick.param(paused[i]);
    }
    pick.sql(") AND ").sql(kAfterSiblingDone);
    pick.sql(" ORDER BY next_attempt_at, id LIMIT ").param(static_cast<long long>(limit));
    if (dialect_ == Dialect::kPostgresql) pick.sql(" FOR UPDATE SKIP LOCKED");
    struct Picked {
      long long id = 0;
      void bind(soci::statement& st) { st.exchange(soci::into(id)); }
    } row;
    std::vector<long long> ids;
    fetchAll(sql, pick, row, [&] { ids.push_back(row.id); });
    return ids;
  }

  template <typename F>
  auto guard(const char* what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const soci::soci_error& e) {
      return fail(ErrorCode::kTransient, std::string("store ") + what + ": " + sanitizeText(e.get_error_message()));
    } catch (const std::exception& e) {
      return fail(ErrorCode::kException, std::string("store ") + what + ": " + sanitizeText(e.what()));
    }
  }

  template <typename F>
  auto write(const char* what, F&& f) -> std::invoke_result_t<F, soci::session&> {
    return write(what, false, Commit::kFull, std::forward<F>(f));
  }

  // A write transaction on a pooled session. On SQLite writers take turns (intake, `high`, goes
  // first), and a kFull write is flushed to disk after its turn (see Commit).
  template <typename F>
  auto write(const char* what, bool high, Commit commit, F&& f) -> std::invoke_result_t<F, soci::session&> {
    return guard(what, [&]() -> std::invoke_result_t<F, soci::session&> {
      auto session = pool_.acquire();
      if (session.reconnected()) prepared_.at(&*session).reset();
      if (dialect_ != Dialect::kSqlite) return keepingPrepared(*session, [&] { return f(*session); });
      auto result = keepingPrepared(*session, [&] {
        writeMu_.lock(high);
        struct Unlock {
          PriorityMutex& m;
          ~Unlock() { m.unlock(); }
        } unlock{writeMu_};
        return f(*session);
      });
      if (!result || commit != Commit::kFull) return result;
      logFlushes_.fetch_add(1, std::memory_order_relaxed);
      if (::fdatasync(walFd_) != 0) {
        return fail(ErrorCode::kTransient, std::string("store ") + what +
                                               ": flushing the write-ahead log failed: " +
                                               std::strerror(errno));
      }
      return result;
    });
  }

  template <typename F>
  auto read(const char* what, F&& f) -> std::invoke_result_t<F, soci::session&> {
    return guard(what, [&]() -> std::invoke_result_t<F, soci::session&> {
      auto session = pool_.acquire();
      if (session.reconnected()) prepared_.at(&*session).reset();
      return keepingPrepared(*session, [&] { return f(*session); });
    });
  }

  // The session's compiled statements (created on first use).
  Prepared& prepared(soci::session& sql) {
    std::unique_ptr<Prepared>& p = prepared_.at(&sql);
    if (!p) p = std::make_unique<Prepared>(sql, dialect_);
    return *p;
  }

  // Runs f; if it throws, the session's compiled statements are dropped (they may be mid-run, or
  // compiled on a connection that is gone) and compiled again on next use.
  template <typename F>
  auto keepingPrepared(soci::session& sql, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (...) {
      prepared_.at(&sql).reset();
      throw;
    }
  }

  Dialect dialect_;
  std::string connect_;
  int poolSize_;
  SessionPool pool_;
  std::string walPath_;  // SQLite: the write-ahead log, flushed after each kFull write
  int walFd_ = -1;
  std::atomic<std::int64_t> logFlushes_{0};  // fdatasync calls on walFd_ (StoreStats::logFlushes)
  // One slot per pooled session, filled in open() and never resized, so lookups need no lock; a
  // slot is only used by the thread holding its session.
  std::map<soci::session*, std::unique_ptr<Prepared>> prepared_;
  PriorityMutex writeMu_;
  std::unique_ptr<Checkpointer> checkpointer_;  // SQLite only
};

}  // namespace

Result<std::unique_ptr<Store>> openStore(const std::string& url, int poolSize) {
  poolSize = std::clamp(poolSize, 1, 64);
  std::unique_ptr<SqlStore> store;
  if (url.starts_with("sqlite:")) {
    const std::string path = url.substr(7);
    if (path.empty()) return fail(ErrorCode::kInvalid, "store url 'sqlite:' needs a file path");
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return fail(ErrorCode::kException, "cannot create directory " + parent.string() + ": " + ec.message());
    store = std::make_unique<SqlStore>(Dialect::kSqlite, "db=" + path + " timeout=10", poolSize, path + "-wal");
  } else if (url.starts_with("postgresql://")) {
    store = std::make_unique<SqlStore>(Dialect::kPostgresql, url.substr(13), poolSize);
  } else {
    return fail(ErrorCode::kInvalid, "store url must start with 'sqlite:' or 'postgresql://'");
  }
  auto opened = store->open();
  if (!opened) return std::unexpected(opened.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace switchboard::store
