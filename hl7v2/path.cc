// Path parsing and Message path reads and writes: see path.h and message.h.
// Thread-safety: see message.h.
#include "hl7v2/path.h"

#include "hl7v2/escape.h"
#include "hl7v2/message.h"

namespace switchboard::hl7v2 {
namespace {

std::unexpected<Error> pathError(std::string_view text, std::string why) {
  return fail(ErrorCode::kInvalid, "bad HL7 path '" + std::string(text) + "': " + why,
              std::string(text));
}

// Reads a 1-based number at text[pos...]; false if there is none or it is out of range.
bool readNumber(std::string_view text, size_t& pos, size_t& value) {
  size_t start = pos;
  value = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    value = value * 10 + static_cast<size_t>(text[pos] - '0');
    if (value > kMaxPathIndex) return false;
    ++pos;
  }
  return pos > start && value >= 1;
}

}  // namespace

Result<Path> Path::parse(std::string_view text) {
  Path p;
  if (text.size() < 3) return pathError(text, "it must start with a three-character segment id");
  for (size_t i = 0; i < 3; ++i) {
    char c = text[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return pathError(text, "the segment id must be three upper-case letters or digits");
    }
  }
  p.segment = std::string(text.substr(0, 3));
  size_t pos = 3;
  const std::string range = "a number from 1 to " + std::to_string(kMaxPathIndex);
  if (pos < text.size() && text[pos] == '[') {
    ++pos;
    if (!readNumber(text, pos, p.occurrence) || pos >= text.size() || text[pos] != ']') {
      return pathError(text, "[occurrence] must hold " + range);
    }
    ++pos;
  }
  if (pos == text.size()) return p;
  if (text[pos] != '-') return pathError(text, "expected '-' and a field number after the segment");
  ++pos;
  if (!readNumber(text, pos, p.field)) return pathError(text, "the field must be " + range);
  if (pos < text.size() && text[pos] == '(') {
    ++pos;
    if (!readNumber(text, pos, p.repetition) || pos >= text.size() || text[pos] != ')') {
      return pathError(text, "(repetition) must hold " + range);
    }
    ++pos;
  }
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    if (!readNumber(text, pos, p.component)) {
      return pathError(text, "the component must be " + range);
    }
    if (pos < text.size() && text[pos] == '.') {
      ++pos;
      if (!readNumber(text, pos, p.subcomponent)) {
        return pathError(text, "the subcomponent must be " + range);
      }
    }
  }
  if (pos != text.size())
    return pathError(text, "unexpected text after position " + std::to_string(pos));
  return p;
}

std::string Path::toString() const {
  std::string s = segment;
  auto add = [&s](char open, size_t n, const char* close) {
    s.push_back(open);
    s += std::to_string(n);
    s += close;
  };
  if (occurrence != 1) add('[', occurrence, "]");
  if (field == 0) return s;
  add('-', field, "");
  if (repetition != 0) add('(', repetition, ")");
  if (component != 0) add('.', component, "");
  if (subcomponent != 0) add('.', subcomponent, "");
  return s;
}

namespace {

bool isMshAtom(const Path& p) { return p.segment == "MSH" && (p.field == 1 || p.field == 2); }

// Stored text at `p`, or "" when the element is absent.
std::string readRaw(const Message& m, const Path& p) {
  const Segment* s = m.segment(p.segment, p.occurrence);
  if (s == nullptr) return "";
  const Delimiters& d = m.delimiters();
  std::string out;
  if (p.field == 0) {
    appendSegment(out, *s, d);
    return out;
  }
  if (p.field > s->fields.size()) return "";
  const Field& f = s->fields[p.field - 1];
  if (isMshAtom(p)) {
    // MSH-1 and MSH-2 are single values: only their first repetition/component/subcomponent.
    if (p.repetition > 1 || p.component > 1 || p.subcomponent > 1) return "";
    return f.repetitions[0].components[0].subcomponents[0];
  }
  if (p.repetition == 0 && p.component == 0) {
    appendField(out, f, d);
    return out;
  }
  size_t rep = p.repetition == 0 ? 1 : p.repetition;
  if (rep > f.repetitions.size()) return "";
  const Repetition& r = f.repetitions[rep - 1];
  if (p.component == 0) {
    appendRepetition(out, r, d);
    return out;
  }
  if (p.component > r.components.size()) return "";
  const Component& c = r.components[p.component - 1];
  if (p.subcomponent == 0) {
    appendComponent(out, c, d);
    return out;
  }
  if (p.subcomponent > c.subcomponents.size()) return "";
  return c.subcomponents[p.subcomponent - 1];
}

enum class Level { kField, kRepetition, kComponent, kSubcomponent };

Level levelOf(const Path& p) {
  if (p.subcomponent != 0) return Level::kSubcomponent;
  if (p.component != 0) return Level::kComponent;
  if (p.repetition != 0) return Level::kRepetition;
  return Level::kField;
}

// Checks that `raw` holds no delimiter that cannot appear at `level`.
Result<void> checkRaw(std::string_view raw, Level level, const Delimiters& d,
                      std::string_view path) {
  for (char c : raw) {
    const char* what = nullptr;
    if (c == '\r' || c == '\n') {
      what = "a line break";
    } else if (d.isField(c)) {
      what = "the field separator";
    } else if (level != Level::kField && d.isRepetition(c)) {
      what = "the repetition separator";
    } else if ((level == Level::kComponent || level == Level::kSubcomponent) && d.isComponent(c)) {
      what = "the component separator";
    } else if (level == Level::kSubcomponent && d.isSubcomponent(c)) {
      what = "the subcomponent separator";
    }
    if (what != nullptr) {
      return fail(ErrorCode::kValue,
                  std::string("value for ") + std::string(path) + " holds " + what +
                      ", which cannot appear at that level",
                  std::string(path));
    }
  }
  return {};
}

}  // namespace

Result<std::string> Message::getRaw(std::string_view path) const {
  auto p = Path::parse(path);
  if (!p) return std::unexpected(p.error());
  return readRaw(*this, *p);
}

Result<std::string> Message::get(std::string_view path) const {
  auto p = Path::parse(path);
  if (!p) return std::unexpected(p.error());
  std::string raw = readRaw(*this, *p);
  if (isMshAtom(*p)) return raw;
  return decode(raw, delimiters_);
}

namespace {

Result<Segment*> findOrAppendSegment(Message& m, const Path& p) {
  size_t seen = 0;
  for (auto& s : m.segments()) {
    if (s.id == p.segment && ++seen == p.occurrence) return &s;
  }
  if (p.segment == "MSH") {
    return fail(ErrorCode::kNotSupported, "a message has exactly one MSH segment", p.toString());
  }
  for (; seen < p.occurrence; ++seen) m.segments().push_back(Segment{p.segment, {}});
  return &m.segments().back();
}

template <typename T>
void growTo(std::vector<T>& v, size_t n, const T& filler) {
  if (v.size() < n) v.resize(n, filler);
}

Result<void> store(Message& m, const Path& p, std::string_view raw, bool split) {
  const Delimiters& d = m.delimiters();
  const std::string where = p.toString();
  if (p.field == 0) {
    return fail(ErrorCode::kInvalid, "a path to set must name a field", where);
  }
  if (isMshAtom(p)) {
    return fail(ErrorCode::kNotSupported,
                "MSH-1 and MSH-2 are the message's delimiters and cannot be set by path", where);
  }
  if (p.repetition > 1 && d.repetition == kNone) {
    return fail(ErrorCode::kNotSupported, "the message declares no repetition separator", where);
  }
  if (p.component > 1 && d.component == kNone) {
    return fail(ErrorCode::kNotSupported, "the message declares no component separator", where);
  }
  if (p.subcomponent > 1 && d.subcomponent == kNone) {
    return fail(ErrorCode::kNotSupported, "the message declares no subcomponent separator", where);
  }
  Level level = levelOf(p);
  if (split) {
    auto ok = checkRaw(raw, level, d, where);
    if (!ok) return ok;
  }
  auto seg = findOrAppendSegment(m, p);
  if (!seg) return std::unexpected(seg.error());
  Segment& s = **seg;
  growTo(s.fields, p.field, emptyField());
  Field& f = s.fields[p.field - 1];
  if (level == Level::kField) {
    f = split ? parseField(raw, d) : Field{{Repetition{{Component{{std::string(raw)}}}}}};
    return {};
  }
  size_t rep = p.repetition == 0 ? 1 : p.repetition;
  growTo(f.repetitions, rep, Repetition{{Component{{""}}}});
  Repetition& r = f.repetitions[rep - 1];
  if (level == Level::kRepetition) {
    r = split ? parseRepetition(raw, d) : Repetition{{Component{{std::string(raw)}}}};
    return {};
  }
  growTo(r.components, p.component, Component{{""}});
  Component& c = r.components[p.component - 1];
  if (level == Level::kComponent) {
    c = split ? parseComponent(raw, d) : Component{{std::string(raw)}};
    return {};
  }
  growTo(c.subcomponents, p.subcomponent, std::string());
  c.subcomponents[p.subcomponent - 1] = std::string(raw);
  return {};
}

}  // namespace

Result<void> Message::setRaw(std::string_view path, std::string_view er7) {
  auto p = Path::parse(path);
  if (!p) return std::unexpected(p.error());
  return store(*this, *p, er7, true);
}

Result<void> Message::set(std::string_view path, std::string_view text) {
  auto p = Path::parse(path);
  if (!p) return std::unexpected(p.error());
  auto encoded = encode(text, delimiters_);
  if (!encoded) {
    return fail(encoded.error().code, encoded.error().message, p->toString());
  }
  return store(*this, *p, *encoded, false);
}

}  // namespace switchboard::hl7v2
