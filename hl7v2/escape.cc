// HL7 v2 escape sequences: see escape.h. Thread-safety: pure functions.
#include "hl7v2/escape.h"

namespace switchboard::hl7v2 {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decoded form of one escape sequence body (between the escape characters); false when the
// sequence is not one this function decodes.
bool decodeSequence(std::string_view body, const Delimiters& d, std::string& out) {
  if (body.size() == 1) {
    int ch = kNone;
    switch (body[0]) {
      case 'F':
        ch = d.field;
        break;
      case 'S':
        ch = d.component;
        break;
      case 'T':
        ch = d.subcomponent;
        break;
      case 'R':
        ch = d.repetition;
        break;
      case 'E':
        ch = d.escape;
        break;
      case 'P':
        ch = d.truncation;
        break;
      default:
        return false;
    }
    if (ch == kNone) return false;
    out.push_back(static_cast<char>(ch));
    return true;
  }
  if (body.size() >= 3 && body[0] == 'X' && (body.size() - 1) % 2 == 0) {
    std::string bytes;
    for (size_t i = 1; i < body.size(); i += 2) {
      int hi = hexValue(body[i]);
      int lo = hexValue(body[i + 1]);
      if (hi < 0 || lo < 0) return false;
      bytes.push_back(static_cast<char>(hi * 16 + lo));
    }
    out += bytes;
    return true;
  }
  return false;
}

}  // namespace

std::string decode(std::string_view raw, const Delimiters& d) {
  if (d.escape == kNone) return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    char c = raw[i];
    if (!d.isEscape(c)) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t close = i + 1;
    while (close < raw.size() && !d.isEscape(raw[close])) ++close;
    if (close >= raw.size()) {  // no closing escape character: the rest is literal text
      out.append(raw.substr(i));
      break;
    }
    std::string_view body = raw.substr(i + 1, close - i - 1);
    if (!decodeSequence(body, d, out)) out.append(raw.substr(i, close - i + 1));
    i = close + 1;
  }
  return out;
}

Result<std::string> encode(std::string_view text, const Delimiters& d) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    const char* seq = nullptr;
    if (d.isField(c)) {
      seq = "F";
    } else if (d.isComponent(c)) {
      seq = "S";
    } else if (d.isSubcomponent(c)) {
      seq = "T";
    } else if (d.isRepetition(c)) {
      seq = "R";
    } else if (d.isEscape(c)) {
      seq = "E";
    } else if (Delimiters::matches(d.truncation, c)) {
      seq = "P";
    } else if (c == '\r') {
      seq = "X0D";
    } else if (c == '\n') {
      seq = "X0A";
    }
    if (seq == nullptr) {
      out.push_back(c);
      continue;
    }
    if (d.escape == kNone) {
      return fail(ErrorCode::kValue,
                  "the text holds a delimiter, CR or LF and the message declares no escape "
                  "character (MSH-2) to write it with");
    }
    out.push_back(static_cast<char>(d.escape));
    out += seq;
    out.push_back(static_cast<char>(d.escape));
  }
  return out;
}

}  // namespace switchboard::hl7v2
