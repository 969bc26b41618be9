// The durable message store: messages, their events, deliveries with attempts, and the audit log.
// One schema on SQLite (embedded default, WAL) and PostgreSQL (multi-node, FOR UPDATE SKIP LOCKED
// claiming). The lifecycle and schema are written down in docs/store.md; this header follows it.
// Thread-safety: a Store is shared by all engine threads; every method is safe to call
// concurrently. Methods never throw: database errors come back as Error values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/message.h"

namespace switchboard::store {

using core::Millis;

// A message to commit at intake.
struct NewMessage {
  std::string channelId;
  std::string idempotencyKey;  // empty: no deduplication
  Millis receivedAtMs = 0;
  std::string contentType;
  std::string body;  // raw bytes; round-trip exactly (may hold any byte, including NUL)
  core::Metadata metadata;
  std::string status = "received";  // "received", or "rejected" for bad input kept for the browser
  std::string error;                // for "rejected": why
};

// Intake may store its messages already claimed (see Engine: the hand-off to the pipeline): the
// new "received" rows of an ingest get lease_owner = owner, lease_until = untilMs, as if claimed.
struct IntakeLease {
  std::string owner;
  Millis untilMs = 0;
};

struct IngestOutcome {
  std::int64_t messageId = 0;
  bool duplicate = false;  // the (channelId, idempotencyKey) pair was already stored
};

// A delivery to create when the pipeline finishes a message.
struct NewDelivery {
  std::string destination;  // destination name within the channel
  std::string payload;
  std::string contentType;
  Millis nextAttemptAtMs = 0;
  // Claimable only once this sibling destination (same message, same run) is no longer pending.
  std::string after;
};

// How the pipeline ended for one message.
struct ProcessOutcome {
  std::string status;  // "processed" (deliveries created), "filtered", or "error"
  std::string error;   // for "error"
  std::vector<std::pair<std::string, std::string>> events;  // (type, detail) to append, in order
  std::vector<NewDelivery> deliveries;
};

struct DeliveryRecord {
  std::int64_t id = 0;
  std::int64_t messageId = 0;
  std::string channelId;
  std::string destination;
  std::string status;  // "pending", "succeeded", "dead"
  int attempts = 0;
  Millis createdAtMs = 0;
  Millis nextAttemptAtMs = 0;
  std::string payload;
  std::string contentType;
  core::Metadata metadata;  // the message's metadata (filled by claimDeliveries and getMessage)
  int lastStatusCode = 0;
  std::string lastResponse;
  std::string deadReason;  // "permanent", "max_attempts", "max_age" when dead
  std::string after;             // see NewDelivery::after
  std::string upstreamStatus;    // claimDeliveries: the status of the `after` sibling
  std::string upstreamResponse;  // claimDeliveries: its last response
  Millis leaseUntilMs = 0;       // claims and hand-offs: when the lease it was taken under ends
};

// The result of one delivery attempt, and what it does to the delivery.
struct AttemptRecord {
  Millis startedAtMs = 0;
  Millis durationMs = 0;
  std::string outcome;  // "ok", "retry", "fail"
  int statusCode = 0;
  std::string response;
  std::string newStatus;  // "succeeded", "pending" (retry later), "dead"
  Millis nextAttemptAtMs = 0;  // for "pending"
  std::string deadReason;      // for "dead"
  std::string externalId;      // for "succeeded": the peer's id of the sent message (see linkExternal)
};

// Where a peer's message id was sent from (see Store::linkExternal).
struct ExternalRef {
  std::int64_t messageId = 0;
  std::int64_t deliveryId = 0;
};

struct AttemptView {
  int attempt = 0;
  Millis startedAtMs = 0;
  Millis durationMs = 0;
  std::string outcome;
  int statusCode = 0;
  std::string response;
};

struct EventView {
  std::int64_t id = 0;
  std::optional<std::int64_t> deliveryId;
  Millis atMs = 0;
  std::string type;  // received, rejected, claimed, filtered, mapped, failed, delivery-created,
                     // sent, retry-scheduled, dead, replayed, lease-expired ...
  std::string detail;
};

struct DeliveryDetail {
  DeliveryRecord delivery;
  std::vector<AttemptView> attempts;
};

struct MessageDetail {
  core::StoredMessage message;
  std::vector<EventView> events;
  std::vector<DeliveryDetail> deliveries;
};

struct MessageSummary {
  std::int64_t id = 0;
  std::string channelId;
  std::string idempotencyKey;
  Millis receivedAtMs = 0;
  std::string status;
  std::string contentType;
  std::int64_t size = 0;
  std::string error;
};

struct MessageQuery {
  std::optional<std::string> channelId;
  std::optional<std::string> status;
  std::optional<Millis> fromMs;   // receivedAt >= fromMs
  std::optional<Millis> toMs;     // receivedAt < toMs
  std::optional<std::int64_t> beforeId;  // paging cursor: ids < beforeId (newest first)
  int limit = 50;
};

struct DeliveryQuery {
  std::optional<std::string> status;
  std::optional<std::string> channelId;
  std::optional<std::string> destination;
  std::optional<std::int64_t> beforeId;
  int limit = 50;
};

struct AuditRecord {
  Millis atMs = 0;
  std::string actor;   // "source:<channel>", "admin", ...
  std::string action;  // "signature-rejected", "replay", ...
  std::string target;  // channel id, message id, ...
  std::string detail;  // no secrets, no PHI
};

// Counters for /metrics.
struct StoreStats {
  struct MessageCount {
    std::string channelId;
    std::string status;
    std::int64_t count = 0;
  };
  struct DeliveryCount {
    std::string channelId;
    std::string destination;
    std::string status;
    std::int64_t count = 0;
  };
  std::vector<MessageCount> messages;
  std::vector<DeliveryCount> deliveries;
  // SQLite: flushes (fdatasync) of the write-ahead log since the store was opened; the cost that
  // dominates a commit on virtual disks. None on PostgreSQL (the server flushes).
  std::optional<std::int64_t> logFlushes;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgresql".
  virtual std::string backend() const = 0;

  // Commits every message and its "received" (or "rejected") event in ONE transaction (one fsync
  // on SQLite with synchronous=FULL). Messages whose (channelId, idempotencyKey) already exists,
  // in the store or earlier in the same batch, are not stored again: their outcome is
  // {existing id, duplicate=true}. Outcomes are in input order. With `lease`, the new messages in
  // status "received" are stored claimed by lease->owner (see IntakeLease).
  // (commit() without finishes.)
  Result<std::vector<IngestOutcome>> ingest(const std::vector<NewMessage>& batch,
                                            const std::optional<IntakeLease>& lease = std::nullopt) {
    auto committed = commit(batch, lease, {});
    if (!committed) return std::unexpected(committed.error());
    return std::move(committed->ingested);
  }

  // Claims up to `limit` messages in status "received" whose lease is absent or expired
  // (lease_until <= nowMs), oldest first, setting lease_owner=owner, lease_until=nowMs+leaseMs.
  // A message taken over from an expired lease gets a "lease-expired" event. On PostgreSQL this
  // uses FOR UPDATE SKIP LOCKED so concurrent engines never claim the same message.
  virtual Result<std::vector<core::StoredMessage>> claimMessages(const std::string& owner, int limit,
                                                                 Millis nowMs, Millis leaseMs) = 0;

  // Finishes a claimed message in one transaction: checks the lease is still owner's (otherwise
  // kConflict and nothing changes), sets status/error, clears the lease, appends events, creates
  // deliveries (status "pending", a "delivery-created" event each).
  virtual Result<void> finishMessage(std::int64_t messageId, const std::string& owner,
                                     const ProcessOutcome& outcome, Millis nowMs) = 0;

  // finishMessage for many messages in ONE transaction (one fsync); one result per item, in order.
  // An item whose lease was lost gets kConflict and changes nothing; the others still commit.
  struct LeasedDelivery {
    std::size_t index = 0;  // in the outcome's deliveries
    std::int64_t id = 0;
  };
  struct FinishItem {
    std::int64_t messageId = 0;
    ProcessOutcome outcome;
    // When set, the item's deliveries that are due at once and wait for no sibling ("after") are
    // stored already leased to this owner, for a delivery worker to send without a claim, and
    // their ids appended to *leasedDeliveries (when not null) in the order of the outcome's
    // deliveries, with their index there; see storedForm(NewDelivery...). The others are
    // stored unleased, as without.
    std::optional<IntakeLease> deliveryLease;
    std::vector<LeasedDelivery>* leasedDeliveries = nullptr;
    // When not null, the ids of the deliveries stored unleased, due at once and waiting for no
    // sibling are appended (with their index), for ClaimRequest::known.
    std::vector<LeasedDelivery>* claimableDeliveries = nullptr;
  };
  virtual Result<std::vector<Result<void>>> finishMessages(const std::string& owner,
                                                           const std::vector<FinishItem>& items,
                                                           Millis nowMs) = 0;

  // ingest(batch, lease) and finishMessages for each of `finishes` in ONE transaction, flushed
  // when `batch` is not empty: the engine's committer carries the pipeline's finishes with the
  // next intake batch, so the pages both touch are written once. A finish item whose lease was
  // lost gets kConflict as in finishMessages; a database error fails the whole transaction.
  struct FinishBatch {
    std::string owner;
    const std::vector<FinishItem>* items = nullptr;
    Millis nowMs = 0;
  };
  //
  // `attempts`: recordAttempts (claim null) or recordAttemptsAndClaim of delivery workers, carried
  // by the same transaction after the finishes (the engine does so where writers take turns
  // anyway, see writersTakeTurns): the transaction is then flushed when any of them asks for it
  // too. A claim that fails fails the whole transaction, like a database error.
  struct AttemptItem;
  struct ClaimRequest;
  struct RecordedAndClaimed;
  struct AttemptBatch {
    std::string owner;
    const std::vector<AttemptItem>* items = nullptr;
    bool flush = true;
    const ClaimRequest* claim = nullptr;  // null: record only
  };
  struct Committed {
    std::vector<IngestOutcome> ingested;               // per message of `batch`
    std::vector<std::vector<Result<void>>> finished;  // per FinishBatch, per item
    std::vector<RecordedAndClaimed> recorded;         // per AttemptBatch
  };
  virtual Result<Committed> commit(const std::vector<NewMessage>& batch,
                                   const std::optional<IntakeLease>& lease,
                                   const std::vector<FinishBatch>& finishes,
                                   const std::vector<AttemptBatch>& attempts = {}) = 0;

  // Whether this store's writes take turns in the process anyway (SQLite: one writer at a time),
  // so that carrying the delivery workers' attempt records in the committer's transactions
  // (commit's `attempts`) costs no concurrency and saves their own transactions and flushes.
  virtual bool writersTakeTurns() const { return false; }

  // Claims up to `limit` pending deliveries due now (next_attempt_at <= nowMs) with no live lease,
  // skipping destinations in `pausedDestinations` ("channel/destination" keys, e.g. open circuit
  // breakers). Oldest due first. Fills metadata from the message.
  virtual Result<std::vector<DeliveryRecord>> claimDeliveries(
      const std::string& owner, int limit, Millis nowMs, Millis leaseMs,
      const std::vector<std::string>& pausedDestinations) = 0;

  // Records one attempt in one transaction: checks the lease (kConflict if lost), inserts the
  // attempt, updates the delivery (attempts+1, status, next attempt, last response, dead reason,
  // lease cleared), appends an event ("sent", "retry-scheduled" or "dead"), and when every
  // delivery of the message is terminal sets the message status to "delivered" (all succeeded)
  // or "dead" (any dead).
  virtual Result<void> recordAttempt(std::int64_t deliveryId, const std::string& owner,
                                     const AttemptRecord& attempt) = 0;

  // recordAttempt for many deliveries in ONE transaction; one result per item, in order.
  // `flush` false: the transaction need not be on disk when the call returns; it reaches disk
  // with the next durable commit (SQLite) or shortly after (PostgreSQL's asynchronous commit), so
  // an OS crash may roll it back and the deliveries are claimed and sent again. Only for sends
  // whose repeat creates nothing new at the peer (core::DeliveryResult::repeatable). A process
  // crash loses nothing either way.
  struct AttemptItem {
    std::int64_t deliveryId = 0;
    AttemptRecord attempt;
    // The delivery as it was sent, when the caller still holds it: recordAttemptsAndClaim hands
    // the deliveries this attempt releases ("after" it) over with its payload and metadata
    // instead of reading them back. Optional; must outlive the call.
    const DeliveryRecord* sent = nullptr;
  };
  virtual Result<std::vector<Result<void>>> recordAttempts(const std::string& owner,
                                                           const std::vector<AttemptItem>& items,
                                                           bool flush) = 0;

  // recordAttempts(owner, items, flush), then claimDeliveries(owner, claim...) in the SAME
  // transaction: a delivery worker that has sent a batch records it and takes its next one with a
  // single commit. A delivery waiting ("after") for one whose attempt ends it (succeeded or dead)
  // is handed over in `claimed` leased to `owner`, loaded as a claim would load it, without a
  // claim (unless it is not due yet or its destination is paused: then it stays for any claim);
  // the claim then takes what the batch has room for. A database error fails both; an item whose
  // lease was lost gets kConflict and the rest still commit, as in recordAttempts.
  struct ClaimRequest {
    int limit = 0;
    Millis nowMs = 0;
    Millis leaseMs = 0;
    std::vector<std::string> pausedDestinations;
    // Optional: a delivery as its finish stored it (storedForm), when the caller still holds it;
    // asked once per picked id. A picked delivery never attempted (attempts = 0: unchanged since
    // its finish, as payloads and metadata never change) is then leased without being read back.
    std::function<std::optional<DeliveryRecord>(std::int64_t id)> known;
  };
  struct RecordedAndClaimed {
    std::vector<Result<void>> recorded;  // per item
    std::vector<DeliveryRecord> claimed;
  };
  virtual Result<RecordedAndClaimed> recordAttemptsAndClaim(const std::string& owner,
                                                           const std::vector<AttemptItem>& items, bool flush,
                                                           const ClaimRequest& claim) = 0;

  // A status callback about a message we sent (e.g. WhatsApp "delivered" for a reply's wamid):
  // finds the delivery whose successful attempt recorded `externalId` and appends an event
  // (`type`, `detail`) to its message, in one transaction. Empty optional when the id is unknown.
  virtual Result<std::optional<ExternalRef>> linkExternal(const std::string& externalId, Millis nowMs,
                                                          const std::string& type, const std::string& detail) = 0;

  // Releases every message and delivery lease held by `owner` (graceful shutdown).
  virtual Result<void> releaseLeases(const std::string& owner) = 0;

  // Puts a message back to "received" so the pipeline runs again (new deliveries; old ones stay
  // as history), appending a "replayed" event with `detail`. kNotFound for an unknown id;
  // kConflict for a "rejected" message (its input was unusable).
  virtual Result<void> replayMessage(std::int64_t messageId, Millis nowMs,
                                     const std::string& detail) = 0;

  // Makes one dead delivery pending again (attempts kept), due now, with a "replayed" event.
  virtual Result<void> replayDelivery(std::int64_t deliveryId, Millis nowMs,
                                      const std::string& detail) = 0;

  virtual Result<std::vector<MessageSummary>> listMessages(const MessageQuery& query) = 0;
  // kNotFound for an unknown id.
  virtual Result<MessageDetail> getMessage(std::int64_t messageId) = 0;
  virtual Result<std::vector<DeliveryRecord>> listDeliveries(const DeliveryQuery& query) = 0;

  virtual Result<void> audit(const AuditRecord& record) = 0;
  virtual Result<std::vector<AuditRecord>> listAudit(int limit) = 0;

  virtual Result<StoreStats> stats() = 0;
  // Messages in "received" plus deliveries in "pending": the backlog used for backpressure.
  virtual Result<std::int64_t> backlog() = 0;
};

// The message a claim would load for `row` once stored under `id` (status "received", texts
// sanitised as the store keeps them): what intake hands the pipeline without reading it back.
core::StoredMessage storedForm(NewMessage&& row, std::int64_t id);

// The delivery a claim would load for `d` once finishing `message` at `nowMs` stored it under
// `id` with a delivery lease (FinishItem::deliveryLease): what the pipeline hands a delivery
// worker without reading it back.
DeliveryRecord storedForm(const NewDelivery& d, std::int64_t id, const core::StoredMessage& message, Millis nowMs);

// Opens a store and applies pending numbered migrations.
//   sqlite:PATH           (e.g. sqlite:var/switchboard.db; parent directory is created)
//   postgresql://...      (a SOCI/libpq connection string, e.g.
//                          postgresql://host=127.0.0.1 port=5432 dbname=sb user=sb)
// `poolSize` sessions are opened (SQLite: writes are serialised anyway).
Result<std::unique_ptr<Store>> openStore(const std::string& url, int poolSize = 4);

}  // namespace switchboard::store
