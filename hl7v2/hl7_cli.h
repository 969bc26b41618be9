// `switchboard hl7 parse FILE [--json|--er7]` and `switchboard hl7 check FILE`.
// Thread-safety: stateless apart from writing to stdout/stderr.
#pragma once

#include <string>

#include "hl7v2/message.h"

namespace switchboard::hl7v2 {

// argv[0] is "hl7". Returns the process exit code: 0 success, 1 bad input, 2 usage.
int runHl7Command(int argc, char** argv);

// JSON view of a message: {"type","trigger","structure","controlId","version","delimiters",
// "segments":[{"id":"PID","fields":[...]}]} where fields[i] is field i+1, values decoded. A field
// is a string when it is one plain value, else an array of repetitions; a repetition is a string
// or an array of components; a component is a string or an array of subcomponents.
std::string toJson(const Message& m);

}  // namespace switchboard::hl7v2
