// FHIR R4 ConceptMap translation for mapping files: ConceptMap resources (JSON) are loaded once
// from a folder and indexed by id, name and url; translate() answers a source code with its target
// Coding as FHIR $translate would for a single, unambiguous match.
// Thread-safety: a loaded ConceptMapSet is immutable and may be shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"

namespace switchboard::mapping {

struct Translation {
  std::string sourceDisplay;  // ConceptMap.group.element.display (may be empty)
  bool matched = false;       // false: the element says "unmatched" / "disjoint" (no target)
  std::string system;         // group.target
  std::string code;           // target.code
  std::string display;        // target.display
};

class ConceptMapSet {
 public:
  // Every *.json file in `dir` that holds a ConceptMap. A missing folder is an empty set; a file
  // that is not a valid ConceptMap is an error naming the file and the JSON pointer.
  static Result<std::shared_ptr<const ConceptMapSet>> loadDirectory(const std::string& dir);

  // Adds one ConceptMap resource; `file` names it in errors.
  Result<void> add(const rapidjson::Value& conceptMap, const std::string& file);

  bool has(std::string_view map) const;
  // Translates `code` (optionally from `sourceSystem`) with the map named by its id, name or url.
  // Returns the first target whose equivalence is not unmatched/disjoint; a Translation with
  // matched=false when the element exists but maps to nothing; kCodeInvalid when the code is not
  // in the map and the group declares no `unmapped` fallback; kNotFound for an unknown map.
  Result<Translation> translate(std::string_view map, std::string_view code,
                                std::string_view sourceSystem = {}) const;

  // translate() without copies: views into the set (or into `code` for an "unmapped: provided"
  // group), valid while the set and `code` live.
  struct View {
    std::string_view sourceDisplay;
    bool matched = false;
    std::string_view system, code, display;
  };
  Result<View> lookup(std::string_view map, std::string_view code,
                      std::string_view sourceSystem = {}) const;

  // One map, found once by its id, name or url (null: none), for lookups that do not hash its
  // name again; valid while the set lives.
  struct Map;
  const Map* find(std::string_view map) const;
  // lookup() in a map from find(); `mapName` only names it in errors.
  Result<View> lookup(const Map& map, std::string_view mapName, std::string_view code,
                      std::string_view sourceSystem = {}) const;

  std::size_t size() const { return maps_.size(); }

 private:
  // Hashed look-ups by any string-like key, without building a std::string.
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename T>
  using TextMap = std::unordered_map<std::string, T, TextHash, std::equal_to<>>;
  // The codes of a group in an open-addressed table of a power-of-two size, hashed by a few
  // multiplications over eight bytes at a time (no division, no call): what lookup() reads.
  class CodeIndex {
   public:
    // It views the elements it was built over: moved with them, never copied.
    CodeIndex() = default;
    CodeIndex(CodeIndex&&) noexcept = default;
    CodeIndex& operator=(CodeIndex&&) noexcept = default;
    CodeIndex(const CodeIndex&) = delete;
    CodeIndex& operator=(const CodeIndex&) = delete;
    void build(const TextMap<Translation>& elements);
    const Translation* find(std::string_view code) const;

   private:
    static std::uint64_t hash(std::string_view code);
    struct Entry {
      std::string_view code;  // views the key in `elements`; empty data: a free entry
      const Translation* translation = nullptr;
    };
    std::vector<Entry> entries_;
    std::uint64_t mask_ = 0;
  };
  struct Group {
    std::string source, target;
    TextMap<Translation> elements;
    CodeIndex index;           // over `elements`, built once the group is read
    std::string unmappedMode;  // "", "provided", "fixed"
    Translation unmappedFixed;
  };
  std::vector<std::shared_ptr<const Map>> maps_;
  TextMap<std::shared_ptr<const Map>> byName_;
};

struct ConceptMapSet::Map {
  std::string id;
  std::vector<Group> groups;
};

}  // namespace switchboard::mapping
