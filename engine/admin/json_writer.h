// Small helpers for writing JSON answers with RapidJSON.
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace switchboard::admin {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void writeString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// True when `s` is well-formed UTF-8 without NUL (safe to return as a JSON string).
bool isUtf8Text(std::string_view s);

// Writes `body` as "body" (text) or "bodyBase64" (binary) members.
void writeBody(JsonWriter& w, std::string_view body);

// RFC 3339 UTC text for epoch milliseconds, e.g. 2026-11-22T10:00:00.123Z.
std::string isoTime(std::int64_t ms);

}  // namespace switchboard::admin
