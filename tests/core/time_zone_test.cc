// engine/core/time_zone: TZif reading, POSIX rules (and their agreement with the zone files), civil
// dates, and local-time conversion including DST gaps and overlaps.
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>

#include "engine/core/time_zone.h"

namespace switchboard::core {
namespace {

std::string at(const char* zone, const char* date, const char* time, int plus = 0) {
  auto tz = TimeZone::get(zone);
  BOOST_REQUIRE_MESSAGE(tz.has_value(), zone);
  auto s = localInstant(**tz, date, time, plus);
  BOOST_REQUIRE_MESSAGE(s.has_value(), (s ? std::string() : s.error().message));
  return *s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(time_zone)

BOOST_AUTO_TEST_CASE(new_york_winter_and_summer) {
  BOOST_TEST(at("America/New_York", "2026-02-12", "1000") == "2026-02-12T10:00:00-05:00");
  BOOST_TEST(at("America/New_York", "2026-07-01", "09:30") == "2026-07-01T09:30:00-04:00");
  BOOST_TEST(at("America/Los_Angeles", "2026-02-12", "16:00:05") == "2026-02-12T16:00:05-08:00");
}

BOOST_AUTO_TEST_CASE(spring_forward_gap_moves_later) {
  // 2026-03-08 02:00 EST does not exist in New York: clocks jump to 03:00 EDT.
  BOOST_TEST(at("America/New_York", "2026-03-08", "0130") == "2026-03-08T01:30:00-05:00");
  BOOST_TEST(at("America/New_York", "2026-03-08", "0230") == "2026-03-08T03:30:00-04:00");
  BOOST_TEST(at("America/New_York", "2026-03-08", "0300") == "2026-03-08T03:00:00-04:00");
}

BOOST_AUTO_TEST_CASE(fall_back_overlap_takes_earlier_instant) {
  // 01:30 happens twice on 2026-11-01; the first (EDT) is chosen.
  BOOST_TEST(at("America/New_York", "2026-11-01", "0130") == "2026-11-01T01:30:00-04:00");
  BOOST_TEST(at("America/New_York", "2026-11-01", "0200") == "2026-11-01T02:00:00-05:00");
  BOOST_TEST(at("America/New_York", "2026-10-31", "2359") == "2026-10-31T23:59:00-04:00");
}

BOOST_AUTO_TEST_CASE(duration_across_a_transition_shows_the_new_offset) {
  // The first 01:30 of the fall-back day is EDT; an hour later the wall clock shows 01:30 EST.
  BOOST_TEST(at("America/New_York", "2026-11-01", "0130", 60) == "2026-11-01T01:30:00-05:00");
  BOOST_TEST(at("America/New_York", "2026-03-08", "0130", 40) == "2026-03-08T03:10:00-04:00");
  BOOST_TEST(at("America/New_York", "2026-12-31", "2330", 45) == "2027-01-01T00:15:00-05:00");
}

BOOST_AUTO_TEST_CASE(southern_hemisphere_and_fractional_offsets) {
  BOOST_TEST(at("Australia/Sydney", "2026-01-15", "1000") == "2026-01-15T10:00:00+11:00");
  BOOST_TEST(at("Australia/Sydney", "2026-07-15", "1000") == "2026-07-15T10:00:00+10:00");
  BOOST_TEST(at("Asia/Kolkata", "2026-02-12", "1000") == "2026-02-12T10:00:00+05:30");
  BOOST_TEST(at("UTC", "2026-02-12", "1000") == "2026-02-12T10:00:00+00:00");
  BOOST_TEST(at("Europe/London", "2026-03-29", "0130") == "2026-03-29T02:30:00+01:00");
}

BOOST_AUTO_TEST_CASE(posix_rule_beyond_the_table) {
  auto rule = TimeZone::parsePosix("EST5EDT,M3.2.0,M11.1.0");
  BOOST_REQUIRE(rule);
  BOOST_TEST(rule->stdOffset == -5 * 3600);
  BOOST_TEST(rule->dstOffset == -4 * 3600);
  BOOST_TEST(rule->start.month == 3);
  BOOST_TEST(rule->end.week == 1);
  // 2100 lies past the 2037 transitions table: the footer rule decides.
  BOOST_TEST(at("America/New_York", "2100-07-01", "1200") == "2100-07-01T12:00:00-04:00");
  BOOST_TEST(at("America/New_York", "2100-03-14", "0230") == "2100-03-14T03:30:00-04:00");
  BOOST_TEST(at("America/New_York", "2100-12-01", "1200") == "2100-12-01T12:00:00-05:00");
  auto south = TimeZone::parsePosix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  BOOST_REQUIRE(south);
  BOOST_TEST(south->stdOffset == 10 * 3600 + 1800);
  BOOST_TEST(!TimeZone::parsePosix("EST"));
  BOOST_TEST(!TimeZone::parsePosix("EST5EDT,M13.1.0,M11.1.0"));
}

BOOST_AUTO_TEST_CASE(bad_names_and_values) {
  BOOST_TEST(!TimeZone::get("../etc/passwd"));
  BOOST_TEST(!TimeZone::get("/etc/localtime"));
  BOOST_TEST(!TimeZone::get("Mars/Olympus_Mons"));
  BOOST_TEST(
      !TimeZone::parse("not a tzif file at all, but long enough to have a header........", "x"));
  auto tz = TimeZone::get("America/New_York");
  BOOST_REQUIRE(tz);
  auto bad = localInstant(**tz, "2026-02-30", "1000");
  BOOST_REQUIRE(!bad);
  BOOST_TEST(bad.error().message == "date does not exist in the calendar");
  BOOST_TEST(!localInstant(**tz, "2026-2-3", "1000"));
  BOOST_TEST(!localInstant(**tz, "2026-02-03", "2400"));
  BOOST_TEST(!localInstant(**tz, "2026-02-03", "10am"));
  BOOST_TEST(localInstant(**tz, "2028-02-29", "1000").has_value());
}

BOOST_AUTO_TEST_CASE(offsets_follow_daylight_saving) {
  auto ny = TimeZone::get("America/New_York");
  BOOST_REQUIRE_MESSAGE(ny.has_value(), (ny ? std::string() : ny.error().message));
  // 2026-01-15T12:00Z: EST; 2026-03-09T14:30Z: EDT (DST began 2026-03-08 07:00Z).
  BOOST_TEST((*ny)->offsetAt(daysFromCivil(2026, 1, 15) * 86400 + 12 * 3600) == -5 * 3600);
  BOOST_TEST((*ny)->offsetAt(daysFromCivil(2026, 3, 9) * 86400 + 14 * 3600 + 1800) == -4 * 3600);
  BOOST_TEST((*ny)->offsetAt(daysFromCivil(2026, 3, 8) * 86400 + 7 * 3600 - 1) == -5 * 3600);
  BOOST_TEST((*ny)->offsetAt(daysFromCivil(2026, 3, 8) * 86400 + 7 * 3600) == -4 * 3600);
  auto kolkata = TimeZone::get("Asia/Kolkata");
  BOOST_REQUIRE(kolkata.has_value());
  BOOST_TEST((*kolkata)->offsetAt(daysFromCivil(2026, 7, 1) * 86400) == 5 * 3600 + 1800);
  // Cached: the same object for the same name.
  BOOST_TEST(TimeZone::get("America/New_York")->get() == ny->get());
  auto missing = TimeZone::get("Mars/Olympus_Mons");
  BOOST_REQUIRE(!missing);
  BOOST_TEST((missing.error().code == ErrorCode::kNotFound));
  BOOST_TEST((TimeZone::get("../etc/passwd").error().code == ErrorCode::kValue));
}

BOOST_AUTO_TEST_CASE(posix_rules_agree_with_the_zone_files) {
  // The footer rule is what answers after the last transition; it must agree with the
  // transitions wherever both exist (2008-2037 for these zones).
  struct Case {
    const char* zone;
    const char* rule;
  };
  for (const Case& c : {Case{"America/New_York", "EST5EDT,M3.2.0,M11.1.0"},
                        Case{"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"},
                        Case{"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3"},
                        Case{"America/Sao_Paulo", "<-03>3"}}) {
    auto zone = TimeZone::get(c.zone);
    BOOST_REQUIRE_MESSAGE(zone.has_value(), c.zone);
    auto rule = TimeZone::parsePosix(c.rule);
    BOOST_REQUIRE_MESSAGE(rule.has_value(), c.rule);
    const std::int64_t from = daysFromCivil(2020, 1, 1) * 86400;
    const std::int64_t to = daysFromCivil(2037, 1, 1) * 86400;
    for (std::int64_t t = from; t < to; t += 3 * 3600 + 17) {
      if ((*zone)->offsetAt(t) != rule->offsetAt(t)) {
        BOOST_FAIL(std::string(c.zone) + " disagrees with its rule at " + std::to_string(t));
      }
    }
  }
  BOOST_TEST(!TimeZone::parsePosix("EST5EDT,M13.1.0,M11.1.0").has_value());
  BOOST_TEST(!TimeZone::parsePosix("").has_value());
}

BOOST_AUTO_TEST_CASE(posix_rule_edges) {
  // Southern hemisphere: daylight time spans the new year.
  auto sydney = TimeZone::parsePosix("AEST-10AEDT,M10.1.0,M4.1.0/3");
  BOOST_REQUIRE(sydney);
  BOOST_TEST(sydney->offsetAt(daysFromCivil(2100, 1, 1) * 86400) == 11 * 3600);
  BOOST_TEST(sydney->offsetAt(daysFromCivil(2100, 7, 1) * 86400) == 10 * 3600);
  BOOST_TEST(sydney->offsetAt(daysFromCivil(2099, 12, 31) * 86400 + 13 * 3600) == 11 * 3600);
  // A daylight name without dates takes the US dates: 2026-03-08 07:00Z and 2026-11-01 06:00Z.
  auto us = TimeZone::parsePosix("EST5EDT");
  BOOST_REQUIRE(us);
  BOOST_TEST(us->offsetAt(daysFromCivil(2026, 3, 8) * 86400 + 7 * 3600 - 1) == -5 * 3600);
  BOOST_TEST(us->offsetAt(daysFromCivil(2026, 3, 8) * 86400 + 7 * 3600) == -4 * 3600);
  BOOST_TEST(us->offsetAt(daysFromCivil(2026, 11, 1) * 86400 + 6 * 3600 - 1) == -4 * 3600);
  BOOST_TEST(us->offsetAt(daysFromCivil(2026, 11, 1) * 86400 + 6 * 3600) == -5 * 3600);
  // Julian days without February 29: J60 is March 1 in a leap year too.
  auto julian = TimeZone::parsePosix("XXX0YYY,J60/0,J300/0");
  BOOST_REQUIRE(julian);
  BOOST_TEST(julian->offsetAt(daysFromCivil(2028, 2, 29) * 86400) == 0);
  BOOST_TEST(julian->offsetAt(daysFromCivil(2028, 3, 1) * 86400) == 3600);
  // Fixed offsets only.
  auto fixed = TimeZone::parsePosix("<+0530>-5:30");
  BOOST_REQUIRE(fixed);
  BOOST_TEST(fixed->offsetAt(0) == 5 * 3600 + 1800);
}

BOOST_AUTO_TEST_CASE(civil_days_round_trip) {
  BOOST_TEST(daysFromCivil(1970, 1, 1) == 0);
  BOOST_TEST(daysFromCivil(2000, 3, 1) == 11017);
  BOOST_TEST(daysFromCivil(1969, 12, 31) == -1);
  for (std::int64_t d = daysFromCivil(1600, 1, 1); d < daysFromCivil(2400, 12, 31); d += 13) {
    int y = 0, m = 0, day = 0;
    civilFromDays(d, y, m, day);
    if (daysFromCivil(y, m, day) != d || m < 1 || m > 12 || day < 1 || day > 31) {
      BOOST_FAIL("day " + std::to_string(d) + " does not round-trip");
    }
  }
  int y = 0, m = 0, d = 0;
  civilFromDays(daysFromCivil(2028, 2, 29), y, m, d);
  BOOST_TEST((y == 2028 && m == 2 && d == 29));
}

BOOST_AUTO_TEST_CASE(utc_instant_text) {
  BOOST_TEST(utcInstant(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(utcInstant(1770732000123) == "2026-02-10T14:00:00.123Z");
  BOOST_TEST(utcInstant(-1) == "1969-12-31T23:59:59.999Z");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::core
