// IANA zone lookup from TZif files; see time_zone.h.
#include "channels/reply/time_zone.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace switchboard::channels::reply {

std::int64_t daysFromCivil(int year, unsigned month, unsigned day) {
  const std::int64_t y = static_cast<std::int64_t>(year) - (month <= 2 ? 1 : 0);
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civilFromDays(std::int64_t z, int& year, unsigned& month, unsigned& day) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  day = doy - (153 * mp + 2) / 5 + 1;
  month = mp < 10 ? mp + 3 : mp - 9;
  year = static_cast<int>(y + (month <= 2 ? 1 : 0));
}

namespace {

bool isLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned daysInMonth(int y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && isLeap(y) ? 29 : kDays[m - 1];
}

// Weekday of a day count since the epoch: 0 = Sunday (1970-01-01 was a Thursday).
int weekdayOf(std::int64_t days) { return static_cast<int>(((days + 4) % 7 + 7) % 7); }

class RuleParser {
 public:
  explicit RuleParser(std::string_view text) : s_(text) {}

  bool done() const { return i_ >= s_.size(); }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++i_;
    return true;
  }

  // A zone abbreviation: letters, or anything but '>' inside <...>.
  bool name() {
    if (eat('<')) {
      std::size_t start = i_;
      while (i_ < s_.size() && s_[i_] != '>') ++i_;
      if (i_ >= s_.size() || i_ - start < 3) return false;
      ++i_;
      return true;
    }
    std::size_t start = i_;
    while (i_ < s_.size() &&
           ((s_[i_] >= 'A' && s_[i_] <= 'Z') || (s_[i_] >= 'a' && s_[i_] <= 'z'))) {
      ++i_;
    }
    return i_ - start >= 3;
  }

  bool number(int& out, int maxDigits) {
    int digits = 0;
    out = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9' && digits < maxDigits) {
      out = out * 10 + (s_[i_] - '0');
      ++i_;
      ++digits;
    }
    return digits > 0;
  }

  // [+-]hh[:mm[:ss]] as seconds (sign as written).
  bool time(std::int32_t& out) {
    int sign = 1;
    if (eat('-')) {
      sign = -1;
    } else {
      eat('+');
    }
    int h = 0, m = 0, sec = 0;
    if (!number(h, 3) || h > 167) return false;
    if (eat(':')) {
      if (!number(m, 2) || m > 59) return false;
      if (eat(':') && (!number(sec, 2) || sec > 59)) return false;
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }

  bool transition(PosixTzRule::Transition& t) {
    using Form = PosixTzRule::Transition::Form;
    if (eat('M')) {
      t.form = Form::kMonthWeekDay;
      if (!number(t.month, 2) || t.month < 1 || t.month > 12 || !eat('.')) return false;
      if (!number(t.week, 1) || t.week < 1 || t.week > 5 || !eat('.')) return false;
      if (!number(t.weekday, 1) || t.weekday > 6) return false;
    } else if (eat('J')) {
      t.form = Form::kJulianNoLeap;
      if (!number(t.day, 3) || t.day < 1 || t.day > 365) return false;
    } else {
      t.form = Form::kZeroBasedDay;
      if (!number(t.day, 3) || t.day > 365) return false;
    }
    if (eat('/')) return time(t.timeSeconds);
    return true;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// Unix seconds at which `t` happens in `year`, given the offset in force just before it.
std::int64_t transitionUtc(const PosixTzRule::Transition& t, int year, std::int32_t offsetBefore) {
  using Form = PosixTzRule::Transition::Form;
  std::int64_t days = 0;
  switch (t.form) {
    case Form::kMonthWeekDay: {
      const auto m = static_cast<unsigned>(t.month);
      const std::int64_t first = daysFromCivil(year, m, 1);
      int mday = 1 + (t.weekday - weekdayOf(first) + 7) % 7 + (t.week - 1) * 7;
      while (static_cast<unsigned>(mday) > daysInMonth(year, m)) mday -= 7;
      days = first + mday - 1;
      break;
    }
    case Form::kJulianNoLeap: {
      int d = t.day;  // 1..365, February 29 never counted
      days = daysFromCivil(year, 1, 1) + d - 1;
      if (isLeap(year) && d >= 60) ++days;
      break;
    }
    case Form::kZeroBasedDay:
      days = daysFromCivil(year, 1, 1) + t.day;
      break;
  }
  return days * 86400 + t.timeSeconds - offsetBefore;
}

}  // namespace

Result<PosixTzRule> PosixTzRule::parse(std::string_view text) {
  auto bad = [&](const char* what) {
    return fail(ErrorCode::kValue,
                std::string("POSIX TZ rule \"") + std::string(text) + "\": " + what);
  };
  RuleParser p(text);
  PosixTzRule rule;
  std::int32_t t = 0;
  if (!p.name()) return bad("expected a standard zone name");
  if (!p.time(t)) return bad("expected a standard offset");
  rule.stdOffsetSeconds = -t;
  if (p.done()) return rule;
  if (!p.name()) return bad("expected a daylight zone name");
  rule.hasDst = true;
  rule.dstOffsetSeconds = rule.stdOffsetSeconds + 3600;
  if (!p.peek(',') && !p.done()) {
    if (!p.time(t)) return bad("expected a daylight offset");
    rule.dstOffsetSeconds = -t;
  }
  if (p.done()) {
    // No rule given: POSIX leaves it implementation-defined; use the US rule like glibc does.
    rule.start = {Transition::Form::kMonthWeekDay, 3, 2, 0, 0, 7200};
    rule.end = {Transition::Form::kMonthWeekDay, 11, 1, 0, 0, 7200};
    return rule;
  }
  if (!p.eat(',') || !p.transition(rule.start)) return bad("expected a daylight start rule");
  if (!p.eat(',') || !p.transition(rule.end)) return bad("expected a daylight end rule");
  if (!p.done()) return bad("unexpected text after the end rule");
  return rule;
}

std::int32_t PosixTzRule::offsetSecondsAt(std::int64_t utcSeconds) const {
  if (!hasDst) return stdOffsetSeconds;
  // The local year of the instant (in standard time) decides which year's rule applies; the
  // instants near New Year are covered by checking the neighbouring years too.
  std::int64_t localDays = (utcSeconds + stdOffsetSeconds) / 86400;
  if ((utcSeconds + stdOffsetSeconds) % 86400 < 0) --localDays;
  int year = 0;
  unsigned m = 0, d = 0;
  civilFromDays(localDays, year, m, d);
  for (int y : {year - 1, year, year + 1}) {
    const std::int64_t start = transitionUtc(this->start, y, stdOffsetSeconds);
    const std::int64_t end = transitionUtc(this->end, y, dstOffsetSeconds);
    if (start < end) {
      if (utcSeconds >= start && utcSeconds < end) return dstOffsetSeconds;
    } else {
      // Southern hemisphere: daylight time spans New Year, from `start` of y to `end` of y + 1.
      const std::int64_t nextEnd = transitionUtc(this->end, y + 1, dstOffsetSeconds);
      if (utcSeconds >= start && utcSeconds < nextEnd) return dstOffsetSeconds;
    }
  }
  return stdOffsetSeconds;
}

namespace {

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

std::int64_t be64(const unsigned char* p) {
  return static_cast<std::int64_t>((std::uint64_t(be32(p)) << 32) | be32(p + 4));
}

struct TzifHeader {
  char version = 0;
  std::uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};

bool readHeader(std::string_view bytes, std::size_t at, TzifHeader& h) {
  if (bytes.size() < at + 44 || bytes.substr(at, 4) != "TZif") return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
  h.version = static_cast<char>(p[4]);
  h.isutcnt = be32(p + 20);
  h.isstdcnt = be32(p + 24);
  h.leapcnt = be32(p + 28);
  h.timecnt = be32(p + 32);
  h.typecnt = be32(p + 36);
  h.charcnt = be32(p + 40);
  return h.typecnt > 0 && h.typecnt <= 256 && h.timecnt < 100000;
}

std::size_t dataSize(const TzifHeader& h, std::size_t timeSize) {
  return h.timecnt * timeSize + h.timecnt + h.typecnt * 6 + h.charcnt + h.leapcnt * (timeSize + 4) +
         h.isstdcnt + h.isutcnt;
}

}  // namespace

Result<TimeZone> TimeZone::fromTzif(std::string_view bytes, std::string name) {
  auto bad = [&](const char* what) {
    return fail(ErrorCode::kStructure, "time zone " + name + ": " + what);
  };
  TzifHeader h;
  if (!readHeader(bytes, 0, h)) return bad("not a TZif file");
  std::size_t at = 44;
  std::size_t timeSize = 4;
  if (h.version >= '2') {
    // Skip the 32-bit block; the 64-bit block after the second header is authoritative.
    at += dataSize(h, 4);
    if (!readHeader(bytes, at, h)) return bad("truncated TZif version 2+ header");
    at += 44;
    timeSize = 8;
  }
  if (bytes.size() < at + dataSize(h, timeSize)) return bad("truncated TZif data");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
  TimeZone zone;
  zone.name_ = std::move(name);
  zone.transitions_.reserve(h.timecnt);
  for (std::uint32_t i = 0; i < h.timecnt; ++i) {
    zone.transitions_.push_back(timeSize == 8 ? be64(p) : static_cast<std::int32_t>(be32(p)));
    p += timeSize;
  }
  for (std::uint32_t i = 0; i < h.timecnt; ++i) {
    if (*p >= h.typecnt) return bad("transition names an unknown local time type");
    zone.transitionType_.push_back(*p++);
  }
  for (std::uint32_t i = 0; i < h.typecnt; ++i) {
    zone.types_.push_back({static_cast<std::int32_t>(be32(p)), p[4] != 0});
    p += 6;
  }
  at += dataSize(h, timeSize);
  if (timeSize == 8 && at < bytes.size() && bytes[at] == '\n') {
    std::size_t endOfFooter = bytes.find('\n', at + 1);
    if (endOfFooter != std::string_view::npos && endOfFooter > at + 1) {
      auto rule = PosixTzRule::parse(bytes.substr(at + 1, endOfFooter - at - 1));
      if (rule) {
        zone.hasFooter_ = true;
        zone.footer_ = *rule;
      }
    }
  }
  return zone;
}

Result<TimeZone> TimeZone::load(std::string_view name) {
  const std::string n(name);
  bool ok = !n.empty() && n.front() != '/' && n.find("..") == std::string::npos;
  for (char c : n) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '/' || c == '_' || c == '+' || c == '-');
  }
  if (!ok) return fail(ErrorCode::kValue, "\"" + n + "\" is not an IANA time zone name");
  const char* dir = std::getenv("TZDIR");
  const std::string base = dir && *dir ? dir : "/usr/share/zoneinfo";
  std::ifstream in(base + "/" + n, std::ios::binary);
  if (!in) {
    return fail(ErrorCode::kNotFound,
                "time zone \"" + n + "\" not found under " + base + " (is tzdata installed?)");
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return fromTzif(bytes, n);
}

TimeZone TimeZone::fixed(std::int32_t offsetSeconds, std::string name) {
  TimeZone zone;
  zone.name_ = std::move(name);
  zone.types_.push_back({offsetSeconds, false});
  return zone;
}

std::int32_t TimeZone::offsetSecondsAt(std::int64_t utcSeconds) const {
  if (transitions_.empty()) {
    if (hasFooter_) return footer_.offsetSecondsAt(utcSeconds);
    return types_.empty() ? 0 : types_.front().offset;
  }
  if (utcSeconds < transitions_.front()) return types_.front().offset;
  if (utcSeconds >= transitions_.back() && hasFooter_) return footer_.offsetSecondsAt(utcSeconds);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utcSeconds);
  const std::size_t index = static_cast<std::size_t>(it - transitions_.begin()) - 1;
  return types_[transitionType_[index]].offset;
}

}  // namespace switchboard::channels::reply
