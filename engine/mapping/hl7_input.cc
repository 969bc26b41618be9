// HL7 v2 model, path shorthand and date conversions for mapping files. Thread-safety: see
// hl7_input.h.
#include "engine/mapping/hl7_input.h"

#include <cctype>
#include <map>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/core/time_zone.h"
#include "hl7v2/escape.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"

namespace switchboard::mapping {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

bool isNull(std::string_view raw) { return raw == "\"\""; }

void key(Writer& w, const std::string& k) {
  w.Key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
}
void str(Writer& w, const std::string& s) {
  w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
}

// One repetition: {"value": whole text, "C1": ..., "C4S2": ...}; {} when it has no value.
void writeRepetition(Writer& w, const hl7v2::Repetition& rep, const hl7v2::Delimiters& d) {
  std::string raw;
  hl7v2::appendRepetition(raw, rep, d);
  w.StartObject();
  if (!raw.empty() && !isNull(raw)) {
    key(w, "value");
    str(w, hl7v2::decode(raw, d));
    for (std::size_t c = 0; c < rep.components.size(); ++c) {
      const hl7v2::Component& comp = rep.components[c];
      std::string craw;
      hl7v2::appendComponent(craw, comp, d);
      if (craw.empty() || isNull(craw)) continue;
      const std::string name = "C" + std::to_string(c + 1);
      key(w, name);
      str(w, hl7v2::decode(craw, d));
      if (comp.subcomponents.size() > 1) {
        for (std::size_t s = 0; s < comp.subcomponents.size(); ++s) {
          const std::string& sraw = comp.subcomponents[s];
          key(w, name + "S" + std::to_string(s + 1));
          str(w, isNull(sraw) ? std::string() : hl7v2::decode(sraw, d));
        }
      }
    }
  }
  w.EndObject();
}

void writeSegment(Writer& w, const hl7v2::Segment& seg, const hl7v2::Delimiters& d) {
  w.StartObject();
  const bool msh = seg.id == "MSH";
  for (std::size_t f = 0; f < seg.fields.size(); ++f) {
    const hl7v2::Field& field = seg.fields[f];
    const std::string name = "F" + std::to_string(f + 1);
    if (msh && f < 2) {  // MSH-1 and MSH-2: as written, never decoded
      const std::string& raw = field.repetitions.front().components.front().subcomponents.front();
      key(w, name);
      w.StartArray();
      w.StartObject();
      key(w, "value");
      str(w, raw);
      key(w, "C1");
      str(w, raw);
      w.EndObject();
      w.EndArray();
      continue;
    }
    std::string raw;
    hl7v2::appendField(raw, field, d);
    bool any = false;
    for (const auto& rep : field.repetitions) {
      std::string rraw;
      hl7v2::appendRepetition(rraw, rep, d);
      if (!rraw.empty() && !isNull(rraw)) any = true;
    }
    if (!any) continue;
    key(w, name);
    w.StartArray();
    for (const auto& rep : field.repetitions) writeRepetition(w, rep, d);
    w.EndArray();
  }
  w.EndObject();
}

bool digitsOnly(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}
int num(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}
int daysIn(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[m - 1];
}
std::string two(int v) {
  std::string s = std::to_string(v);
  return s.size() < 2 ? "0" + s : s;
}

Error valueError(std::string_view text, const std::string& what) {
  std::string shown;
  for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    shown.push_back(c < 0x20 || c >= 0x7f || c == '"' ? '?' : static_cast<char>(c));
  }
  return Error(ErrorCode::kValue, "\"" + shown + "\" " + what);
}

}  // namespace

Result<std::string> hl7InputJson(std::string_view er7) {
  std::string normalised;
  if (er7.find('\n') != std::string_view::npos) {
    normalised = hl7v2::normaliseSegmentEnds(er7);
    er7 = normalised;
  }
  auto parsed = hl7v2::Message::parse(er7);
  if (!parsed) return std::unexpected(parsed.error());
  const hl7v2::Message& m = *parsed;
  const hl7v2::Delimiters& d = m.delimiters();
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  auto fact = [&](const char* name, const std::string& v) {
    if (v.empty() || v == "\"\"") return;
    key(w, name);
    str(w, v);
  };
  fact("messageType", m.messageCode());
  fact("trigger", m.triggerEvent());
  fact("structure", m.messageStructure());
  fact("controlId", m.controlId());
  fact("version", m.version());
  std::vector<std::string> order;
  std::map<std::string, std::vector<const hl7v2::Segment*>> byId;
  for (const auto& seg : m.segments()) {
    auto& list = byId[seg.id];
    if (list.empty()) order.push_back(seg.id);
    list.push_back(&seg);
  }
  for (const auto& id : order) {
    key(w, id);
    w.StartArray();
    for (const hl7v2::Segment* seg : byId[id]) writeSegment(w, *seg, d);
    w.EndArray();
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

Result<std::optional<std::string>> rewriteHl7Paths(std::string_view e) {
  if (e.find("hl7") == std::string_view::npos) return std::optional<std::string>();
  std::string out;
  bool changed = false;
  auto identChar = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  std::size_t i = 0;
  while (i < e.size()) {
    const char c = e[i];
    if (c == '\'' || c == '`') {  // string literal or delimited identifier: copied as it is
      std::size_t j = i + 1;
      while (j < e.size() && e[j] != c) j += e[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, e.size());
      out.append(e.substr(i, j - i));
      i = j;
      continue;
    }
    if (c == '/' && i + 1 < e.size() && (e[i + 1] == '/' || e[i + 1] == '*')) {
      std::size_t j = e[i + 1] == '/' ? e.find('\n', i) : e.find("*/", i + 2);
      j = j == std::string_view::npos ? e.size() : j + (e[i + 1] == '/' ? 0 : 2);
      out.append(e.substr(i, j - i));
      i = j;
      continue;
    }
    const bool startsWord = i == 0 || (!identChar(e[i - 1]) && e[i - 1] != '%');
    if (!(startsWord && e.substr(i, 3) == "hl7" && (i + 3 == e.size() || !identChar(e[i + 3])))) {
      out.push_back(c);
      ++i;
      continue;
    }
    std::size_t j = i + 3;
    while (j < e.size() && e[j] == ' ') ++j;
    if (j >= e.size() || e[j] != '(') {  // a member named hl7, not the shorthand
      out.push_back(c);
      ++i;
      continue;
    }
    ++j;
    while (j < e.size() && e[j] == ' ') ++j;
    std::size_t close = j < e.size() && e[j] == '\'' ? e.find('\'', j + 1) : std::string_view::npos;
    std::size_t paren = close == std::string_view::npos ? close : close + 1;
    while (paren != std::string_view::npos && paren < e.size() && e[paren] == ' ') ++paren;
    if (close == std::string_view::npos || paren >= e.size() || e[paren] != ')') {
      return fail(ErrorCode::kInvalid,
                  "hl7() takes one HL7 path in single quotes, such as hl7('PID-5.1')",
                  std::string(e.substr(i)));
    }
    const std::string_view text = e.substr(j + 1, close - j - 1);
    auto path = hl7v2::Path::parse(text);
    if (!path) {
      return fail(ErrorCode::kInvalid, "hl7('" + std::string(text) + "'): " + path.error().message,
                  std::string(text));
    }
    std::size_t before = out.find_last_not_of(' ');
    const bool relative = before != std::string::npos && out[before] == '.';
    std::string nav;
    if (relative) {
      if (text.find('[') != std::string_view::npos || path->field == 0) {
        return fail(ErrorCode::kInvalid,
                    "hl7('" + std::string(text) +
                        "') after '.' reads a field of the segment before it: no [occurrence], "
                        "a field required",
                    std::string(text));
      }
      out.resize(before + 1);
    } else {
      nav = path->segment + (path->occurrence == 1
                                 ? std::string(".first()")
                                 : "[" + std::to_string(path->occurrence - 1) + "]");
    }
    if (path->field > 0) {
      nav += (nav.empty() ? "" : ".") + std::string("F") + std::to_string(path->field);
      if (path->repetition > 0)
        nav +=
            path->repetition == 1 ? ".first()" : "[" + std::to_string(path->repetition - 1) + "]";
      else if (path->component > 0)
        nav += ".first()";
      if (path->component == 0) {
        nav += ".value";
      } else {
        const std::string comp = "C" + std::to_string(path->component);
        if (path->subcomponent > 1) {
          nav += "." + comp + "S" + std::to_string(path->subcomponent);
        } else if (path->subcomponent == 1) {
          nav += ".select(iif(" + comp + "S1.exists(), " + comp + "S1, " + comp + "))";
        } else {
          nav += "." + comp;
        }
      }
    }
    out += nav;
    changed = true;
    i = paren + 1;
  }
  if (!changed) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

Result<std::string> hl7ToFhirDate(std::string_view dtm, FhirTemporal as, std::string_view zone,
                                  const std::string& zoneinfoRoot) {
  // Split: digits, optional fraction, optional offset.
  std::size_t n = 0;
  while (n < dtm.size() && dtm[n] >= '0' && dtm[n] <= '9') ++n;
  const std::string_view digits = dtm.substr(0, n);
  std::string_view fraction, offset;
  std::size_t k = n;
  if (k < dtm.size() && dtm[k] == '.') {
    std::size_t f = k + 1;
    while (f < dtm.size() && dtm[f] >= '0' && dtm[f] <= '9') ++f;
    fraction = dtm.substr(k + 1, f - k - 1);
    if (fraction.empty() || fraction.size() > 4 || n != 14)
      return std::unexpected(valueError(dtm,
                                        "is not an HL7 date/time (a fraction needs seconds "
                                        "and 1 to 4 digits)"));
    k = f;
  }
  if (k < dtm.size() && (dtm[k] == '+' || dtm[k] == '-')) {
    offset = dtm.substr(k);
    if (offset.size() != 5 || !digitsOnly(offset.substr(1)))
      return std::unexpected(valueError(dtm, "is not an HL7 date/time (offset must be +/-HHMM)"));
    k = dtm.size();
  }
  if (k != dtm.size() || (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14))
    return std::unexpected(
        valueError(dtm, "is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"));
  const int year = num(digits.substr(0, 4));
  const int month = n >= 6 ? num(digits.substr(4, 2)) : 1;
  const int day = n >= 8 ? num(digits.substr(6, 2)) : 1;
  const int hour = n >= 10 ? num(digits.substr(8, 2)) : 0;
  const int minute = n >= 12 ? num(digits.substr(10, 2)) : 0;
  const int second = n >= 14 ? num(digits.substr(12, 2)) : 0;
  if (year < 1 || month < 1 || month > 12)
    return std::unexpected(valueError(dtm, "has no such month"));
  if (day < 1 || day > daysIn(year, month))
    return std::unexpected(valueError(dtm, "has no such day"));
  if (hour > 23 || minute > 59 || second > 59)
    return std::unexpected(valueError(dtm, "has no such time of day"));
  if (!offset.empty()) {
    const int oh = num(offset.substr(1, 2)), om = num(offset.substr(3, 2));
    if (oh > 14 || om > 59) return std::unexpected(valueError(dtm, "has no such UTC offset"));
  }
  std::string date = std::to_string(year);
  while (date.size() < 4) date.insert(date.begin(), '0');
  if (n >= 6) date += "-" + two(month);
  if (n >= 8) date += "-" + two(day);
  if (as == FhirTemporal::kDate || (n <= 8 && as == FhirTemporal::kDateTime)) return date;
  if (n < 10) return std::unexpected(valueError(dtm, "has no time of day (an instant needs one)"));
  const std::string time = two(hour) + ":" + two(minute) + ":" + two(second);
  const std::string frac = fraction.empty() ? "" : "." + std::string(fraction);
  if (!offset.empty()) {
    return date + "T" + time + frac + std::string(offset.substr(0, 3)) + ":" +
           std::string(offset.substr(3, 2));
  }
  if (zone.empty()) {
    return std::unexpected(
        Error(ErrorCode::kRequired, "\"" + std::string(dtm) +
                                        "\" has a time but no UTC offset, and no zone is set (set "
                                        "the variable \"timezone\" or the directive's \"zone\")"));
  }
  auto tz = core::TimeZone::get(zone, zoneinfoRoot);
  if (!tz) return std::unexpected(tz.error());
  auto local = core::localInstant(**tz, date, time, 0);
  if (!local) return std::unexpected(local.error());
  std::string text = *local;  // YYYY-MM-DDThh:mm:ss+hh:mm
  if (!frac.empty()) text.insert(19, frac);
  return text;
}

Result<std::string> fhirToHl7Date(std::string_view t) {
  auto bad = [&] {
    return std::unexpected(
        valueError(t, "is not a FHIR date, dateTime or instant (e.g. 2026-02-12T10:00:00-05:00)"));
  };
  auto at = [&](std::size_t pos, std::size_t len) -> std::optional<std::string_view> {
    if (pos + len > t.size() || !digitsOnly(t.substr(pos, len))) return std::nullopt;
    return t.substr(pos, len);
  };
  std::string out;
  auto y = at(0, 4);
  if (!y) return bad();
  out += *y;
  std::size_t i = 4;
  for (int part = 0; part < 2 && i < t.size() && t[i] == '-'; ++part) {
    auto v = at(i + 1, 2);
    if (!v) return bad();
    out += *v;
    i += 3;
  }
  if (i == t.size()) return out;
  if (t[i] != 'T' || out.size() != 8) return bad();
  auto hh = at(i + 1, 2);
  if (!hh || i + 3 >= t.size() || t[i + 3] != ':') return bad();
  auto mm = at(i + 4, 2);
  if (!mm) return bad();
  out += *hh;
  out += *mm;
  i += 6;
  if (i < t.size() && t[i] == ':') {
    auto ss = at(i + 1, 2);
    if (!ss) return bad();
    out += *ss;
    i += 3;
    if (i < t.size() && t[i] == '.') {
      std::size_t f = i + 1;
      while (f < t.size() && t[f] >= '0' && t[f] <= '9') ++f;
      if (f == i + 1) return bad();
      out += "." + std::string(t.substr(i + 1, std::min<std::size_t>(f - i - 1, 4)));
      i = f;
    }
  }
  if (i == t.size()) return out;
  if (t[i] == 'Z' && i + 1 == t.size()) return out + "+0000";
  if ((t[i] == '+' || t[i] == '-') && i + 6 == t.size() && t[i + 3] == ':') {
    auto oh = at(i + 1, 2), om = at(i + 4, 2);
    if (!oh || !om) return bad();
    return out + t[i] + std::string(*oh) + std::string(*om);
  }
  return bad();
}

}  // namespace switchboard::mapping
