// The compiled form of a mapping file, shared by its loader (mapping.cc), the general evaluator
// that runs every expression through the FHIRPath engine (mapping.cc) and the planned evaluator
// that runs compiled plans over RapidJSON (mapping_plan.cc). Not part of the module's interface.
// Thread-safety: built once by Mapping::load(), immutable afterwards.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/fhirpath/fhirpath.h"
#include "engine/mapping/concept_map.h"
#include "engine/mapping/mapping.h"
#include "engine/mapping/plan_expr.h"

namespace switchboard::mapping {
namespace detail {

using JsonValue = rapidjson::Value;

struct TNode;
using TNodePtr = std::unique_ptr<TNode>;

struct Piece {
  std::string text;                          // literal text, or the expression source
  std::optional<fhirpath::Expression> expr;  // set for `{{ }}` pieces
  const Plan* plan = nullptr;                // its plan, when the mapping is planned
};

struct Member {
  std::string key;
  TNodePtr node;
  int slot = -1;        // $let: the variable's slot
  std::string keyJson;  // `"key":` as JSON text, for the planned writer
  // Planned writer: this member starts `run` members with fixed values, written together as
  // `runJson` (`"key":value,...` of those that do not vanish).
  std::size_t run = 0;
  std::string runJson;
};

struct TNode {
  // kFromHl7Date / kToHl7Date: $fromHl7Date, $toHl7Date (HL7 DTM <-> FHIR dates).
  enum class Kind {
    kLiteral,
    kExpr,
    kText,
    kObject,
    kArray,
    kTranslate,
    kLocalInstant,
    kFromHl7Date,
    kToHl7Date
  };
  Kind kind = Kind::kLiteral;
  std::string pointer;                 // JSON pointer in the mapping file
  const JsonValue* literal = nullptr;  // kLiteral: points into the mapping's own document
  std::string literalJson;    // kLiteral, or `fixed`: its JSON text, empty when it vanishes
  bool fixed = false;         // a literal, or an object or array of fixed parts without directives
  fhirpath::Expression expr;  // kExpr
  const Plan* exprPlan = nullptr;
  std::vector<Piece> pieces;       // kText
  std::vector<Member> members;     // kObject (plain members)
  std::vector<TNodePtr> elements;  // kArray
  // Directives of an object (kObject) or of an operator (kTranslate, kLocalInstant).
  std::optional<fhirpath::Expression> ifExpr;
  std::optional<fhirpath::Expression> eachExpr;
  const Plan* ifPlan = nullptr;
  const Plan* eachPlan = nullptr;
  std::string asName;
  int asSlot = -1, asIndexSlot = -1;
  std::vector<Member> lets;
  TNodePtr value;  // $value, $translate or $localInstant: replaces the object itself
  // kTranslate
  std::string mapName, select;
  enum class Select : std::uint8_t { kCoding, kCode, kSystem, kDisplay, kSourceDisplay };
  Select selectKind = Select::kCoding;      // `select`, named once at load
  const ConceptMapSet::Map* map = nullptr;  // mapName in Mapping::Impl::maps, found at load
  bool required = true;
  TNodePtr code, system;
  // kLocalInstant; kFromHl7Date and kToHl7Date use `date` (the value) and `zone`, and
  // kFromHl7Date `select` ("date", "dateTime" or "instant")
  TNodePtr date, time, zone, addMinutes;
};

// One segment template of an HL7 v2 output ("output": "hl7v2"): an object whose keys are HL7
// paths of one segment (`"PID-5.1"`), with the usual directives ($if, $each, $let).
struct SegmentSpec {
  std::string id;                  // the segment id its keys name
  TNodePtr node;                   // kObject
  std::vector<std::string> paths;  // by member: the key's path without the segment id
                                   // ("-5.1"), to be prefixed with "SEG[n]"
};

// The planned writer's program (mapping_plan.cc): the template laid out again after its plans
// are compiled, in two arrays of small steps with every fixed text (literals, `"key":`, runs of
// fixed members) in one buffer, so that the walk of a run reads a few adjacent bytes per node
// instead of the TNodes and Members spread over the heap.
struct EmitStep {
  // kTranslate: an object that is only a $translate (no $let, $if or $each), written from the
  // ConceptMap's answer without JSON values.
  enum class Op : std::uint8_t { kFixed, kExpr, kArray, kObject, kTranslate, kOther };
  Op op = Op::kOther;
  bool each = false;                   // kObject: with $each
  bool directives = false;             // kObject: with $let, $if or $value
  std::uint32_t bytes = 0, size = 0;   // kFixed: its text in programBytes (size 0: it vanishes)
  std::uint32_t first = 0, count = 0;  // kArray: its elements' steps; kObject: its MemberSteps
  const Plan* plan = nullptr;          // kExpr
  const TNode* node = nullptr;  // the template node (directives, text, operators; kTranslate: the
                                // $translate)
};

struct MemberStep {
  std::uint32_t bytes = 0, size = 0;  // `"key":`, or a run's text (`"key":value,...`)
  std::uint32_t step = 0;             // the value's EmitStep (not for a run)
  bool fixedRun = false;              // members with fixed values, written together
  bool repeated = false;              // the value is an object with $each: always an array
  const Plan* plan = nullptr;         // the value's plan when that step is one expression (kExpr)
};

struct ResourceSpec {
  std::string key;
  std::string resourceType;
  std::string pointer;
  std::optional<fhirpath::Expression> ifExpr;
  std::optional<fhirpath::Expression> identity;  // replaces the input key in this resource's uuid
  const Plan* ifPlan = nullptr;
  const Plan* identityPlan = nullptr;
  TNodePtr resource;
  std::uint32_t step = 0;  // the resource's EmitStep (planned)
  std::string uuidPrefix;  // "<mapping id>/<key>/", the start of its uuid's name (planned)
  std::vector<Piece> ifNoneExist;  // the search (percent-encoded parts)
  // "conditional": "update": PUT <type>?<search> instead of POST with ifNoneExist.
  bool update = false;
};

// The error of a conditional update whose search yields nothing for an input (it would otherwise
// create a new resource each time).
std::string emptyUpdateSearch(const ResourceSpec& spec);

struct Assertion {
  fhirpath::Expression that;
  std::string message;
  std::string field;
  const Plan* plan = nullptr;
};

// Helpers shared by both evaluators.

// Whether `s` holds nothing but whitespace (std::isspace in the "C" locale, without the call);
// inline: the planned walk asks it of every string it writes.
inline bool isBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r') return false;
  }
  return true;
}
std::string quoteValue(std::string_view v);  // short, printable, quoted
void percentEncode(std::string_view s, std::string& out);
// Removes nulls, blank strings and empty objects/arrays; true when `v` itself is left empty.
bool prune(JsonValue& v);
// The FHIRPath of a single-expression node, else its JSON pointer.
std::string locationOf(const TNode* n);

// The channel variables that always exist (empty when the channel does not know them).
inline constexpr const char* kChannelVariables[] = {
    "sender",   "sender_raw",          "channel",   "facility", "receivedAt", "timezone",
    "provider", "provider_message_id", "flow_token"};

}  // namespace detail

struct Mapping::Impl {
  std::string file;
  std::string id;
  std::string conceptMapDir;
  bool flowInput = false;
  bool hl7Input = false;   // "input": "hl7v2": the input is ER7, mapped as hl7InputJson()
  bool hl7Output = false;  // "output": "hl7v2": `segments` gives an ER7 message
  bool transaction = true;
  std::vector<detail::SegmentSpec> segments;
  // hl7('PATH') expressions: rewritten text -> the text as written, for error messages.
  mutable std::map<std::string, std::string> hl7Rewritten;
  std::shared_ptr<rapidjson::Document> doc;  // the mapping file; literals point into it
  std::shared_ptr<const ConceptMapSet> maps;
  std::string zoneinfoRoot;
  std::map<std::string, fhirpath::Collection, std::less<>> defaults;
  std::optional<fhirpath::Expression> keyExpr;
  std::vector<fhirpath::Expression> required;
  std::vector<detail::Assertion> assertions;
  std::vector<detail::ResourceSpec> resources;

  // ---- compiled plans (mapping_plan.cc); `planned` false when an expression has none
  bool planned = false;
  SlotTable slots;
  SlotTable names;  // the member names the plans read (PlanScope::inputMembers)
  // Holds the plans side by side (Plan::compile); declared first, so destroyed after them.
  std::unique_ptr<std::pmr::monotonic_buffer_resource> planMemory;
  std::vector<std::shared_ptr<const Plan>> plans;  // owns what the nodes point at, one per text
  int memoCount = 0;         // plans whose result is kept for the rest of a run (Plan::memo)
  bool rawNonAscii = false;  // literal or key text written as it is holds bytes outside ASCII
  const Plan* keyPlan = nullptr;
  std::vector<const Plan*> requiredPlans;
  std::vector<std::vector<Val>> defaultVals;  // by slot; views into `defaults`
  std::vector<bool> hasDefault;               // by slot
  int slotInput = -1, slotSender = -1, slotRef = -1, slotId = -1, slotTimezone = -1;
  std::vector<int> channelSlots;
  struct SlotName {
    std::uint32_t offset, size;  // in slotNameBytes
    int slot;
  };
  std::vector<SlotName> slotOrder;  // the slots by name, as slots.names() orders them
  std::string slotNameBytes;
  std::vector<detail::EmitStep> program;  // the planned writer's steps (detail::EmitStep)
  std::vector<detail::MemberStep> programMembers;
  std::string programBytes;
  // Compiles every expression to a plan and numbers the variables (after loading).
  void compilePlans();
  Result<MappingOutput> runPlanned(std::string_view input, const fhirpath::Environment& variables,
                                   bool& declined) const;

  Error loadError(const std::string& pointer, const std::string& what) const {
    return Error(ErrorCode::kInvalid, file + ": " + (pointer.empty() ? "/" : pointer) + ": " + what,
                 pointer);
  }
  Result<fhirpath::Expression> compileExpr(const detail::JsonValue& v,
                                           const std::string& pointer) const;
  Result<detail::TNodePtr> compile(const detail::JsonValue& v, const std::string& pointer) const;
  Result<void> compileObject(const detail::JsonValue& v, detail::TNode& node) const;
  // "segments" of an HL7 v2 output (mapping.cc).
  Result<void> compileSegments();
};

}  // namespace switchboard::mapping
