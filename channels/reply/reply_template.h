// Plain-text reply templates with FHIRPath placeholders, evaluated over the FHIR transaction
// Bundle the EHR received:
//   {{ EXPR }}             the items of EXPR as text, joined with ", " (empty result: nothing)
//   {{#if EXPR}} ... {{else}} ... {{/if}}
//                          EXPR is true when it yields a single true, or any non-boolean item
//   {{! comment }}         dropped
// A block tag or comment alone on its line takes the whole line with it, so templates can put
// each tag on its own line without leaving blank lines. Every expression is compiled by parse(),
// so a broken template is refused when the channel is deployed, not on the first message.
// Thread-safety: a parsed ReplyTemplate is immutable; render() may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/fhirpath/fhirpath.h"

namespace switchboard::channels::reply {

class ReplyTemplate {
 public:
  // `source` names the template (a file path) in error messages, which carry "line N".
  static Result<ReplyTemplate> parse(std::string_view text, std::string source);

  // Renders over `focus` (the Bundle) with `env` (its %variables). Evaluation errors name the
  // source, line and expression.
  Result<std::string> render(const fhirpath::Node& focus, const fhirpath::Environment& env) const;

  const std::string& source() const { return source_; }
  // Names of the %variables the expressions use (without '%'), sorted, without duplicates.
  const std::vector<std::string>& variables() const { return variables_; }

  struct Part {
    enum class Kind { kText, kValue, kIf };
    Kind kind = Kind::kText;
    std::string text;  // kText: literal; kValue / kIf: the expression text
    int line = 1;
    fhirpath::Expression expr;
    std::vector<Part> then, otherwise;
  };

 private:
  std::string source_;
  std::vector<Part> parts_;
  std::vector<std::string> variables_;
};

// The %names an expression refers to, outside string literals ("%`vs-x`" gives "vs-x").
std::vector<std::string> referencedVariables(std::string_view expression);

// Text of a collection as {{ }} prints it: primitives in FHIRPath string form, joined with ", ";
// complex elements are skipped.
std::string collectionText(const fhirpath::Collection& items);
// FHIRPath truthiness used by {{#if}}: empty = false; a single boolean = itself; else true.
bool collectionTruth(const fhirpath::Collection& items);

}  // namespace switchboard::channels::reply
