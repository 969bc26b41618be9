// `switchboard fhirpath EXPRESSION FILE`: evaluates an expression over a FHIR JSON or XML file and
// prints the result as a JSON array. Thread-safety: stateless; writes to stdout/stderr.
#pragma once

namespace switchboard::fhirpath {

// argv[0] = "fhirpath", argv[1] = EXPRESSION, argv[2] = FILE (JSON or XML, detected by content).
// Exit codes: 0 result printed; 2 syntax or semantic/execution error in the expression (message on
// stderr with position); 1 usage error or unreadable/unparsable input.
int runFhirpathCommand(int argc, char** argv);

}  // namespace switchboard::fhirpath
