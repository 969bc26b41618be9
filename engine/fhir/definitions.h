// FHIR R4 conformance resources as the validator and the mapping linter read them:
// StructureDefinitions (snapshots), ValueSets and CodeSystems loaded from a directory such as
// fhir-profiles/. Thread-safety: a Definitions object is built once by load() and is immutable
// afterwards, so it may be shared by any number of threads.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"
#include "engine/fhir/primitive_format.h"
#include "engine/fhirpath/fhirpath.h"

namespace switchboard::fhir {

class StructureDefinition;
class Definitions;
struct ElementDef;
struct Constraint;
struct ValueSetExpansion;

// What a native invariant sees: the element the constraint sits on, as FHIRPath would (its JSON
// value, and for a primitive the "_name" object), and the resources around it.
struct InvariantInput {
  const rapidjson::Value* json = nullptr;          // the element (an object for complex types)
  const rapidjson::Value* ext = nullptr;           // a primitive's "_name" object, or null
  const rapidjson::Value* resource = nullptr;      // %resource
  const rapidjson::Value* rootResource = nullptr;  // %rootResource
  const Definitions* definitions = nullptr;
};

// A native implementation of one invariant expression: true/false when it decides the outcome
// exactly as the FHIRPath evaluation would, empty when FHIRPath must decide (unusual shapes:
// primitive extensions, nulls, the cases it does not model). See invariants.h.
using NativeInvariant = std::optional<bool> (*)(const InvariantInput&);

// One allowed type of an element ("HumanName", "dateTime", "Reference" with target profiles).
struct TypeRef {
  std::string code;                         // FHIR type code ("string" for System.String)
  std::string suffix;                       // its choice-element suffix: "DateTime", "Quantity"
  std::vector<std::string> profiles;        // canonical URLs
  std::vector<std::string> targetProfiles;  // for Reference and canonical
  // Resolved once loading is done: the type's base definition (null when not shipped).
  const StructureDefinition* definition = nullptr;
  bool primitive = false;                               // a primitive type (lower-case FHIR type)
  bool resource = false;                                // "Resource" or a resource type
  PrimitiveKind primitiveKind = PrimitiveKind::kOther;  // of `code`
  bool reference = false;                               // code "Reference"
  bool coding = false;                                  // code "Coding"
  bool codeableConcept = false;                         // code "CodeableConcept"
  // Resource types a Reference may point at (from targetProfiles); empty = any.
  std::vector<std::string> targetTypes;
  // Invariants of the type's own root element to evaluate on a value of this type when the
  // snapshot does not unroll the element (ele-1 and keys the element itself declares left out).
  std::vector<const Constraint*> invariants;
};

// An invariant of an element (ElementDefinition.constraint).
struct Constraint {
  // (What the validator's walk reads for every evaluation comes first, on one cache line.)
  bool bestPractice = false;
  // Always decided natively (dom-3, whose strict FHIRPath evaluation is an error).
  bool nativeOnly = false;
  // Chosen at load by the exact expression text (invariants.h); null = FHIRPath only.
  NativeInvariant native = nullptr;
  std::string key;       // "app-3"
  std::string severity;  // "error" or "warning"
  std::string human;
  std::string expressionText;
  std::string message;  // "key: human", as issues quote it
  // Compiled FHIRPath; empty when the expression is absent or does not compile (see
  // compileError).
  std::optional<fhirpath::Expression> expression;
  std::string compileError;
};

// Children of an element by JSON key, built at load: plain names, each typed name of a choice
// element ("valueString"), and each of those with a leading '_' (primitive extensions).
struct ChildSlot {
  std::uint32_t index = 0;        // position in ElementDef::children
  const TypeRef* type = nullptr;  // the type the key names (the first type when not a choice)
  bool underscore = false;        // "_name"
  // Resolved at load for the walk: a value under this key (not "_name") is a single primitive
  // whose element has no fixed or pattern value, no invariant to evaluate, no extension slices
  // and does not repeat, so a valid value needs only its format check (as `kind`) and, with a
  // required binding, its code looked up.
  bool plainPrimitive = false;
  PrimitiveKind kind = PrimitiveKind::kOther;
  // Likewise for objects: a value (or, when the element repeats, each array item) is an object of
  // a data type or backbone element whose element has no binding, fixed or pattern value, content
  // reference or extension slices, and whose type (a shipped definition when the snapshot does
  // not unroll the element) is no resource: the walk checks ele-1, the reference, the invariants
  // and the children without items()' and item()'s case analysis.
  bool plainObject = false;
};
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
// A small open-addressing table from JSON key to child (FNV-1a, linear probing), filled at load.
class ChildIndex {
 public:
  // Adds `key` unless it is already there (the first child claiming a key keeps it).
  void add(std::string key, ChildSlot slot);
  // (Inline: the walk looks up every key of every object.)
  const ChildSlot* find(std::string_view key) const {
    const Bucket* const table = table_.data();
    if (!table) return nullptr;  // no key added
    const std::uint32_t h = hash(key);
    for (std::uint32_t b = h & mask_;; b = (b + 1) & mask_) {
      const Bucket bucket = table[b];
      if (bucket.entry == 0) return nullptr;
      if (bucket.hash != h) continue;
      const auto& [k, slot] = entries_[bucket.entry - 1];
      if (k.size() == key.size() && sameShortText(k.data(), key.data(), key.size())) return &slot;
    }
  }
  // Calls `f(slot)` on every slot (filling in what the walk resolves at load).
  template <typename F>
  void forEachSlot(F&& f) {
    for (auto& entry : entries_) f(entry.second);
  }

 private:
  // JSON keys are short names: the length and three of the characters mixed by one multiply
  // spread them well enough for tables of a few dozen keys, at a fraction of a byte-wise hash.
  static std::uint32_t hash(std::string_view key) {
    const std::size_t n = key.size();
    if (n == 0) return 0;
    const auto at = [&](std::size_t i) {
      return static_cast<std::uint32_t>(static_cast<unsigned char>(key[i]));
    };
    std::uint32_t h =
        static_cast<std::uint32_t>(n) | at(0) << 8 | at(n / 2) << 16 | at(n - 1) << 24;
    h *= 0x9E3779B1u;
    return h ^ (h >> 15);
  }
  // Whether n bytes at a and b are equal. Keys are short: a call to memcmp costs more than the
  // compare, and a byte loop runs once per character; this reads 8 (or 4) bytes at a time, the
  // last word overlapping the one before it, and never reads outside [a, a + n) or [b, b + n).
  template <typename Word>
  static Word loadWord(const char* p) {
    Word w;
    std::memcpy(&w, p, sizeof w);
    return w;
  }
  static bool sameShortText(const char* a, const char* b, std::size_t n) {
    if (n >= 8) {
      for (std::size_t i = 0; i + 8 < n; i += 8)
        if (loadWord<std::uint64_t>(a + i) != loadWord<std::uint64_t>(b + i)) return false;
      return loadWord<std::uint64_t>(a + n - 8) == loadWord<std::uint64_t>(b + n - 8);
    }
    if (n >= 4) {
      return loadWord<std::uint32_t>(a) == loadWord<std::uint32_t>(b) &&
             loadWord<std::uint32_t>(a + n - 4) == loadWord<std::uint32_t>(b + n - 4);
    }
    for (std::size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
  void rebuild(std::size_t buckets);
  std::vector<std::pair<std::string, ChildSlot>> entries_;
  // A power-of-two size; entry index + 1 (0 = empty) and the key's hash, compared before the
  // key so that a probe past another key costs no look at its text.
  struct Bucket {
    std::uint32_t entry = 0;
    std::uint32_t hash = 0;
  };
  std::vector<Bucket> table_;
  std::uint32_t mask_ = 0;  // table_.size() - 1
};

struct Binding {
  std::string strength;  // required | extensible | preferred | example
  std::string valueSet;  // canonical without version
};

// One ElementDefinition of a snapshot.
struct ElementDef {
  std::string id;     // "Patient.name.given", slices "Patient.extension:race"
  std::string path;   // "Patient.name.given"
  std::string name;   // last path segment: "given", "value[x]"
  std::string plain;  // name without "[x]": "given", "value"
  bool choice = false;
  bool inSlice = false;   // a slice or a descendant of one (id holds ':')
  std::string sliceName;  // set on a slice's own element ("race" for Patient.extension:race)
  std::uint32_t min = 0;
  std::optional<std::uint32_t> max;     // empty = "*"
  std::uint32_t maxCount = UINT32_MAX;  // max, or UINT32_MAX for "*" (set at load for the walk)
  std::vector<TypeRef> types;
  std::string contentReference;  // path without '#', e.g. "QuestionnaireResponse.item"
  std::optional<Binding> binding;
  std::vector<Constraint> constraints;
  bool hasInvariants = false;  // a compiled constraint other than ele-1 (checked natively)
  bool mustSupport = false;
  // fixed[x] / pattern[x] value (copied into the owning StructureDefinition's document).
  const rapidjson::Value* fixed = nullptr;
  const rapidjson::Value* pattern = nullptr;
  std::string fixedName;  // "fixedUri", "patternCodeableConcept"
  // Children and extension slices in the same StructureDefinition (empty when the snapshot does
  // not unroll the element); set when the definition is loaded.
  const std::vector<const ElementDef*>* children = nullptr;
  const std::vector<const ElementDef*>* slices = nullptr;
  const ChildIndex* childIndex = nullptr;     // over *children
  const ElementDef* contentTarget = nullptr;  // the element contentReference names
  // Precomputed for the walk: constraints to evaluate on each instance (ele-1 and those without
  // a compiled expression left out), the expansion of a required binding when it is complete,
  // and whether the element needs a look when absent (min >= 1 or extension slices).
  std::vector<const Constraint*> invariants;
  const ValueSetExpansion* requiredValueSet = nullptr;
  bool checkWhenAbsent = false;
  // Positions in *children of the children with checkWhenAbsent, ascending: the walk looks at
  // these when an object lacks them and skips every other absent child.
  std::vector<std::uint32_t> absentChecks;
  bool resourceId = false;         // Resource.id of a resource (an id, typed System.String)
  bool entryResource = false;      // Bundle.entry.resource
  bool containedResource = false;  // DomainResource.contained

  bool repeats() const { return !max || *max > 1; }
  bool isPrimitiveChoiceSuffix(std::string_view suffix) const;
  // The type a choice element takes for a JSON key suffix ("DateTime" -> dateTime); null when
  // the suffix names none of its types.
  const TypeRef* typeForSuffix(std::string_view suffix) const;
};

class StructureDefinition {
 public:
  std::string url;
  std::string id;
  std::string name;
  std::string type;        // "Patient", "HumanName", "date"
  std::string kind;        // primitive-type | complex-type | resource | logical
  std::string derivation;  // specialization | constraint
  std::string baseDefinition;
  bool isAbstract = false;
  bool isResource = false;  // kind == "resource", resolved at load for the walk
  std::vector<ElementDef> elements;

  // The element with this path (not a slice), or null.
  const ElementDef* element(std::string_view path) const;
  // The direct children (not slices) of the element at `path`.
  const std::vector<const ElementDef*>& children(std::string_view path) const;
  // Extension slices of the element at `path` ("Patient.extension"): slice elements whose type
  // profile names the extension URL they count.
  const std::vector<const ElementDef*>& slices(std::string_view path) const;
  const ElementDef* root() const { return elements.empty() ? nullptr : &elements.front(); }
  bool isProfile() const { return derivation == "constraint"; }

 private:
  friend class Definitions;
  std::shared_ptr<rapidjson::Document> values_;  // owns fixed/pattern copies
  std::unordered_map<std::string, const ElementDef*> byPath_;
  std::unordered_map<std::string, std::vector<const ElementDef*>> children_;
  std::unordered_map<std::string, std::vector<const ElementDef*>> slices_;
  std::unordered_map<std::string, ChildIndex> childIndexes_;
};

// The codes a ValueSet holds, as far as the shipped CodeSystems let it be expanded.
struct ValueSetExpansion {
  std::string url;
  bool complete = false;  // false: includes a system or value set we cannot enumerate
  std::set<std::pair<std::string, std::string>> codes;  // (system, code)
  std::set<std::string> bareCodes;                      // codes of every system
  // The same as hash sets for the walk's look-ups (filled when the expansion is done).
  struct PairHash {
    using is_transparent = void;
    template <typename P>
    std::size_t operator()(const P& p) const {
      std::hash<std::string_view> h;
      return h(std::string_view(p.first)) * 31 + h(std::string_view(p.second));
    }
  };
  struct PairEqual {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::string_view(a.first) == std::string_view(b.first) &&
             std::string_view(a.second) == std::string_view(b.second);
    }
  };
  std::unordered_set<std::string, StringHash, std::equal_to<>> codeSet;
  std::unordered_set<std::pair<std::string, std::string>, PairHash, PairEqual> systemCodeSet;

  bool containsCode(std::string_view code) const;
  bool contains(std::string_view system, std::string_view code) const;
};

class Definitions {
 public:
  // Reads every *.json under `directory` (StructureDefinition, ValueSet, CodeSystem, or a Bundle
  // of them); compiles invariants; expands value sets. Fails on an unreadable directory, malformed
  // JSON or a snapshot-less StructureDefinition, naming the file.
  static Result<std::shared_ptr<const Definitions>> load(const std::string& directory);
  // The same from JSON texts already in memory (tests, embedded use).
  static Result<std::shared_ptr<const Definitions>> loadTexts(
      const std::vector<std::pair<std::string, std::string>>& nameAndText);

  // The base definition of a type or resource ("Patient", "HumanName", "date"); null if absent.
  const StructureDefinition* type(std::string_view name) const;
  // Any StructureDefinition by canonical URL (a version suffix "|5.0.1" is ignored), or by id.
  const StructureDefinition* byUrl(std::string_view url) const;
  // Expansion of a value set by canonical URL; null when the value set is not shipped.
  const ValueSetExpansion* valueSet(std::string_view url) const;
  bool isPrimitive(std::string_view typeCode) const;
  bool isResourceType(std::string_view name) const;
  std::vector<std::string> profileUrls() const;  // the constraint profiles loaded
  // Extension.value[x] (its typed names decide what `value` means in ext-1); null if absent.
  const ElementDef* extensionValue() const { return extensionValue_; }

 private:
  Result<void> add(const std::string& file, const rapidjson::Value& resource);
  Result<void> finish();

  std::vector<std::unique_ptr<StructureDefinition>> structures_;
  std::unordered_map<std::string, const StructureDefinition*, StringHash, std::equal_to<>> types_;
  std::unordered_map<std::string, const StructureDefinition*> urls_;
  std::map<std::string, std::shared_ptr<rapidjson::Document>, std::less<>> valueSetSources_;
  std::map<std::string, std::shared_ptr<rapidjson::Document>, std::less<>> codeSystems_;
  std::unordered_map<std::string, ValueSetExpansion> valueSets_;
  const ElementDef* extensionValue_ = nullptr;
};

// "valueDateTime" with choice "value[x]" -> "DateTime"; the suffix of a JSON key for a type code.
std::string choiceSuffix(std::string_view typeCode);

}  // namespace switchboard::fhir
