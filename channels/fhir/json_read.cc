// JsonRead: the thread's arena reader where it applies, RapidJSON otherwise; see json_read.h.
#include "channels/fhir/json_read.h"

namespace switchboard::channels::fhir {

namespace {

// Only text that starts with the object itself goes to the arena reader: it also skips a byte
// order mark and every isspace() blank before the '{', RapidJSON a byte order mark and " \t\n\r"
// only, so text with anything before it is left to RapidJSON.
std::optional<switchboard::fhir::ArenaDocument> readInArena(std::string_view text) {
  if (text.empty() || text.front() != '{') return std::nullopt;
  return switchboard::fhir::ArenaDocument::read(text);
}

}  // namespace

JsonRead::JsonRead(std::string_view text) : arena_(readInArena(text)) {
  if (arena_) {
    root_ = arena_->document().get();
    return;
  }
  parsed_.emplace();
  parsed_->Parse(text.data(), text.size());
  if (!parsed_->HasParseError()) root_ = &*parsed_;
}

}  // namespace switchboard::channels::fhir
