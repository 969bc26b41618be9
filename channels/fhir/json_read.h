// JSON text read as rapidjson::Document::Parse() reads it (default flags), for the destinations'
// payloads and answers: an object whose text starts with '{' is read in place into the calling
// thread's arena (engine/fhir/json_arena.h), whose reader takes a subset of JSON and reads it to
// the same values; everything else, and whatever that reader declines (escapes \u, fractions,
// exponents, long integers, a held arena), is parsed by RapidJSON.
// Thread-safety: a JsonRead belongs to the thread that made it and must stay on it.
#pragma once

#include <optional>
#include <string_view>

#include <rapidjson/document.h>

#include "engine/fhir/json_arena.h"

namespace switchboard::channels::fhir {

// `text` in the thread's arena when it starts with '{' and the arena reader takes it; empty
// otherwise. What it reads has the values rapidjson::Document::Parse() and
// fhirpath::parseJsonResource() give the same text (the arena reader also skips a byte order mark
// and every isspace() blank before the '{', RapidJSON a byte order mark and " \t\n\r" only, so
// text with anything before the '{' is not read here).
std::optional<switchboard::fhir::ArenaDocument> readInArena(std::string_view text);

class JsonRead {
 public:
  explicit JsonRead(std::string_view text);
  JsonRead(const JsonRead&) = delete;
  JsonRead& operator=(const JsonRead&) = delete;
  // The document's root; null when the text is not JSON. Valid while this JsonRead lives.
  const rapidjson::Value* root() const { return root_; }
  // Whether the thread's arena holds the document (else RapidJSON's own document does).
  bool inArena() const { return arena_.has_value(); }

 private:
  std::optional<switchboard::fhir::ArenaDocument> arena_;
  std::optional<rapidjson::Document> parsed_;
  const rapidjson::Value* root_ = nullptr;
};

}  // namespace switchboard::channels::fhir
