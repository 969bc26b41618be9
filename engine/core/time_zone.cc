// TZif reading, POSIX TZ rules, civil-date arithmetic and local-time conversion. Thread-safety: see
// time_zone.h.
#include "engine/core/time_zone.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace switchboard::core {
namespace {

constexpr std::int64_t kDay = 86400;

bool isLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int daysInMonth(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && isLeap(y) ? 29 : kDays[m - 1];
}

std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Local seconds (since 1970 local) at which rule point `w` happens in `year`.
std::int64_t ruleLocalSeconds(const TimeZone::PosixRule::When& w, int year) {
  using Kind = TimeZone::PosixRule::When::Kind;
  std::int64_t day = 0;
  const std::int64_t jan1 = daysFromCivil(year, 1, 1);
  switch (w.kind) {
    case Kind::kJulianNoLeap: {
      int n = w.day;  // 1..365, February 29 never counted
      day = jan1 + n - 1 + (isLeap(year) && n >= 60 ? 1 : 0);
      break;
    }
    case Kind::kZeroBasedDay:
      day = jan1 + w.day;
      break;
    case Kind::kMonthWeekDay: {
      const std::int64_t first = daysFromCivil(year, w.month, 1);
      const int firstWeekday = static_cast<int>(((first % 7) + 11) % 7);  // 0 = Sunday
      int dom = 1 + (w.day - firstWeekday + 7) % 7 + (w.week - 1) * 7;
      while (dom > daysInMonth(year, w.month)) dom -= 7;
      day = first + dom - 1;
      break;
    }
  }
  return day * kDay + w.seconds;
}

// Reads "[+-]hh[:mm[:ss]]" into seconds; false when malformed.
bool readClock(std::string_view s, std::size_t& i, int& seconds, bool allowSign) {
  int sign = 1;
  if (allowSign && i < s.size() && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1 : 1;
  int parts[3] = {0, 0, 0};
  for (int p = 0; p < 3; ++p) {
    if (p > 0) {
      if (i >= s.size() || s[i] != ':') break;
      ++i;
    }
    std::size_t start = i;
    int v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 3)
      v = v * 10 + (s[i++] - '0');
    if (i == start) return false;
    parts[p] = v;
  }
  if (parts[0] > 167 || parts[1] > 59 || parts[2] > 59) return false;
  seconds = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
  return true;
}

bool readName(std::string_view s, std::size_t& i) {
  if (i < s.size() && s[i] == '<') {
    std::size_t close = s.find('>', i);
    if (close == std::string_view::npos || close - i < 4) return false;
    i = close + 1;
    return true;
  }
  std::size_t start = i;
  while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
  return i - start >= 3;
}

bool readRulePoint(std::string_view s, std::size_t& i, TimeZone::PosixRule::When& w) {
  using Kind = TimeZone::PosixRule::When::Kind;
  auto readInt = [&](int& out) {
    std::size_t start = i;
    out = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 4)
      out = out * 10 + (s[i++] - '0');
    return i > start;
  };
  if (i < s.size() && s[i] == 'M') {
    ++i;
    w.kind = Kind::kMonthWeekDay;
    if (!readInt(w.month) || i >= s.size() || s[i++] != '.') return false;
    if (!readInt(w.week) || i >= s.size() || s[i++] != '.') return false;
    if (!readInt(w.day)) return false;
    if (w.month < 1 || w.month > 12 || w.week < 1 || w.week > 5 || w.day > 6) return false;
  } else if (i < s.size() && s[i] == 'J') {
    ++i;
    w.kind = Kind::kJulianNoLeap;
    if (!readInt(w.day) || w.day < 1 || w.day > 365) return false;
  } else {
    w.kind = Kind::kZeroBasedDay;
    if (!readInt(w.day) || w.day > 365) return false;
  }
  w.seconds = 7200;
  if (i < s.size() && s[i] == '/') {
    ++i;
    if (!readClock(s, i, w.seconds, true)) return false;
  }
  return true;
}

std::string zoneRoot(const std::string& root) {
  if (!root.empty()) return root;
  if (const char* dir = std::getenv("TZDIR"); dir && *dir) return dir;
  return "/usr/share/zoneinfo";
}

bool validZoneName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '/') return false;
  if (name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-' ||
           c == '/';
  });
}

std::int64_t readBE(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  if (bytes == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  return static_cast<std::int64_t>(v);
}

// Writes `v` (0 <= v < 10^width) as exactly `width` decimal digits.
void putDigits(char* p, int v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

}  // namespace

std::int64_t daysFromCivil(int year, int month, int day) {
  std::int64_t y = month <= 2 ? year - 1 : year;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t mp = month > 2 ? month - 3 : month + 9;
  const std::int64_t doy = (153 * mp + 2) / 5 + day - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civilFromDays(std::int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
}

int TimeZone::PosixRule::offsetAt(std::int64_t utc) const {
  if (!hasDst) return stdOffset;
  // The local year of the instant (in standard time) picks the rule's year; the neighbouring years
  // are checked too so that changes near New Year (and rule times beyond 24h) are covered.
  int year = 0, month = 0, day = 0;
  civilFromDays(floorDiv(utc + stdOffset, kDay), year, month, day);
  for (int y : {year - 1, year, year + 1}) {
    const std::int64_t begin = ruleLocalSeconds(start, y) - stdOffset;
    const std::int64_t finish = ruleLocalSeconds(end, y) - dstOffset;
    if (begin < finish) {
      if (utc >= begin && utc < finish) return dstOffset;
    } else {
      // Southern hemisphere: daylight time runs from `start` of y to `end` of y + 1.
      const std::int64_t nextFinish = ruleLocalSeconds(end, y + 1) - dstOffset;
      if (utc >= begin && utc < nextFinish) return dstOffset;
    }
  }
  return stdOffset;
}

std::optional<TimeZone::PosixRule> TimeZone::parsePosix(std::string_view s) {
  PosixRule r;
  std::size_t i = 0;
  if (!readName(s, i)) return std::nullopt;
  int off = 0;
  if (!readClock(s, i, off, true)) return std::nullopt;
  r.stdOffset = -off;  // POSIX counts west of UTC as positive
  if (i == s.size()) return r;
  if (!readName(s, i)) return std::nullopt;
  r.hasDst = true;
  r.dstOffset = r.stdOffset + 3600;
  if (i < s.size() && s[i] != ',') {
    if (!readClock(s, i, off, true)) return std::nullopt;
    r.dstOffset = -off;
  }
  if (i == s.size()) {
    // No rule: the US rules POSIX implementations assume.
    r.start = {PosixRule::When::Kind::kMonthWeekDay, 0, 2, 3, 7200};
    r.end = {PosixRule::When::Kind::kMonthWeekDay, 0, 1, 11, 7200};
    return r;
  }
  if (s[i++] != ',' || !readRulePoint(s, i, r.start)) return std::nullopt;
  if (i >= s.size() || s[i++] != ',' || !readRulePoint(s, i, r.end)) return std::nullopt;
  if (i != s.size()) return std::nullopt;
  return r;
}

Result<std::shared_ptr<const TimeZone>> TimeZone::parse(std::string_view bytes,
                                                        std::string_view name) {
  auto bad = [&](const char* why) {
    return fail(ErrorCode::kStructure, "time zone " + std::string(name) + ": " + why);
  };
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  if (n < 44 || bytes.substr(0, 4) != "TZif") return bad("not a TZif file");
  const char version = bytes[4];
  struct Counts {
    std::int64_t isut, isstd, leap, time, type, chars;
  };
  auto counts = [&](std::size_t at) {
    return Counts{readBE(p + at + 20, 4), readBE(p + at + 24, 4), readBE(p + at + 28, 4),
                  readBE(p + at + 32, 4), readBE(p + at + 36, 4), readBE(p + at + 40, 4)};
  };
  Counts c = counts(0);
  auto blockSize = [](const Counts& k, int timeBytes) {
    return k.time * timeBytes + k.time + k.type * 6 + k.chars + k.leap * (timeBytes + 4) + k.isstd +
           k.isut;
  };
  std::size_t at = 44;
  int timeBytes = 4;
  if (c.time < 0 || c.type <= 0 || c.chars < 0 || c.leap < 0 || c.isstd < 0 || c.isut < 0)
    return bad("bad counts");
  if (version >= '2') {
    at += static_cast<std::size_t>(blockSize(c, 4));
    if (at + 44 > n || bytes.substr(at, 4) != "TZif") return bad("truncated v2 header");
    c = counts(at);
    at += 44;
    timeBytes = 8;
    if (c.time < 0 || c.type <= 0 || c.chars < 0 || c.leap < 0 || c.isstd < 0 || c.isut < 0)
      return bad("bad counts");
  }
  if (at + static_cast<std::size_t>(blockSize(c, timeBytes)) > n) return bad("truncated data");
  auto tz = std::make_shared<TimeZone>();
  tz->name_ = std::string(name);
  std::vector<std::int64_t> times(static_cast<std::size_t>(c.time));
  for (std::int64_t k = 0; k < c.time; ++k) times[k] = readBE(p + at + k * timeBytes, timeBytes);
  const std::size_t idxAt = at + c.time * timeBytes;
  const std::size_t typeAt = idxAt + c.time;
  std::vector<int> offsets(static_cast<std::size_t>(c.type));
  for (std::int64_t k = 0; k < c.type; ++k)
    offsets[k] = static_cast<int>(readBE(p + typeAt + k * 6, 4));
  for (std::int64_t k = 0; k < c.time; ++k) {
    const unsigned idx = p[idxAt + k];
    if (idx >= offsets.size()) return bad("bad type index");
    tz->transitions_.push_back(times[k]);
    tz->offsetAfter_.push_back(offsets[idx]);
  }
  tz->initialOffset_ = offsets[0];
  if (version >= '2') {
    std::size_t footer = at + static_cast<std::size_t>(blockSize(c, timeBytes));
    if (footer < n && bytes[footer] == '\n') {
      std::size_t end = bytes.find('\n', footer + 1);
      if (end != std::string_view::npos && end > footer + 1) {
        tz->footer_ = parsePosix(bytes.substr(footer + 1, end - footer - 1));
        if (!tz->footer_) return bad("bad POSIX TZ footer");
      }
    }
  }
  return std::shared_ptr<const TimeZone>(std::move(tz));
}

Result<std::shared_ptr<const TimeZone>> TimeZone::get(std::string_view name,
                                                      const std::string& root) {
  // Each thread remembers the zone it asked for last, with the folder it came from: a mapping
  // asks for the same zone again and again, and the answer then costs no lock, no validation
  // and no allocation. The folder is compared as it would be resolved now ($TZDIR may change).
  struct Last {
    std::string name, dir;
    std::shared_ptr<const TimeZone> zone;
  };
  static thread_local Last last;
  const char* tzdir = root.empty() ? std::getenv("TZDIR") : nullptr;
  const std::string_view dirNow = !root.empty()       ? std::string_view(root)
                                  : (tzdir && *tzdir) ? std::string_view(tzdir)
                                                      : std::string_view("/usr/share/zoneinfo");
  if (last.zone && last.name == name && last.dir == dirNow) return last.zone;
  if (!validZoneName(name))
    return fail(ErrorCode::kValue, "not an IANA time zone name: \"" + std::string(name) + "\"");
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TimeZone>, std::less<>> cache;
  const std::string dir = zoneRoot(root);
  const std::string key = dir + "|" + std::string(name);
  auto remember = [&](const std::shared_ptr<const TimeZone>& zone) {
    last.name.assign(name);
    last.dir = dir;
    last.zone = zone;
  };
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) {
      remember(it->second);
      return it->second;
    }
  }
  std::ifstream in(dir + "/" + std::string(name), std::ios::binary);
  if (!in) {
    return fail(ErrorCode::kNotFound, "unknown time zone \"" + std::string(name) +
                                          "\": not found under " + dir + " (is tzdata installed?)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto tz = parse(text.str(), name);
  if (!tz) return tz;
  std::lock_guard lock(mutex);
  auto [it, added] = cache.emplace(key, *tz);
  remember(it->second);
  return it->second;
}

int TimeZone::offsetAt(std::int64_t utc) const {
  if (transitions_.empty()) return footer_ ? footer_->offsetAt(utc) : initialOffset_;
  if (utc < transitions_.front()) return initialOffset_;
  if (utc >= transitions_.back() && footer_) return footer_->offsetAt(utc);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
  return offsetAfter_[static_cast<std::size_t>(it - transitions_.begin()) - 1];
}

std::int64_t TimeZone::toUtc(std::int64_t local) const {
  // Offsets change at most once within a day around any real-world wall-clock time.
  const int before = offsetAt(local - kDay);
  const int after = offsetAt(local + kDay);
  std::optional<int> best;
  for (int candidate : {before, after}) {
    if (offsetAt(local - candidate) == candidate && (!best || candidate > *best)) best = candidate;
  }
  if (best) return local - *best;
  return local - before;  // in a gap: keep the old offset, which lands after the jump
}

Result<std::string> localInstant(const TimeZone& zone, std::string_view date, std::string_view time,
                                 std::int64_t addMinutes) {
  char text[kLocalInstantBytes];
  auto n = writeLocalInstant(zone, date, time, addMinutes, text);
  if (!n) return std::unexpected(n.error());
  return std::string(text, *n);
}

Result<std::size_t> writeLocalInstant(const TimeZone& zone, std::string_view date,
                                      std::string_view time, std::int64_t addMinutes, char* out) {
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
  };
  if (date.size() != 10 || date[4] != '-' || date[7] != '-' || !digits(date.substr(0, 4)) ||
      !digits(date.substr(5, 2)) || !digits(date.substr(8, 2))) {
    return fail(ErrorCode::kValue, "date is not YYYY-MM-DD");
  }
  auto number = [](std::string_view s) {  // digits only, checked above
    int v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    return v;
  };
  const int y = number(date.substr(0, 4));
  const int mo = number(date.substr(5, 2));
  const int d = number(date.substr(8, 2));
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo))
    return fail(ErrorCode::kValue, "date does not exist in the calendar");
  int h = 0, mi = 0, s = 0;
  if (time.size() == 4 && digits(time)) {
    h = (time[0] - '0') * 10 + (time[1] - '0');
    mi = (time[2] - '0') * 10 + (time[3] - '0');
  } else if ((time.size() == 5 || time.size() == 8) && time[2] == ':' &&
             digits(time.substr(0, 2)) && digits(time.substr(3, 2)) &&
             (time.size() == 5 || (time[5] == ':' && digits(time.substr(6, 2))))) {
    h = (time[0] - '0') * 10 + (time[1] - '0');
    mi = (time[3] - '0') * 10 + (time[4] - '0');
    if (time.size() == 8) s = (time[6] - '0') * 10 + (time[7] - '0');
  } else {
    return fail(ErrorCode::kValue, "time is not HHMM, HH:MM or HH:MM:SS");
  }
  if (h > 23 || mi > 59 || s > 59) return fail(ErrorCode::kValue, "time of day out of range");
  const std::int64_t local = daysFromCivil(y, mo, d) * kDay + h * 3600 + mi * 60 + s;
  const std::int64_t utc = zone.toUtc(local) + addMinutes * 60;
  const int off = zone.offsetAt(utc);
  const std::int64_t shown = utc + off;
  int oy, om, od;
  civilFromDays(floorDiv(shown, kDay), oy, om, od);
  const std::int64_t sod = shown - floorDiv(shown, kDay) * kDay;
  const int absOff = off < 0 ? -off : off;
  const int offHours = absOff / 3600, offMinutes = absOff / 60 % 60;
  if (oy >= 0 && oy <= 9999 && offHours <= 99) {
    // The common case written directly: the same text as the snprintf below.
    putDigits(out, oy, 4);
    out[4] = '-';
    putDigits(out + 5, om, 2);
    out[7] = '-';
    putDigits(out + 8, od, 2);
    out[10] = 'T';
    putDigits(out + 11, static_cast<int>(sod / 3600), 2);
    out[13] = ':';
    putDigits(out + 14, static_cast<int>(sod / 60 % 60), 2);
    out[16] = ':';
    putDigits(out + 17, static_cast<int>(sod % 60), 2);
    out[19] = off < 0 ? '-' : '+';
    putDigits(out + 20, offHours, 2);
    out[22] = ':';
    putDigits(out + 23, offMinutes, 2);
    return std::size_t{25};
  }
  std::snprintf(out, kLocalInstantBytes, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", oy, om, od,
                static_cast<int>(sod / 3600), static_cast<int>(sod / 60 % 60),
                static_cast<int>(sod % 60), off < 0 ? '-' : '+', offHours, offMinutes);
  return std::strlen(out);
}

std::string utcInstant(std::int64_t unixMillis) {
  const std::int64_t secs = floorDiv(unixMillis, 1000);
  const int ms = static_cast<int>(unixMillis - secs * 1000);
  int y, m, d;
  civilFromDays(floorDiv(secs, kDay), y, m, d);
  const std::int64_t sod = secs - floorDiv(secs, kDay) * kDay;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
                static_cast<int>(sod / 3600), static_cast<int>(sod / 60 % 60),
                static_cast<int>(sod % 60), ms);
  return buf;
}

}  // namespace switchboard::core
