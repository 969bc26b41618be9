// A fast path for the simplest FHIRPath expressions of mapping files (`field`, `%var.member`,
// `field.trim()`, `field.exists()`, `field = 'code'`, `field.trim() != ''`,
// `field in ('a' | 'b')`) over untyped JSON:
// the same results as the FHIRPath engine without its general machinery. Anything it cannot
// decide (typed resources, choice elements, primitive extensions, several items where one is
// needed, unknown variables) is left to the FHIRPath engine.
// Thread-safety: plans are immutable; evaluation only reads its arguments.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/fhirpath/fhirpath.h"

namespace switchboard::mapping {

struct FastPlan {
  std::string var;  // "%var" start when non-empty, else the focus
  std::vector<std::string> path;
  enum class Fn { kNone, kTrim, kLower, kExists } fn = Fn::kNone;
  enum class Op { kNone, kEq, kNe, kIn } op = Op::kNone;
  std::string literal;                // kEq, kNe
  std::vector<std::string> literals;  // kIn: `path in ('a' | 'b' | ...)`
};

// The plan for `text`, or empty when the expression is not one of the simple forms.
std::optional<FastPlan> planFast(std::string_view text);

// The result, or empty optional when the FHIRPath engine must decide.
std::optional<fhirpath::Collection> runFast(const FastPlan& plan, const fhirpath::Node& focus,
                                            const fhirpath::Environment& env);

// For plans without an operator and with no function or trim(): the result as JSON values of the
// input or variables (`values`) or, for trim() and string variables, one string (`text`), without
// building FHIRPath nodes. False when the engine must decide.
bool runFastJson(const FastPlan& plan, const fhirpath::Node& focus,
                 const fhirpath::Environment& env, std::vector<const rapidjson::Value*>& values,
                 std::optional<std::string>& text);

}  // namespace switchboard::mapping
