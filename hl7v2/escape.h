// HL7 v2 escape sequences (v2.5.1 section 2.7): decoding stored ER7 values to text and encoding
// text for writing. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/error.h"
#include "hl7v2/delimiters.h"

namespace switchboard::hl7v2 {

// Text of an ER7 value with the message's own delimiters `d`:
//   \F\ \S\ \T\ \R\ \E\ become the field, component, subcomponent, repetition and escape
//   characters, \P\ the truncation character (when declared), and \Xhh..\ the bytes it spells
//   (an even, non-zero count of hex digits).
// Every other sequence (\H\ \N\ \.br\ \Zxx\ \Cxxyy\ \Mxxyyzz\ and unknown letters, bad hex,
// an escape character with no closing one) is kept verbatim, escape characters included.
// A message with no escape character has nothing to decode: the value is returned as is.
std::string decode(std::string_view raw, const Delimiters& d);

// ER7 form of `text`: each delimiter character becomes its escape sequence, CR becomes
// \X0D\ and LF becomes \X0A\ (hex escapes). Fails (kValue) when the text holds a delimiter, CR or
// LF and the message declares no escape character to write it with.
Result<std::string> encode(std::string_view text, const Delimiters& d);

}  // namespace switchboard::hl7v2
