// Lexical checks of FHIR R4 primitive values. Thread-safety: pure functions.
#include "engine/fhir/primitive_format.h"

#include <emmintrin.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>

namespace switchboard::fhir {

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `n` digits at `pos`.
bool digits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!isDigit(c)) return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool leapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int daysIn(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && leapYear(year)) return 29;
  return kDays[month - 1];
}

enum class DateParts { kYear, kMonth, kDay };

// YYYY, YYYY-MM or YYYY-MM-DD from `pos`; reports how far it got.
bool parseDate(std::string_view s, std::size_t& pos, DateParts& parts, std::string& why) {
  int year = 0, month = 0, day = 0;
  if (!digits(s, pos, 4, year)) {
    why = "the year must have four digits";
    return false;
  }
  if (year == 0) {
    why = "year 0000 does not exist";
    return false;
  }
  parts = DateParts::kYear;
  if (pos == s.size() || s[pos] != '-') return true;
  ++pos;
  if (!digits(s, pos, 2, month) || month < 1 || month > 12) {
    why = "the month must be 01 to 12";
    return false;
  }
  parts = DateParts::kMonth;
  if (pos == s.size() || s[pos] != '-') return true;
  ++pos;
  if (!digits(s, pos, 2, day) || day < 1 || day > daysIn(year, month)) {
    why = "the day does not exist in that month";
    return false;
  }
  parts = DateParts::kDay;
  return true;
}

// hh:mm:ss(.fraction)? from `pos`; seconds required.
bool parseTime(std::string_view s, std::size_t& pos, std::string& why) {
  int h = 0, m = 0, sec = 0;
  if (!digits(s, pos, 2, h) || h > 23 || pos == s.size() || s[pos] != ':') {
    why = "the time must be hh:mm:ss with hours 00 to 23";
    return false;
  }
  ++pos;
  if (!digits(s, pos, 2, m) || m > 59) {
    why = "minutes must be 00 to 59";
    return false;
  }
  if (pos == s.size() || s[pos] != ':') {
    why = "seconds are required (hh:mm:ss)";
    return false;
  }
  ++pos;
  if (!digits(s, pos, 2, sec) || sec > 60) {
    why = "seconds must be 00 to 60";
    return false;
  }
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && isDigit(s[pos])) ++pos;
    if (pos == start) {
      why = "a decimal point must be followed by digits";
      return false;
    }
  }
  return true;
}

// Z or +hh:mm / -hh:mm (up to +14:00) at `pos`, which must then be the end.
bool parseZone(std::string_view s, std::size_t& pos, std::string& why) {
  if (pos == s.size()) {
    why = "a time zone (Z or +hh:mm) is required";
    return false;
  }
  if (s[pos] == 'Z') {
    ++pos;
    return true;
  }
  if (s[pos] != '+' && s[pos] != '-') {
    why = "the time zone must be Z or +hh:mm / -hh:mm";
    return false;
  }
  ++pos;
  int h = 0, m = 0;
  if (!digits(s, pos, 2, h) || pos == s.size() || s[pos] != ':' || (++pos, !digits(s, pos, 2, m)) ||
      m > 59 || h > 14 || (h == 14 && m != 0)) {
    why = "the time zone must be Z or +hh:mm / -hh:mm (at most 14:00)";
    return false;
  }
  return true;
}

std::optional<std::string> dateLike(std::string_view type, std::string_view s) {
  std::size_t pos = 0;
  DateParts parts = DateParts::kYear;
  std::string why;
  const bool instant = type == "instant";
  const char* expected = instant ? "an instant (YYYY-MM-DDThh:mm:ss[.sss] with Z or +hh:mm)"
                         : type == "date" ? "a date (YYYY, YYYY-MM or YYYY-MM-DD)"
                                          : "a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
                                            "YYYY-MM-DDThh:mm:ss[.sss] with Z or +hh:mm)";
  auto bad = [&](const std::string& reason) {
    return std::optional<std::string>("not " + std::string(expected) + ": " + reason);
  };
  if (!parseDate(s, pos, parts, why)) return bad(why);
  if (pos == s.size()) {
    if (instant && parts != DateParts::kDay) return bad("a full date and time are required");
    if (instant) return bad("a time with seconds and a time zone is required");
    return std::nullopt;
  }
  if (type == "date") return bad("unexpected text after the date");
  if (s[pos] != 'T') return bad("the date and the time must be separated by 'T'");
  if (parts != DateParts::kDay) return bad("a time needs a full date");
  ++pos;
  if (!parseTime(s, pos, why)) return bad(why);
  if (!parseZone(s, pos, why)) return bad(why);
  if (pos != s.size()) return bad("unexpected text after the time zone");
  return std::nullopt;
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool isAsciiAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

// Whether any byte is a control character or a space: a loop the compiler vectorises, run before
// the exact character checks (which only matter when it is true).
bool anyAtOrBelowSpace(std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  std::size_t i = 0;
  // (GCC 12 does not vectorise the plain loop: 16 bytes at a time by hand, as json_arena.cc
  // scans strings. A byte is <= ' ' when the unsigned minimum with ' ' is the byte itself.)
  const __m128i space = _mm_set1_epi8(' ');
  auto block = [&](std::size_t at) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
    return _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, space), v)) != 0;
  };
  if (n >= 16) {
    for (; i + 16 <= n; i += 16)
      if (block(i)) return true;
    return i < n && block(n - 16);  // the last bytes, overlapping the block before
  }
  // Shorter texts a word at a time, the last word overlapping the first (never reading outside
  // the text): a word holds a byte below 0x21 exactly when (w - 0x21..21) & ~w & 0x80..80 != 0
  // (the "has a byte less than n" test, exact for n <= 128).
  auto below = [](std::uint64_t w, std::uint64_t ones) {
    return ((w - ones * 0x21) & ~w & ones * 0x80) != 0;
  };
  if (n >= 8) {
    std::uint64_t a, b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);
    return below(a, 0x0101010101010101u) || below(b, 0x0101010101010101u);
  }
  if (n >= 4) {
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return below(a, 0x01010101u) || below(b, 0x01010101u);
  }
  bool any = false;
  for (; i < n; ++i) any |= static_cast<unsigned char>(p[i]) <= ' ';
  return any;
}

PrimitiveKind primitiveKind(std::string_view type) {
  switch (type.size()) {
    case 2:
      if (type == "id") return PrimitiveKind::kId;
      break;
    case 3:
      if (type == "uri") return PrimitiveKind::kUri;
      if (type == "url") return PrimitiveKind::kUrl;
      if (type == "oid") return PrimitiveKind::kOid;
      break;
    case 4:
      if (type == "code") return PrimitiveKind::kCode;
      if (type == "uuid") return PrimitiveKind::kUuid;
      if (type == "date") return PrimitiveKind::kDate;
      if (type == "time") return PrimitiveKind::kTime;
      break;
    case 5:
      if (type == "xhtml") return PrimitiveKind::kXhtml;
      break;
    case 6:
      if (type == "string") return PrimitiveKind::kString;
      break;
    case 7:
      if (type == "boolean") return PrimitiveKind::kBoolean;
      if (type == "integer") return PrimitiveKind::kInteger;
      if (type == "decimal") return PrimitiveKind::kDecimal;
      if (type == "instant") return PrimitiveKind::kInstant;
      break;
    case 8:
      if (type == "markdown") return PrimitiveKind::kMarkdown;
      if (type == "dateTime") return PrimitiveKind::kDateTime;
      break;
    case 9:
      if (type == "canonical") return PrimitiveKind::kCanonical;
      break;
    case 11:
      if (type == "positiveInt") return PrimitiveKind::kPositiveInt;
      if (type == "unsignedInt") return PrimitiveKind::kUnsignedInt;
      break;
    case 12:
      if (type == "base64Binary") return PrimitiveKind::kBase64Binary;
      break;
  }
  return PrimitiveKind::kOther;
}

bool jsonKindFits(std::string_view type, const rapidjson::Value& value) {
  return jsonKindFits(primitiveKind(type), value);
}

bool jsonKindFits(PrimitiveKind k, const rapidjson::Value& value) {
  if (k == PrimitiveKind::kBoolean) return value.IsBool();
  if (k == PrimitiveKind::kInteger || k == PrimitiveKind::kPositiveInt ||
      k == PrimitiveKind::kUnsignedInt)
    return value.IsInt64();
  if (k == PrimitiveKind::kDecimal) return value.IsNumber();
  return value.IsString();
}

std::string expectedJsonKind(std::string_view type) {
  return expectedJsonKind(primitiveKind(type));
}

std::string expectedJsonKind(PrimitiveKind k) {
  if (k == PrimitiveKind::kBoolean) return "a JSON boolean";
  if (k == PrimitiveKind::kInteger || k == PrimitiveKind::kPositiveInt ||
      k == PrimitiveKind::kUnsignedInt)
    return "a JSON integer";
  if (k == PrimitiveKind::kDecimal) return "a JSON number";
  return "a JSON string";
}

std::optional<std::string> checkPrimitive(std::string_view type, const rapidjson::Value& value) {
  return checkPrimitive(primitiveKind(type), type, value);
}

std::optional<std::string> checkPrimitive(PrimitiveKind k, std::string_view type,
                                          const rapidjson::Value& value) {
  if (!jsonKindFits(k, value)) return "must be " + expectedJsonKind(k);
  if (value.IsInt64()) {
    std::int64_t v = value.GetInt64();
    if (v < std::numeric_limits<std::int32_t>::min() ||
        v > std::numeric_limits<std::int32_t>::max())
      return std::string("is outside the 32-bit range of ") + std::string(type);
    if (k == PrimitiveKind::kPositiveInt && v < 1)
      return std::string("a positiveInt must be 1 or more");
    if (k == PrimitiveKind::kUnsignedInt && v < 0)
      return std::string("an unsignedInt must be 0 or more");
    return std::nullopt;
  }
  if (value.IsString()) {
    return checkPrimitiveText(k, type,
                              std::string_view(value.GetString(), value.GetStringLength()));
  }
  return std::nullopt;
}

std::optional<std::string> checkPrimitiveText(std::string_view type, std::string_view s) {
  return checkPrimitiveText(primitiveKind(type), type, s);
}

std::optional<std::string> checkPrimitiveText(PrimitiveKind k, std::string_view type,
                                              std::string_view s) {
  if (s.empty()) return std::string("must not be empty (ele-1: a value or children are required)");
  if (k == PrimitiveKind::kDate || k == PrimitiveKind::kDateTime || k == PrimitiveKind::kInstant)
    return dateLike(type, s);
  if (k == PrimitiveKind::kTime) {
    std::size_t pos = 0;
    std::string why;
    if (!parseTime(s, pos, why)) return "not a time (hh:mm:ss[.sss]): " + why;
    if (pos != s.size()) return std::string("not a time (hh:mm:ss[.sss], no time zone)");
    return std::nullopt;
  }
  if (k == PrimitiveKind::kCode) {
    if (!anyAtOrBelowSpace(s)) return std::nullopt;  // no space, tab or line break at all
    if (isSpace(s.front()) || isSpace(s.back()))
      return std::string("a code must not start or end with whitespace");
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
        return std::string("a code must not hold tabs or line breaks");
      if (s[i] == ' ' && i + 1 < s.size() && s[i + 1] == ' ')
        return std::string("a code must not hold consecutive spaces");
    }
    return std::nullopt;
  }
  if (k == PrimitiveKind::kId) {
    if (s.size() > 64) return std::string("an id is at most 64 characters");
    for (char c : s) {
      if (!isAsciiAlnum(c) && c != '-' && c != '.')
        return std::string("an id holds only A-Z, a-z, 0-9, '-' and '.'");
    }
    return std::nullopt;
  }
  if (k == PrimitiveKind::kUri || k == PrimitiveKind::kUrl || k == PrimitiveKind::kCanonical) {
    if (anyAtOrBelowSpace(s)) {
      for (char c : s) {
        if (isSpace(c)) return std::string("a ") + std::string(type) + " must not hold whitespace";
      }
    }
    return std::nullopt;
  }
  if (k == PrimitiveKind::kOid) {
    if (!s.starts_with("urn:oid:")) return std::string("an oid must start with urn:oid:");
    std::string_view rest = s.substr(8);
    if (rest.empty() || rest[0] < '0' || rest[0] > '2' || rest.size() < 3 || rest[1] != '.')
      return std::string("not an oid (urn:oid:[0-2].n.n...)");
    std::size_t i = 2;
    while (i <= rest.size()) {
      std::size_t start = i;
      while (i < rest.size() && isDigit(rest[i])) ++i;
      if (i == start || (rest[start] == '0' && i - start > 1))
        return std::string("not an oid (urn:oid:[0-2].n.n...)");
      if (i == rest.size()) break;
      if (rest[i] != '.') return std::string("not an oid (urn:oid:[0-2].n.n...)");
      ++i;
    }
    return std::nullopt;
  }
  if (k == PrimitiveKind::kUuid) {
    static const std::string_view kShape = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (!s.starts_with("urn:uuid:") || s.size() != 9 + kShape.size())
      return std::string("not a uuid (urn:uuid: and 36 lowercase hex characters)");
    for (std::size_t i = 0; i < kShape.size(); ++i) {
      char c = s[9 + i];
      bool ok = kShape[i] == '-' ? c == '-' : (isDigit(c) || (c >= 'a' && c <= 'f'));
      if (!ok) return std::string("not a uuid (urn:uuid: and 36 lowercase hex characters)");
    }
    return std::nullopt;
  }
  if (k == PrimitiveKind::kBase64Binary) {
    std::size_t count = 0, padding = 0;
    for (char c : s) {
      if (isSpace(c)) continue;
      if (c == '=') {
        ++padding;
      } else if (padding > 0 ||
                 !(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) {
        return std::string("not base64 (A-Z a-z 0-9 + / with = padding at the end)");
      }
      ++count;
    }
    if (count % 4 != 0 || padding > 2)
      return std::string("not base64: the length must be a multiple of 4");
    return std::nullopt;
  }
  if (k == PrimitiveKind::kXhtml) {
    std::size_t i = 0;
    while (i < s.size() && isSpace(s[i])) ++i;
    if (!s.substr(i).starts_with("<div")) return std::string("narrative xhtml must be a <div>");
    return std::nullopt;
  }
  if (k == PrimitiveKind::kString || k == PrimitiveKind::kMarkdown) {
    if (s.size() > 1024 * 1024) return std::string("a string is at most 1 MB");
    bool allSpace = std::all_of(s.begin(), s.end(), isSpace);
    if (allSpace) return std::string("must not be only whitespace");
    return std::nullopt;
  }
  if (k == PrimitiveKind::kInteger || k == PrimitiveKind::kPositiveInt ||
      k == PrimitiveKind::kUnsignedInt || k == PrimitiveKind::kDecimal) {
    // Text forms (lint templates): same rules as the JSON numbers.
    std::size_t i = 0;
    if (s[i] == '-' || s[i] == '+') ++i;
    std::size_t start = i;
    while (i < s.size() && isDigit(s[i])) ++i;
    if (i == start) return "not " + std::string(type);
    if (k == PrimitiveKind::kDecimal && i < s.size() && s[i] == '.') {
      ++i;
      std::size_t f = i;
      while (i < s.size() && isDigit(s[i])) ++i;
      if (i == f) return std::string("not a decimal");
    }
    if (i != s.size()) return "not " + std::string(type);
    if (k == PrimitiveKind::kPositiveInt &&
        (s[0] == '-' || s.find_first_not_of("0+") == std::string::npos))
      return std::string("a positiveInt must be 1 or more");
    if (k == PrimitiveKind::kUnsignedInt && s[0] == '-')
      return std::string("an unsignedInt must be 0 or more");
    return std::nullopt;
  }
  if (k == PrimitiveKind::kBoolean) {
    if (s != "true" && s != "false") return std::string("a boolean is true or false");
  }
  return std::nullopt;
}

}  // namespace switchboard::fhir
