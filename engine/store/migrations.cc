#include "engine/store/migrations.h"

#include <chrono>
#include <string>
#include <vector>

namespace switchboard::store {
namespace {

struct Migration {
  int version;
  const char* summary;
  std::vector<std::string> statements;  // "{PK}" becomes the dialect's auto-increment key
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
  };
  return list;
}

std::string forDialect(std::string sql, Dialect dialect) {
  const std::string pk = dialect == Dialect::kSqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY";
  for (auto pos = sql.find("{PK}"); pos != std::string::npos; pos = sql.find("{PK}")) sql.replace(pos, 4, pk);
  return sql;
}

}  // namespace

int latestSchemaVersion() { return migrations().back().version; }

Result<void> applyMigrations(soci::session& sql, Dialect dialect) {
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
      if (m.version <= current) continue;
      soci::transaction tr(sql);
      for (const std::string& statement : m.statements) sql << forDialect(statement, dialect);
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
