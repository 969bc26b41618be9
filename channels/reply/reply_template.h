// Plain-text reply templates with FHIRPath placeholders, evaluated over the FHIR transaction
// Bundle the EHR received:
//   {{ EXPR }}             the items of EXPR as text, joined with ", " (empty result: nothing)
//   {{#if EXPR}} ... {{else}} ... {{/if}}
//                          EXPR is true when it yields a single true, or any non-boolean item
//   {{! comment }}         dropped
// A block tag or comment alone on its line takes the whole line with it, so templates can put
// each tag on its own line without leaving blank lines. Every expression is compiled by parse(),
// so a broken template is refused when the channel is deployed, not on the first message, and
// where it can, also into a plan (reply_plan.h) that render() runs instead of the general
// engine; renderWithEngine() is the reference that plans must match byte for byte.
// Thread-safety: a parsed ReplyTemplate is immutable; render() may be called concurrently.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "channels/reply/reply_plan.h"
#include "engine/core/error.h"
#include "engine/fhirpath/fhirpath.h"

namespace switchboard::channels::reply {

class ReplyTemplate {
 public:
  // `source` names the template (a file path) in error messages, which carry "line N".
  static Result<ReplyTemplate> parse(std::string_view text, std::string source);

  // Renders over `focus` (the Bundle) with `env` (its %variables). Evaluation errors name the
  // source, line and expression.
  // Each expression runs as its plan where it has one and the plan decides, else through the
  // general engine. `stats` (optional) counts which did.
  struct RenderStats {
    int planned = 0;  // expressions a plan decided
    int engine = 0;   // expressions the general engine evaluated
  };
  Result<std::string> render(const fhirpath::Node& focus, const fhirpath::Environment& env,
                             RenderStats* stats = nullptr) const;
  // The same with the %variables as text (PlanVariables: an empty text is an empty collection):
  // `engineEnv` gives the same variables as an Environment, and is only called when an
  // expression needs the general engine.
  Result<std::string> render(const fhirpath::Node& focus, const PlanVariables& variables,
                             const std::function<const fhirpath::Environment&()>& engineEnv,
                             RenderStats* stats = nullptr) const;
  // The same through the general engine only (the reference for the plans).
  Result<std::string> renderWithEngine(const fhirpath::Node& focus,
                                       const fhirpath::Environment& env) const;

  const std::string& source() const { return source_; }
  // Names of the %variables the expressions use (without '%'), sorted, without duplicates.
  const std::vector<std::string>& variables() const { return variables_; }

  struct Part {
    enum class Kind { kText, kValue, kIf };
    Kind kind = Kind::kText;
    std::string text;  // kText: literal; kValue / kIf: the expression text
    int line = 1;
    fhirpath::Expression expr;
    std::shared_ptr<const ReplyPlan> plan;  // null: the engine evaluates `expr`
    std::vector<Part> then, otherwise;
  };

 private:
  std::string source_;
  std::vector<Part> parts_;
  std::vector<std::string> variables_;
  std::size_t memoSlots_ = 0;  // subexpressions the plans share within a render
};

// The %names an expression refers to, outside string literals ("%`vs-x`" gives "vs-x").
std::vector<std::string> referencedVariables(std::string_view expression);

// Text of a collection as {{ }} prints it: primitives in FHIRPath string form, joined with ", ";
// complex elements are skipped.
std::string collectionText(const fhirpath::Collection& items);
// FHIRPath truthiness used by {{#if}}: empty = false; a single boolean = itself; else true.
bool collectionTruth(const fhirpath::Collection& items);

}  // namespace switchboard::channels::reply
