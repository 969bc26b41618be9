// FHIR R4 resource validation against the StructureDefinitions of fhir-profiles/: unknown
// elements, cardinality, types (choice types included), primitive formats, required bindings,
// invariants (FHIRPath), references inside a Bundle, and profile constraints (US Core Patient).
// The result is a list of issues that becomes an OperationOutcome.
// Thread-safety: a Validator is immutable after construction; validate() may run concurrently
// from any number of threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"
#include "engine/fhir/definitions.h"
#include "engine/fhirpath/fhirpath.h"

namespace switchboard::fhir {

// One OperationOutcome.issue.
struct Issue {
  std::string severity;     // fatal | error | warning | information
  std::string code;         // IssueType: structure, required, value, invariant, code-invalid ...
  std::string diagnostics;  // what is wrong; quotes codes but never other values (PHI)
  std::string expression;   // FHIRPath location, e.g. "Patient.name[0].given[0]"
};

// How invariants that have a native implementation (engine/fhir/invariants.h) are decided.
enum class InvariantEngine {
  kNative,      // natively, with FHIRPath for the shapes the native code leaves open (default)
  kFhirPath,    // always by FHIRPath (the reference the native code is tested against)
  kCrossCheck,  // both; an "exception" error issue wherever they disagree (differential tests)
};

struct ValidationOptions {
  // Profiles (canonical URL or id) checked in addition to the base definitions, applied to the
  // resource itself and to each Bundle entry of the profile's type. meta.profile is honoured too.
  std::vector<std::string> profiles;
  // Report best-practice invariants (dom-6: narrative) as warnings; false drops them.
  bool bestPractice = true;
  // Evaluate invariants (FHIRPath constraints); false checks structure, types, formats,
  // cardinality and bindings only.
  bool invariants = true;
  InvariantEngine invariantEngine = InvariantEngine::kNative;
  // The walk decides the commonest members (a valid primitive, objects of a plain element: see
  // ChildSlot) without its general case analysis; false takes the general path for every member
  // (the reference the shortcuts are tested against). The issues are the same either way.
  bool shortcuts = true;
};

class Validator {
 public:
  explicit Validator(std::shared_ptr<const Definitions> definitions);
  // Loads the definitions under `directory` (e.g. fhir-profiles/).
  static Result<Validator> fromDirectory(const std::string& directory);

  // Validates a resource (a Bundle includes its entries and contained resources). `document`
  // holds the resource at its root, as fhirpath::parseResource() yields it (JSON or XML).
  std::vector<Issue> validate(const fhirpath::DocumentPtr& document,
                              const ValidationOptions& options = {}) const;
  // Copies `resource` into a document first.
  std::vector<Issue> validate(const rapidjson::Value& resource,
                              const ValidationOptions& options = {}) const;
  // Parses FHIR JSON or XML text; unparsable text yields one fatal "structure" issue.
  std::vector<Issue> validateText(std::string_view text,
                                  const ValidationOptions& options = {}) const;

  const Definitions& definitions() const { return *definitions_; }

 private:
  std::shared_ptr<const Definitions> definitions_;
};

// Whether any issue has severity error or fatal.
bool hasErrors(const std::vector<Issue>& issues);
// OperationOutcome JSON; an empty list becomes one "information" issue saying all is well.
void toOperationOutcome(const std::vector<Issue>& issues, rapidjson::Value& out,
                        rapidjson::Document::AllocatorType& alloc);
std::string toOperationOutcomeJson(const std::vector<Issue>& issues, bool pretty = false);

}  // namespace switchboard::fhir
