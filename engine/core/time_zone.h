// IANA time zones without std::chrono tzdb (GCC 12 has none): the one reader for TZif files
// (RFC 8536, versions 1 to 4) from the system zoneinfo directory, with the POSIX TZ footer rule for
// instants after the last transition, the local-wall-clock to instant conversion that appointment
// times need, and proleptic Gregorian day arithmetic. Used by the mapping language ($localInstant)
// and the reply destination (clinic wall clock). Thread-safety: a loaded TimeZone and a PosixRule
// are immutable and may be read from any thread; TimeZone::get() caches behind a mutex (and each
// thread remembers the last zone it got, to skip the lock) and may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"

namespace switchboard::core {

class TimeZone {
 public:
  // A POSIX TZ rule ("EST5EDT,M3.2.0,M11.1.0"), as TZif footers carry it.
  struct PosixRule {
    int stdOffset = 0;  // seconds east of UTC
    bool hasDst = false;
    int dstOffset = 0;
    struct When {
      enum class Kind { kJulianNoLeap, kZeroBasedDay, kMonthWeekDay } kind = Kind::kMonthWeekDay;
      int day = 0, week = 0, month = 0;  // Jn: day 1..365; n: day 0..365; Mm.w.d
      int seconds = 7200;                // local time of day of the change, may be <0 or >24h
    } start, end;

    // Offset in seconds east of UTC in force at `utcSeconds` (Unix time) under this rule. `start`
    // is read in standard local time and `end` in daylight local time; a start later in the year
    // than the end (southern hemisphere) means daylight time spans the new year.
    int offsetAt(std::int64_t utcSeconds) const;
  };

  // The zone named `name` (e.g. "America/New_York") from `root` (default: $TZDIR or
  // /usr/share/zoneinfo). Names with "..", a leading '/', or characters outside [A-Za-z0-9_+-/]
  // are refused (kValue); a missing file is kNotFound, a file that is not TZif kStructure.
  // Cached: later calls with the same name and root return the same object.
  static Result<std::shared_ptr<const TimeZone>> get(std::string_view name,
                                                     const std::string& root = {});
  // Parses TZif bytes; `name` is used in messages only.
  static Result<std::shared_ptr<const TimeZone>> parse(std::string_view bytes,
                                                       std::string_view name);
  // Parses a POSIX TZ string; empty optional when malformed (or empty). A rule with a daylight name
  // but no change dates gets the US dates (M3.2.0, M11.1.0), as glibc assumes.
  static std::optional<PosixRule> parsePosix(std::string_view text);

  const std::string& name() const { return name_; }
  // UTC offset in seconds east of UTC in force at `utcSeconds` (Unix time).
  int offsetAt(std::int64_t utcSeconds) const;
  // The instant (Unix seconds) of a local wall-clock time given as seconds since 1970-01-01T00:00
  // local. A time in a spring-forward gap is moved forward by the gap (02:30 becomes 03:30 DST);
  // a time that occurs twice at a fall-back takes the earlier instant (the daylight one).
  std::int64_t toUtc(std::int64_t localSeconds) const;

 private:
  std::string name_;
  std::vector<std::int64_t> transitions_;  // ascending UTC seconds
  std::vector<int> offsetAfter_;           // offset in force from transitions_[i]
  int initialOffset_ = 0;                  // before the first transition
  std::optional<PosixRule> footer_;        // after the last transition
};

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12), and back (negative days are
// dates before 1970).
std::int64_t daysFromCivil(int year, int month, int day);
void civilFromDays(std::int64_t days, int& year, int& month, int& day);

// "2026-02-12T10:00:00-05:00": the instant of local `date` ("YYYY-MM-DD") and `time` ("HHMM",
// "HH:MM" or "HH:MM:SS") in `zone`, plus `addMinutes`, written with the offset in force at that
// instant. Errors (kValue) say what is wrong with the date or the time.
Result<std::string> localInstant(const TimeZone& zone, std::string_view date, std::string_view time,
                                 std::int64_t addMinutes = 0);
// The same text written into `out` (kLocalInstantBytes of room, no terminating NUL needed):
// its length. For callers that copy the text elsewhere anyway (no allocation).
inline constexpr std::size_t kLocalInstantBytes = 64;
Result<std::size_t> writeLocalInstant(const TimeZone& zone, std::string_view date,
                                      std::string_view time, std::int64_t addMinutes, char* out);

// "2026-02-10T14:00:00.000Z" for Unix milliseconds (UTC).
std::string utcInstant(std::int64_t unixMillis);

}  // namespace switchboard::core
