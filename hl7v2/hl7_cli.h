// `switchboard hl7 parse FILE [--json|--er7]` and `switchboard hl7 check FILE`.
// Thread-safety: stateless apart from writing to stdout/stderr.
#pragma once

#include <string>

#include "hl7v2/message.h"

namespace switchboard::hl7v2 {

// argv[0] is "hl7". Returns the process exit code: 0 success, 1 bad input, 2 usage.
int runHl7Command(int argc, char** argv);

// JSON view of a message: {"type","trigger","structure","controlId","version","delimiters",
// "segments":[{"id":"PID","fields":[...]}]} where fields[i] is field i+1 and each level
// (field -> repetitions -> components -> subcomponents) is an array, or a decoded string when
// it has a single element.
std::string toJson(const Message& m);

}  // namespace switchboard::hl7v2
