// IANA time zones for showing an appointment time in the clinic's zone: reads the compiled
// zoneinfo file (TZif, RFC 8536) of a zone such as "America/New_York" from $TZDIR or
// /usr/share/zoneinfo, and answers the UTC offset at an instant from its transitions, falling back
// to the file's POSIX TZ footer rule ("EST5EDT,M3.2.0,M11.1.0") after the last transition.
// GCC 12's libstdc++ has no std::chrono::tzdb, hence this small reader.
// Thread-safety: a loaded TimeZone is immutable; offsetSecondsAt() may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"

namespace switchboard::channels::reply {

// A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"): standard offset and, optionally, a daylight
// offset with its yearly start and end.
struct PosixTzRule {
  struct Transition {
    enum class Form { kMonthWeekDay, kJulianNoLeap, kZeroBasedDay };
    Form form = Form::kMonthWeekDay;
    int month = 0, week = 0, weekday = 0;  // kMonthWeekDay: Mm.w.d
    int day = 0;                           // kJulianNoLeap: Jn (1..365); kZeroBasedDay: n (0..365)
    std::int32_t timeSeconds = 7200;       // local time of the change, default 02:00
  };
  std::int32_t stdOffsetSeconds = 0;  // east of UTC (the POSIX sign inverted)
  bool hasDst = false;
  std::int32_t dstOffsetSeconds = 0;
  Transition start, end;

  // Parses a rule; an error names what is wrong. An empty rule is an error.
  static Result<PosixTzRule> parse(std::string_view text);
  std::int32_t offsetSecondsAt(std::int64_t utcSeconds) const;
};

class TimeZone {
 public:
  // Loads zone `name` ("Europe/Berlin", "UTC"). Names with "..", a leading '/' or characters
  // outside [A-Za-z0-9/_+-] are refused.
  static Result<TimeZone> load(std::string_view name);
  // Parses TZif bytes (versions 1-4).
  static Result<TimeZone> fromTzif(std::string_view bytes, std::string name);
  // A zone with one fixed offset (used when no zone is configured).
  static TimeZone fixed(std::int32_t offsetSeconds, std::string name);

  const std::string& name() const { return name_; }
  // Offset east of UTC, in seconds, in force at `utcSeconds` (Unix time).
  std::int32_t offsetSecondsAt(std::int64_t utcSeconds) const;

 private:
  struct Type {
    std::int32_t offset = 0;
    bool dst = false;
  };
  std::string name_;
  std::vector<std::int64_t> transitions_;     // ascending Unix seconds
  std::vector<std::uint8_t> transitionType_;  // index into types_ per transition
  std::vector<Type> types_;
  bool hasFooter_ = false;
  PosixTzRule footer_;
};

// Days since 1970-01-01 of a proleptic Gregorian date, and back.
std::int64_t daysFromCivil(int year, unsigned month, unsigned day);
void civilFromDays(std::int64_t days, int& year, unsigned& month, unsigned& day);

}  // namespace switchboard::channels::reply
