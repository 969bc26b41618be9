// HL7 v2 element paths: `SEG[occurrence]-field(repetition).component.subcomponent`, every part
// after the segment id optional from the right and every number 1-based, e.g. `PID-5.1`,
// `PID-3(2).1`, `OBX[2]-5`, `MSH-9.2`. Thread-safety: plain value.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace switchboard::hl7v2 {

struct Path {
  std::string segment;      // three upper-case letters or digits
  size_t occurrence = 1;    // [n]: n-th segment with this id
  size_t field = 0;         // 0: the whole segment
  size_t repetition = 0;    // (n); 0: not given (reads: whole field, or the first repetition
                            // when a component is named)
  size_t component = 0;     // 0: not given
  size_t subcomponent = 0;  // 0: not given

  // Fails (kInvalid, location = the path) on anything but the grammar above, on 0 and on
  // numbers above kMaxPathIndex.
  static Result<Path> parse(std::string_view text);
  std::string toString() const;
};

}  // namespace switchboard::hl7v2
