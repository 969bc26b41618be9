// A fast way from FHIR JSON text to a document the validator can walk: the text is copied into a
// buffer of the calling thread and read in place (strings point into it), and the values come
// from a memory pool of the same thread, all reused by the thread's next read, so a warm thread
// reads a document without allocating. The reader takes only plain JSON (no \u escapes, no
// fractions or exponents, integers of up to 18 digits) and declines everything else, which then
// goes through fhirpath::parseResource(): what it accepts yields a document equal value for
// value to the one parseResource() makes (tests/fhir/json_arena_test.cc checks this).
// Thread-safety: each thread has its own arena; an ArenaDocument must stay on the thread that
// made it.
#pragma once

#include <optional>
#include <string_view>

#include "engine/fhirpath/fhirpath.h"

namespace switchboard::fhir {

class ArenaDocument {
 public:
  // Reads `text` (JSON whose first character after an optional BOM and blanks is '{') into the
  // thread's arena. Empty when the text is something else, something the reader leaves to
  // parseResource() (see above), or when the thread's arena is held by another ArenaDocument.
  static std::optional<ArenaDocument> read(std::string_view text);

  ArenaDocument(ArenaDocument&& other) noexcept;
  ArenaDocument& operator=(ArenaDocument&&) = delete;
  ArenaDocument(const ArenaDocument&) = delete;
  ~ArenaDocument();  // hands the arena back to the thread

  // The document. It owns nothing: neither it nor a copy of it may be used once this
  // ArenaDocument is gone (a validation that keeps no node past its end is fine).
  const fhirpath::DocumentPtr& document() const { return document_; }

 private:
  struct Arena;
  ArenaDocument(Arena* arena, fhirpath::DocumentPtr document);
  Arena* arena_;
  fhirpath::DocumentPtr document_;
};

}  // namespace switchboard::fhir
