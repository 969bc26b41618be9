// Name-based (version 5, SHA-1) UUIDs: the same name always gives the same UUID, which is what
// makes mapped fullUrls and identifiers stable across replays. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace switchboard::mapping {

// RFC 4122 version-5 UUID of `name` in Switchboard's mapping namespace, lower-case text form
// ("2f1c...-...."). Deterministic: depends on `name` only.
std::string nameUuid(std::string_view name);
// The same written into `out` (36 characters, no terminator).
void writeNameUuid(std::string_view name, char* out);

// Lower-case hex SHA-1 of `bytes`.
std::string sha1Hex(std::string_view bytes);
// The same written into `out` (40 characters, no terminator).
void writeSha1Hex(std::string_view bytes, char* out);

}  // namespace switchboard::mapping
