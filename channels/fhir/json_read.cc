// JsonRead: the thread's arena reader where it applies, RapidJSON otherwise; see json_read.h.
#include "channels/fhir/json_read.h"

namespace switchboard::channels::fhir {

std::optional<switchboard::fhir::ArenaDocument> readInArena(std::string_view text) {
  if (text.empty() || text.front() != '{') return std::nullopt;
  return switchboard::fhir::ArenaDocument::read(text);
}

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
