#include "engine/store/migrations.h"

#include <chrono>
#include <string>
#include <vector>

namespace switchboard::store {
namespace {

struct Migration {
  int version;
  const char* summary;
  // "{PK}" becomes the dialect's auto-increment key, "{ID}" a 64-bit primary key given by the
  // writer; a statement starting "{pg} " runs on PostgreSQL only.
  std::vector<std::string> statements;
};

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list = {
      {1,
       "messages, events, deliveries, attempts, audit",
       {
           "CREATE TABLE messages ("
           " id {PK},"
           " channel_id TEXT NOT NULL,"
           " idempotency_key TEXT,"
           " received_at BIGINT NOT NULL,"
           " content_type TEXT NOT NULL,"
           " body TEXT NOT NULL,"
           " body_encoding TEXT NOT NULL,"
           " body_size BIGINT NOT NULL,"
           " metadata TEXT NOT NULL,"
           " status TEXT NOT NULL,"
           " error TEXT NOT NULL,"
           " run BIGINT NOT NULL DEFAULT 0,"
           " lease_owner TEXT NOT NULL DEFAULT '',"
           " lease_until BIGINT NOT NULL DEFAULT 0,"
           " updated_at BIGINT NOT NULL,"
           " UNIQUE (channel_id, idempotency_key))",
           "CREATE INDEX messages_status ON messages (status, id)",
           "CREATE INDEX messages_channel ON messages (channel_id, id)",
           "CREATE INDEX messages_received ON messages (received_at)",
           "CREATE TABLE deliveries ("
           " id {PK},"
           " message_id BIGINT NOT NULL REFERENCES messages (id),"
           " run BIGINT NOT NULL,"
           " channel_id TEXT NOT NULL,"
           " destination TEXT NOT NULL,"
           " status TEXT NOT NULL,"
           " attempts BIGINT NOT NULL DEFAULT 0,"
           " created_at BIGINT NOT NULL,"
           " next_attempt_at BIGINT NOT NULL,"
           " payload TEXT NOT NULL,"
           " payload_encoding TEXT NOT NULL,"
           " content_type TEXT NOT NULL,"
           " last_status_code BIGINT NOT NULL DEFAULT 0,"
           " last_response TEXT NOT NULL DEFAULT '',"
           " dead_reason TEXT NOT NULL DEFAULT '',"
           " lease_owner TEXT NOT NULL DEFAULT '',"
           " lease_until BIGINT NOT NULL DEFAULT 0)",
           "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at, id)",
           "CREATE INDEX deliveries_message ON deliveries (message_id)",
           "CREATE TABLE attempts ("
           " id {PK},"
           " delivery_id BIGINT NOT NULL REFERENCES deliveries (id),"
           " attempt BIGINT NOT NULL,"
           " started_at BIGINT NOT NULL,"
           " duration_ms BIGINT NOT NULL,"
           " outcome TEXT NOT NULL,"
           " status_code BIGINT NOT NULL,"
           " response TEXT NOT NULL)",
           "CREATE INDEX attempts_delivery ON attempts (delivery_id)",
           "CREATE TABLE events ("
           " id {PK},"
           " message_id BIGINT NOT NULL REFERENCES messages (id),"
           " delivery_id BIGINT NOT NULL DEFAULT 0,"
           " at BIGINT NOT NULL,"
           " type TEXT NOT NULL,"
           " detail TEXT NOT NULL)",
           "CREATE INDEX events_message ON events (message_id, id)",
           "CREATE TABLE audit ("
           " id {PK},"
           " at BIGINT NOT NULL,"
           " actor TEXT NOT NULL,"
           " action TEXT NOT NULL,"
           " target TEXT NOT NULL,"
           " detail TEXT NOT NULL)",
       }},
      {2,
       "deliveries that wait for a sibling destination",
       {
           "ALTER TABLE deliveries ADD COLUMN after_destination TEXT NOT NULL DEFAULT ''",
       }},
      {3,
       "peer message ids of sent deliveries, for status callbacks",
       {
           "CREATE TABLE external_refs ("
           " external_id TEXT PRIMARY KEY,"
           " message_id BIGINT NOT NULL,"
           " delivery_id BIGINT NOT NULL,"
           " at BIGINT NOT NULL)",
       }},
      {4,
       "delivery payloads in a table of their own, written once",
       {
           // A delivery row is rewritten at every claim and attempt; with its payload (a
           // transaction Bundle, several KiB) inline, each rewrite copied the payload's overflow
           // pages too. Siblings of one message that carry the same payload share its row.
           "CREATE TABLE payloads ("
           " payload_id {PK},"
           " payload TEXT NOT NULL,"
           " payload_encoding TEXT NOT NULL)",
           "ALTER TABLE deliveries ADD COLUMN payload_id BIGINT NOT NULL DEFAULT 0",
           "INSERT INTO payloads (payload_id, payload, payload_encoding) SELECT id, payload, "
           "payload_encoding "
           "FROM deliveries",
           "UPDATE deliveries SET payload_id = id",
           "{pg} SELECT setval(pg_get_serial_sequence('payloads', 'payload_id'), "
           "COALESCE((SELECT max(payload_id) FROM payloads), 0) + 1, false)",
           "ALTER TABLE deliveries DROP COLUMN payload",
           "ALTER TABLE deliveries DROP COLUMN payload_encoding",
       }},
      {5,
       "message bodies in a table of their own, written once",
       {
           // A message row is rewritten when the pipeline finishes it and when its deliveries end;
           // with the body inline (a webhook, a few KiB) each row filled a page of its own and each
           // rewrite wrote that page. Without it the rows of a batch share their pages.
           "CREATE TABLE message_bodies ("
           " message_id {ID},"
           " body TEXT NOT NULL,"
           " body_encoding TEXT NOT NULL)",
           "INSERT INTO message_bodies (message_id, body, body_encoding) SELECT id, body, "
           "body_encoding FROM messages",
           "ALTER TABLE messages DROP COLUMN body",
           "ALTER TABLE messages DROP COLUMN body_encoding",
       }},
      {6,
       "deliveries after a pending sibling wait as 'waiting', outside the claimable rows",
       {
           // Claims scan the due index from the oldest pending row; replies parked behind their
           // EHR delivery were pending too, and every claim stepped over all of them.
           "UPDATE deliveries SET status = 'waiting' WHERE status = 'pending' AND "
           "after_destination <> '' AND "
           "EXISTS (SELECT 1 FROM deliveries u WHERE u.message_id = deliveries.message_id AND "
           "u.run = deliveries.run "
           "AND u.destination = deliveries.after_destination AND u.status = 'pending')",
       }},
  };
  return list;
}

// The statement as `dialect` runs it; empty when it is not for that dialect.
std::string forDialect(std::string sql, Dialect dialect) {
  if (sql.starts_with("{pg} ")) {
    if (dialect != Dialect::kPostgresql) return {};
    sql.erase(0, 5);
  }
  const std::string pk = dialect == Dialect::kSqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY";
  for (auto pos = sql.find("{PK}"); pos != std::string::npos; pos = sql.find("{PK}")) sql.replace(pos, 4, pk);
  // SQLite: INTEGER PRIMARY KEY is the row's own key (no index of its own).
  const std::string id = dialect == Dialect::kSqlite ? "INTEGER PRIMARY KEY" : "BIGINT PRIMARY KEY";
  for (auto pos = sql.find("{ID}"); pos != std::string::npos; pos = sql.find("{ID}"))
    sql.replace(pos, 4, id);
  return sql;
}

}  // namespace

int latestSchemaVersion() { return migrations().back().version; }

Result<void> applyMigrations(soci::session& sql, Dialect dialect, int upTo) {
  try {
    if (dialect == Dialect::kPostgresql) sql << "SELECT pg_advisory_lock(7401001)";
    sql << "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL, "
           "summary TEXT NOT NULL)";
    long long current = 0;
    soci::indicator ind = soci::i_null;
    sql << "SELECT max(version) FROM schema_migrations", soci::into(current, ind);
    if (ind != soci::i_ok) current = 0;
    if (current > latestSchemaVersion()) {
      if (dialect == Dialect::kPostgresql) sql << "SELECT pg_advisory_unlock(7401001)";
      return fail(ErrorCode::kNotSupported, "the store's schema version " + std::to_string(current) +
                                                " is newer than this build knows (" +
                                                std::to_string(latestSchemaVersion()) + "); upgrade switchboard");
    }
    for (const Migration& m : migrations()) {
      if (m.version <= current || m.version > upTo) continue;
      soci::transaction tr(sql);
      for (const std::string& statement : m.statements) {
        if (std::string text = forDialect(statement, dialect); !text.empty()) sql << text;
      }
      long long version = m.version;
      long long now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      std::string summary = m.summary;
      sql << "INSERT INTO schema_migrations (version, applied_at, summary) VALUES (:v, :a, :s)", soci::use(version),
          soci::use(now), soci::use(summary);
      tr.commit();
    }
    if (dialect == Dialect::kPostgresql) sql << "SELECT pg_advisory_unlock(7401001)";
    return {};
  } catch (const std::exception& e) {
    try {
      if (dialect == Dialect::kPostgresql) sql << "SELECT pg_advisory_unlock(7401001)";
    } catch (const std::exception&) {
    }
    return fail(ErrorCode::kException, std::string("store migration failed: ") + e.what());
  }
}

}  // namespace switchboard::store
