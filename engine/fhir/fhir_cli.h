// `switchboard validate FILE [--profile URL]` (and `switchboard lint`): the analyst commands of
// engine/fhir. Thread-safety: stateless; they write to stdout/stderr.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/fhir/lint.h"

namespace switchboard::fhir {

// argv[0] = "validate". Prints the OperationOutcome of FILE (FHIR JSON or XML) to stdout.
// Exit codes: 0 no error-severity issue; 1 errors (including unparsable content); 2 usage error,
// unreadable file, unknown profile or missing fhir-profiles/.
int runValidateCommand(int argc, char** argv);

// argv[0] = "lint". Lints each MAPPING file (default: mappings/*.json) against fhir-profiles/ and
// prints one line per finding ("file: /pointer (FHIR path): message").
// Exit codes: 0 clean; 1 findings; 2 usage error, no mapping files or missing fhir-profiles/.
int runLintCommand(int argc, char** argv);
// The same, with `extra` findings for each file after the profile lint's (the app adds what
// loading the mapping refuses: unknown keys, uncompilable expressions, ...).
int runLintCommandWith(
    int argc, char** argv,
    const std::function<std::vector<LintFinding>(const std::string& file)>& extra);

// Where fhir-profiles/ is: $SWITCHBOARD_FHIR_PROFILES, ./fhir-profiles, next to the executable's
// source tree (build/bin/../../fhir-profiles), then the source tree the library was built from.
std::string findProfilesDirectory(const char* argv0);

}  // namespace switchboard::fhir
