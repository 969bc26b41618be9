// HL7 v2 delimiters of one message, read from MSH-1 and MSH-2.
// Thread-safety: plain value, safe to copy across threads.
#pragma once

#include <string>

namespace switchboard::hl7v2 {

// A delimiter that a message does not declare (MSH-2 shorter than four characters, or no
// truncation character before v2.7) is kNone and never matches a byte.
inline constexpr int kNone = -1;

struct Delimiters {
  int field = '|';
  int component = '^';
  int repetition = '~';
  int escape = '\\';
  int subcomponent = '&';
  int truncation = kNone;  // v2.7+: fifth MSH-2 character

  static bool matches(int delimiter, char c) {
    return delimiter != kNone && static_cast<unsigned char>(c) == delimiter;
  }
  bool isField(char c) const { return matches(field, c); }
  bool isComponent(char c) const { return matches(component, c); }
  bool isRepetition(char c) const { return matches(repetition, c); }
  bool isEscape(char c) const { return matches(escape, c); }
  bool isSubcomponent(char c) const { return matches(subcomponent, c); }

  // MSH-2 as it would be written: the declared encoding characters in standard order.
  std::string encodingCharacters() const {
    std::string s;
    for (int d : {component, repetition, escape, subcomponent, truncation}) {
      if (d == kNone) break;
      s.push_back(static_cast<char>(d));
    }
    return s;
  }
};

}  // namespace switchboard::hl7v2
