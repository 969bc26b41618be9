// Static checks of mapping templates against fhir-profiles/: every output path of a template
// (a JSON object shaped like a FHIR resource, values possibly holding `{{ FHIRPath }}` and
// `$`-prefixed directives) must exist in the StructureDefinition with a compatible type, literal
// values must have the primitive's format, literal codes must be in required value sets, and
// required elements must not be missing from a literal object.
// Thread-safety: pure functions over immutable Definitions.
#pragma once

#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "engine/fhir/definitions.h"

namespace switchboard::fhir {

struct LintFinding {
  std::string file;
  std::string pointer;   // JSON pointer into the mapping file, e.g. /resources/0/resource/name
  std::string fhirPath;  // element path, e.g. Patient.name.given
  std::string message;
  int line = 0;  // 1-based line of the value in the file (lintMappingFile), 0 when unknown
};

// Lints a whole mapping file: {"resources": [{"key", "resource": {...}}, ...]}: each template, and
// each entry's "conditional" ("create" or "update", in a transaction, with a search in
// "ifNoneExist").
std::vector<LintFinding> lintMapping(const Definitions& definitions,
                                     const rapidjson::Value& mapping, const std::string& file);
// Lints one resource template found at `pointer` of `file`.
std::vector<LintFinding> lintResourceTemplate(const Definitions& definitions,
                                              const rapidjson::Value& resource,
                                              const std::string& file, const std::string& pointer);
// Reads and lints a mapping file; unreadable or malformed JSON is one finding at pointer "".
std::vector<LintFinding> lintMappingFile(const Definitions& definitions, const std::string& path);

// "file:line: /pointer (Patient.name): message" (":line" only when known).
std::string formatFinding(const LintFinding& finding);

}  // namespace switchboard::fhir
