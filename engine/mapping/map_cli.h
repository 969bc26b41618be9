// `switchboard map MAPPING INPUT [--var name=value ...]`: runs a mapping file over one input file
// and prints the result. Thread-safety: stateless apart from writing to stdout/stderr.
#pragma once

namespace switchboard::mapping {

// argv[0] = "map". Exit codes: 0 the Bundle (or resource list) printed on stdout, or for an HL7 v2
// output the ER7 bytes as they are (segments end with CR; --lines ends them with LF); 1 the mapping
// file does not load or the mapping fails (an OperationOutcome on stderr); 2 usage error or an
// unreadable input file.
int runMapCommand(int argc, char** argv);

}  // namespace switchboard::mapping
