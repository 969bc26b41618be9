// ER7 parse and serialise, and the MSH facts: see message.h. Thread-safety: see message.h.
#include "hl7v2/message.h"

#include <algorithm>
#include <cstdio>

namespace switchboard::hl7v2 {
namespace {

std::unexpected<Error> structureError(size_t offset, std::string message) {
  return fail(ErrorCode::kStructure, std::move(message), "byte " + std::to_string(offset));
}

// Bytes from untrusted input shown in an error: printable ASCII as is, the rest as \xHH.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", u);
      out += buf;
    }
  }
  return out;
}

bool isIdChar(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

template <typename Part, typename Fn>
std::vector<Part> splitOn(std::string_view raw, int delimiter, Fn&& makePart) {
  std::vector<Part> parts;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (Delimiters::matches(delimiter, raw[i])) {
      parts.push_back(makePart(raw.substr(start, i - start)));
      start = i + 1;
    }
  }
  parts.push_back(makePart(raw.substr(start)));
  return parts;
}

// Splits `line` (one segment without terminator, after its id) on the field separator.
void parseFields(std::string_view rest, const Delimiters& d, std::vector<Field>& fields) {
  // `rest` starts with a field separator; each separator opens one field.
  size_t start = 1;
  for (size_t i = 1; i <= rest.size(); ++i) {
    if (i == rest.size() || d.isField(rest[i])) {
      fields.push_back(parseField(rest.substr(start, i - start), d));
      start = i + 1;
    }
  }
}

Field atomicField(std::string value) {
  Field f;
  f.repetitions.push_back(Repetition{{Component{{std::move(value)}}}});
  return f;
}

}  // namespace

Component parseComponent(std::string_view raw, const Delimiters& d) {
  Component c;
  c.subcomponents =
      splitOn<std::string>(raw, d.subcomponent, [](std::string_view s) { return std::string(s); });
  return c;
}

Repetition parseRepetition(std::string_view raw, const Delimiters& d) {
  Repetition r;
  r.components = splitOn<Component>(raw, d.component,
                                    [&d](std::string_view s) { return parseComponent(s, d); });
  return r;
}

Field parseField(std::string_view raw, const Delimiters& d) {
  Field f;
  f.repetitions = splitOn<Repetition>(raw, d.repetition,
                                      [&d](std::string_view s) { return parseRepetition(s, d); });
  return f;
}

Field emptyField() { return atomicField(std::string()); }

std::string normaliseSegmentEnds(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out.push_back(text[i] == '\n' ? '\r' : text[i]);
  }
  return out;
}

void appendComponent(std::string& out, const Component& c, const Delimiters& d) {
  for (size_t i = 0; i < c.subcomponents.size(); ++i) {
    if (i > 0) out.push_back(static_cast<char>(d.subcomponent));
    out += c.subcomponents[i];
  }
}

void appendRepetition(std::string& out, const Repetition& r, const Delimiters& d) {
  for (size_t i = 0; i < r.components.size(); ++i) {
    if (i > 0) out.push_back(static_cast<char>(d.component));
    appendComponent(out, r.components[i], d);
  }
}

void appendField(std::string& out, const Field& f, const Delimiters& d) {
  for (size_t i = 0; i < f.repetitions.size(); ++i) {
    if (i > 0) out.push_back(static_cast<char>(d.repetition));
    appendRepetition(out, f.repetitions[i], d);
  }
}

void appendSegment(std::string& out, const Segment& s, const Delimiters& d) {
  out += s.id;
  const bool msh = s.id == "MSH";
  for (size_t i = 0; i < s.fields.size(); ++i) {
    if (msh && i == 0) continue;  // MSH-1 is the separator written before MSH-2
    out.push_back(static_cast<char>(d.field));
    appendField(out, s.fields[i], d);
  }
}

Result<Message> Message::parse(std::string_view in, const ParseLimits& limits) {
  if (in.empty()) return structureError(0, "empty message: an HL7 v2 message starts with MSH");
  if (in.size() > limits.maxBytes) {
    return fail(ErrorCode::kTooLong,
                "message of " + std::to_string(in.size()) + " bytes exceeds the limit of " +
                    std::to_string(limits.maxBytes),
                "byte " + std::to_string(limits.maxBytes));
  }
  if (in.size() >= 3 && static_cast<unsigned char>(in[0]) == 0xEF &&
      static_cast<unsigned char>(in[1]) == 0xBB && static_cast<unsigned char>(in[2]) == 0xBF) {
    return structureError(0, "message starts with a UTF-8 byte order mark instead of MSH");
  }
  if (in.size() < 3 || in.substr(0, 3) != "MSH") {
    return structureError(0, "message does not start with an MSH segment (starts with '" +
                                 printable(in.substr(0, 3)) + "')");
  }
  if (in.size() < 5) {
    return structureError(in.size(),
                          "MSH segment too short: it needs MSH, the field separator (MSH-1) and "
                          "at least one encoding character (MSH-2)");
  }
  Message m;
  Delimiters& d = m.delimiters_;
  const char fs = in[3];
  if (fs == '\r' || fs == '\n') {
    return structureError(3, "MSH-1 (field separator) is a line break");
  }
  d.field = static_cast<unsigned char>(fs);
  size_t msh2End = 4;
  while (msh2End < in.size() && in[msh2End] != fs && in[msh2End] != '\r') ++msh2End;
  std::string_view msh2 = in.substr(4, msh2End - 4);
  if (msh2.empty()) return structureError(4, "MSH-2 (encoding characters) is empty");
  if (msh2.size() > 5) {
    return structureError(4, "MSH-2 (encoding characters) has " + std::to_string(msh2.size()) +
                                 " characters; at most 5 are defined");
  }
  for (size_t i = 0; i < msh2.size(); ++i) {
    if (msh2[i] == '\n') return structureError(4 + i, "MSH-2 holds a line feed");
    for (size_t j = 0; j < i; ++j) {
      if (msh2[i] == msh2[j]) {
        return structureError(
            4 + i, "MSH-2 repeats the encoding character '" + printable(msh2.substr(i, 1)) + "'");
      }
    }
  }
  int* slots[] = {&d.component, &d.repetition, &d.escape, &d.subcomponent, &d.truncation};
  for (int* s : slots) *s = kNone;
  for (size_t i = 0; i < msh2.size(); ++i) *slots[i] = static_cast<unsigned char>(msh2[i]);

  // Bound the tree before building it.
  size_t elements = 4;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '\r' || d.isField(c)) {
      elements += 4;
    } else if (d.isRepetition(c)) {
      elements += 3;
    } else if (d.isComponent(c)) {
      elements += 2;
    } else if (d.isSubcomponent(c)) {
      elements += 1;
    } else {
      continue;
    }
    if (elements > limits.maxElements) {
      return fail(ErrorCode::kTooLong,
                  "message has more than " + std::to_string(limits.maxElements) +
                      " elements (fields, repetitions, components, subcomponents)",
                  "byte " + std::to_string(i));
    }
  }

  // Segments: split on CR; a CR at the very end ends the last segment.
  size_t pos = 0;
  size_t number = 0;
  m.endsWithTerminator_ = in.back() == '\r';
  const size_t end = m.endsWithTerminator_ ? in.size() - 1 : in.size();
  while (pos <= end) {
    size_t cr = in.find('\r', pos);
    if (cr == std::string_view::npos || cr > end) cr = end;
    std::string_view line = in.substr(pos, cr - pos);
    ++number;
    const std::string where = "segment " + std::to_string(number);
    if (number == 1) {
      Segment s;
      s.id = "MSH";
      s.fields.push_back(atomicField(std::string(1, fs)));
      s.fields.push_back(atomicField(std::string(msh2)));
      if (line.size() > msh2End) parseFields(line.substr(msh2End), d, s.fields);
      m.segments_.push_back(std::move(s));
    } else {
      if (line.empty()) {
        return structureError(pos, where + " is empty (two segment terminators in a row)");
      }
      if (line.size() < 3 || !isIdChar(line[0]) || !isIdChar(line[1]) || !isIdChar(line[2]) ||
          (line.size() > 3 && !d.isField(line[3]))) {
        // Only the first four bytes are shown: enough for the id, too few to carry patient data.
        std::string_view shown = line.substr(0, std::min<size_t>(line.size(), 4));
        if (line[0] == '\n') {
          return structureError(pos, where +
                                         " starts with a line feed: HL7 v2 segments end "
                                         "with CR alone, not CR LF");
        }
        return structureError(pos, where +
                                       " does not start with a segment id of three "
                                       "upper-case letters or digits followed by the field "
                                       "separator (found '" +
                                       printable(shown) + "')");
      }
      Segment s;
      s.id = std::string(line.substr(0, 3));
      if (s.id == "MSH") {
        return structureError(pos, where +
                                       " is a second MSH: one message per parse (batches "
                                       "and concatenated messages are not supported)");
      }
      if (line.size() > 3) parseFields(line.substr(3), d, s.fields);
      m.segments_.push_back(std::move(s));
    }
    pos = cr + 1;
    if (cr == end) break;
  }
  return m;
}

Message Message::create(const Delimiters& d) {
  Message m;
  m.delimiters_ = d;
  Segment s;
  s.id = "MSH";
  s.fields.push_back(atomicField(std::string(1, static_cast<char>(d.field))));
  s.fields.push_back(atomicField(d.encodingCharacters()));
  m.segments_.push_back(std::move(s));
  m.endsWithTerminator_ = true;
  return m;
}

std::string Message::toEr7() const {
  std::string out;
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (i > 0) out.push_back('\r');
    appendSegment(out, segments_[i], delimiters_);
  }
  if (endsWithTerminator_) out.push_back('\r');
  return out;
}

size_t Message::count(std::string_view id) const {
  return static_cast<size_t>(std::count_if(segments_.begin(), segments_.end(),
                                           [id](const Segment& s) { return s.id == id; }));
}

const Segment* Message::segment(std::string_view id, size_t occurrence) const {
  size_t seen = 0;
  for (const auto& s : segments_) {
    if (s.id == id && ++seen == occurrence) return &s;
  }
  return nullptr;
}

namespace {
std::string valueOr(const Result<std::string>& r) { return r ? *r : std::string(); }
}  // namespace

std::string Message::messageCode() const { return valueOr(get("MSH-9.1")); }
std::string Message::triggerEvent() const { return valueOr(get("MSH-9.2")); }
std::string Message::controlId() const { return valueOr(get("MSH-10")); }
std::string Message::version() const { return valueOr(get("MSH-12.1")); }

std::string Message::messageStructure() const {
  std::string s = valueOr(get("MSH-9.3"));
  if (!s.empty()) return s;
  const std::string code = messageCode();
  const std::string trigger = triggerEvent();
  if (code == "ACK") return "ACK";
  struct Entry {
    const char* code;
    const char* trigger;
    const char* structure;
  };
  static constexpr Entry kTable[] = {
      {"ADT", "A01", "ADT_A01"}, {"ADT", "A04", "ADT_A01"}, {"ADT", "A08", "ADT_A01"},
      {"ADT", "A28", "ADT_A05"}, {"ADT", "A31", "ADT_A05"}, {"ADT", "A40", "ADT_A39"},
      {"SIU", "S12", "SIU_S12"}, {"SIU", "S13", "SIU_S12"}, {"SIU", "S14", "SIU_S12"},
      {"SIU", "S15", "SIU_S12"}, {"SIU", "S26", "SIU_S12"},
  };
  for (const auto& e : kTable) {
    if (code == e.code && trigger == e.trigger) return e.structure;
  }
  return "";
}

}  // namespace switchboard::hl7v2
