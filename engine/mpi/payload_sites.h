// Parsing a FHIR payload (a Bundle or a bare Patient) for the mpi stage while noting where, in
// its text, the stage's two edits go: the Patient's identifier array and its entry's request.
// With those places the stage writes the payload back by inserting a few bytes instead of
// serialising the whole Bundle again. Thread-safety: plain functions over caller-owned data.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace switchboard::mpi {

inline constexpr std::size_t kNoOffset = static_cast<std::size_t>(-1);

// Offsets into the payload's text of one object that may be the Patient (the root, or an entry's
// "resource") and of its entry's "request". Counts of keys tell duplicates apart: the DOM edits
// the first member of a name, so the text is edited only where each name occurs at most once.
struct PatientSite {
  std::size_t resourceEnd = kNoOffset;  // the '}' closing the resource
  std::size_t resourceMembers = 0;
  int identifierKeys = 0;
  bool identifierIsArray = false;
  std::size_t identifierEnd = kNoOffset;  // the ']' closing the identifier array
  std::size_t identifierItems = 0;
  // The entry's request (unused for a bare Patient).
  int resourceKeys = 0;  // "resource" members of the entry
  int requestKeys = 0;
  bool requestIsObject = false;
  std::size_t requestEnd = kNoOffset;  // the '}' closing the request
  std::size_t requestMembers = 0;
  int ifNoneExistKeys = 0;
  std::size_t ifNoneExistBegin = kNoOffset;  // the value's opening quote, when a string
  std::size_t ifNoneExistEnd = kNoOffset;    // one past its closing quote
};

struct PayloadSites {
  PatientSite root;                  // the payload itself as a Patient
  int entryKeys = 0;                 // "entry" members of the root
  std::vector<PatientSite> entries;  // one per element of the root's first "entry" array
};

// Parses text into doc exactly as doc.Parse(text) does (default flags) and fills sites. Returns
// the parse result (doc is left null on error).
rapidjson::ParseResult parseWithSites(std::string_view text, rapidjson::Document& doc,
                                      PayloadSites& sites);

// The payload text with {"system": system, "value": value} appended to the Patient's
// identifier (the array created when the Patient has none) and, when editRequest, the entry's
// request.ifNoneExist set to condition: the same JSON the DOM edit of the stage gives, with
// every other byte of the text as it was. nullopt when the places are ambiguous (a name
// repeated, an identifier that is not an array, an ifNoneExist that is not a string, a request
// that is not an object): the caller then edits the DOM and serialises it.
std::optional<std::string> stampIdentifier(std::string_view text, const PatientSite& site,
                                           bool editRequest, std::string_view system,
                                           std::string_view value, std::string_view condition);

}  // namespace switchboard::mpi
