// Text encodings for what the store keeps: raw bodies that are not valid UTF-8 (or hold NUL)
// are kept as base64 so they round-trip byte for byte on PostgreSQL text columns; diagnostic
// strings are made valid UTF-8; metadata is serialised as an ordered JSON array of pairs.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/error.h"
#include "engine/core/message.h"

namespace switchboard::store {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates) without NUL bytes.
bool isStorableText(std::string_view s);

std::string base64Encode(std::string_view bytes);
Result<std::string> base64Decode(std::string_view text);

// A body as stored: the text and its encoding ("" = as is, "base64").
struct EncodedBody {
  std::string text;
  std::string encoding;
};
EncodedBody encodeBody(std::string_view body);
Result<std::string> decodeBody(std::string text, const std::string& encoding);

// Replaces invalid UTF-8 sequences and NUL by U+FFFD (for errors, responses, details).
std::string sanitizeText(std::string_view s);

// [["key","value"],...]; values sanitised.
std::string encodeMetadata(const core::Metadata& metadata);
core::Metadata decodeMetadata(std::string_view json);

}  // namespace switchboard::store
