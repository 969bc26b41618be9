// Numbered schema migrations for the message store, applied in order at start-up. Each migration
// runs in its own transaction and is recorded in schema_migrations; on PostgreSQL an advisory lock
// keeps two engines starting together from applying the same migration twice.
// Thread-safety: call once per database from one thread (openStore does).
#pragma once

#include <soci/soci.h>

#include "engine/core/error.h"

namespace switchboard::store {

enum class Dialect { kSqlite, kPostgresql };

// The highest migration number this build knows.
int latestSchemaVersion();

// Applies the migrations after the database's version up to `upTo` (tests stop early to build a
// database as an older build left it).
Result<void> applyMigrations(soci::session& sql, Dialect dialect, int upTo = latestSchemaVersion());

}  // namespace switchboard::store
