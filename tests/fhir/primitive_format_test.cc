// Primitive type formats: the R4 regexes and the calendar.
#include <string>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/test/unit_test.hpp>

#include "engine/fhir/primitive_format.h"

using switchboard::fhir::checkPrimitive;
using switchboard::fhir::checkPrimitiveText;

namespace {

bool ok(const char* type, const char* text) { return !checkPrimitiveText(type, text); }

bool okJson(const char* type, const char* json) {
  rapidjson::Document d;
  d.Parse(json);
  BOOST_REQUIRE(!d.HasParseError());
  return !checkPrimitive(type, d);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(primitive_format)

BOOST_AUTO_TEST_CASE(instant_needs_seconds_and_zone) {
  BOOST_TEST(ok("instant", "2024-04-02T09:00:00Z"));
  BOOST_TEST(ok("instant", "2024-04-02T09:00:00.123-05:00"));
  BOOST_TEST(ok("instant", "2024-04-02T09:00:00+14:00"));
  BOOST_TEST(!ok("instant", "2024-04-02T09:00Z"));    // no seconds
  BOOST_TEST(!ok("instant", "2024-04-02T09:00:00"));  // no zone
  BOOST_TEST(!ok("instant", "2024-04-02"));           // no time
  BOOST_TEST(!ok("instant", "2024-04-02T09:00:00+15:00"));
  BOOST_TEST(!ok("instant", "2024-04-02 09:00:00Z"));
  auto why = checkPrimitiveText("instant", "2024-04-02T09:00:00");
  BOOST_REQUIRE(why);
  BOOST_TEST(why->find("time zone") != std::string::npos);
  why = checkPrimitiveText("instant", "2024-04-02T09:00Z");
  BOOST_REQUIRE(why);
  BOOST_TEST(why->find("seconds") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(date_and_datetime_check_the_calendar) {
  BOOST_TEST(ok("date", "1987"));
  BOOST_TEST(ok("date", "1987-02"));
  BOOST_TEST(ok("date", "2024-02-29"));
  BOOST_TEST(!ok("date", "2023-02-29"));
  BOOST_TEST(!ok("date", "1987-13-01"));
  BOOST_TEST(!ok("date", "1987-04-31"));
  BOOST_TEST(!ok("date", "0000-01-01"));
  BOOST_TEST(!ok("date", "87-02-28"));
  BOOST_TEST(!ok("date", "1987-02-28T10:00:00Z"));
  BOOST_TEST(!ok("date", "28/02/1987"));
  BOOST_TEST(ok("dateTime", "1987-02-28"));
  BOOST_TEST(ok("dateTime", "1987-02-28T10:00:00+01:00"));
  BOOST_TEST(!ok("dateTime", "1987-02-28T10:00"));
  BOOST_TEST(!ok("dateTime", "1987-02-28T10:00:00"));
  BOOST_TEST(!ok("dateTime", "1987-02T10:00:00Z"));
  BOOST_TEST(!ok("dateTime", "1987-02-28T24:00:00Z"));
}

BOOST_AUTO_TEST_CASE(time_has_no_zone) {
  BOOST_TEST(ok("time", "09:30:00"));
  BOOST_TEST(ok("time", "09:30:00.5"));
  BOOST_TEST(!ok("time", "09:30"));
  BOOST_TEST(!ok("time", "09:30:00Z"));
  BOOST_TEST(!ok("time", "25:00:00"));
}

BOOST_AUTO_TEST_CASE(string_like_types) {
  BOOST_TEST(ok("code", "booked"));
  BOOST_TEST(ok("code", "entered in error"));
  BOOST_TEST(!ok("code", " booked"));
  BOOST_TEST(!ok("code", "a  b"));
  BOOST_TEST(!ok("code", ""));
  BOOST_TEST(ok("id", "appt-1.v2"));
  BOOST_TEST(!ok("id", "appt_1"));
  BOOST_TEST(!ok("id", std::string(65, 'a').c_str()));
  BOOST_TEST(ok("uri", "urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11"));
  BOOST_TEST(!ok("uri", "http://example.org/a b"));
  BOOST_TEST(ok("uuid", "urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11"));
  BOOST_TEST(!ok("uuid", "urn:uuid:0B9A1F43-9a7d-4c3e-8f36-2f5c9e0c1a11"));
  BOOST_TEST(ok("oid", "urn:oid:2.16.840.1.113883"));
  BOOST_TEST(!ok("oid", "urn:oid:3.1"));
  BOOST_TEST(!ok("oid", "urn:oid:2.01"));
  BOOST_TEST(ok("base64Binary", "aGVsbG8="));
  BOOST_TEST(!ok("base64Binary", "aGVsbG8"));
  BOOST_TEST(!ok("base64Binary", "aGV$bG8="));
  BOOST_TEST(ok("string", "Ana"));
  BOOST_TEST(!ok("string", ""));
  BOOST_TEST(!ok("string", "   "));
  BOOST_TEST(ok("xhtml", "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"));
  BOOST_TEST(!ok("xhtml", "plain text"));
}

BOOST_AUTO_TEST_CASE(json_kinds_and_integer_ranges) {
  BOOST_TEST(okJson("boolean", "true"));
  BOOST_TEST(!okJson("boolean", "\"true\""));
  BOOST_TEST(okJson("integer", "-3"));
  BOOST_TEST(!okJson("integer", "3.5"));
  BOOST_TEST(!okJson("integer", "\"3\""));
  BOOST_TEST(!okJson("integer", "2147483648"));
  BOOST_TEST(okJson("positiveInt", "1"));
  BOOST_TEST(!okJson("positiveInt", "0"));
  BOOST_TEST(okJson("unsignedInt", "0"));
  BOOST_TEST(!okJson("unsignedInt", "-1"));
  BOOST_TEST(okJson("decimal", "1.50"));
  BOOST_TEST(okJson("decimal", "2"));
  BOOST_TEST(!okJson("decimal", "\"1.5\""));
  BOOST_TEST(!okJson("date", "19870228"));
  BOOST_TEST(okJson("date", "\"1987-02-28\""));
}

// uri and code look for whitespace 16 bytes at a time (the last block overlapping), or a word at a
// time in shorter texts: every length across a few blocks, every position, each kind of blank, a
// control character and bytes above a space.
BOOST_AUTO_TEST_CASE(whitespace_found_at_every_position) {
  for (std::size_t n = 1; n <= 50; ++n) {
    const std::string clean(n, 'x');
    BOOST_TEST_CONTEXT("length " << n) {
      BOOST_TEST(ok("uri", clean.c_str()));
      BOOST_TEST(ok("code", clean.c_str()));
      for (std::size_t i = 0; i < n; ++i) {
        for (char blank : {' ', '\t', '\n', '\r'}) {
          std::string s = clean;
          s[i] = blank;
          BOOST_TEST_CONTEXT("blank " << int(blank) << " at " << i) {
            BOOST_TEST(!ok("uri", s.c_str()));
            // a code may hold single inner spaces, nothing else
            const bool inner = i > 0 && i + 1 < n;
            BOOST_TEST(ok("code", s.c_str()) == (blank == ' ' && inner));
          }
        }
        std::string control = clean;
        control[i] = '\x01';  // at or below a space, but no whitespace: allowed in both
        BOOST_TEST(ok("uri", control.c_str()));
        BOOST_TEST(ok("code", control.c_str()));
        // Above a space as unsigned, some with the high bit of a blank or of 0x21 (the word-wise
        // scan of short texts must not see them as blanks): a UTF-8 lead byte, 0xA0, 0x80, 0xFF,
        // '!'.
        for (char above : {'\xC3', '\xA0', '\x80', '\xFF', '!'}) {
          std::string high = clean;
          high[i] = above;
          BOOST_TEST(ok("uri", high.c_str()));
        }
      }
    }
  }
  BOOST_TEST(!ok("code", "a  b"));
  BOOST_TEST(!ok("code", "0123456789abcdefghij  klm"));  // consecutive spaces past a block
}

// plainlyValid() lets the walk skip checkPrimitive() for the commonest values: differential
// against checkPrimitive() for every primitive type and JSON values of every shape (it may only
// say "valid" where checkPrimitive finds nothing), and it does answer for the usual values.
BOOST_AUTO_TEST_CASE(plainly_valid_never_accepts_what_the_full_check_rejects) {
  using switchboard::fhir::plainlyValid;
  using switchboard::fhir::primitiveKind;
  const char* types[] = {"boolean", "integer",   "positiveInt", "unsignedInt", "decimal",
                         "string",  "markdown",  "code",        "id",          "uri",
                         "url",     "canonical", "oid",         "uuid",        "base64Binary",
                         "instant", "date",      "dateTime",    "time",        "xhtml"};
  std::vector<std::string> texts = {"",
                                    " ",
                                    "  ",
                                    "a",
                                    " a",
                                    "a ",
                                    "a b",
                                    "a  b",
                                    "\t",
                                    "a\tb",
                                    "a\nb",
                                    "\r",
                                    "\x01",
                                    "x\x01y",
                                    "booked",
                                    "\xC3\xA9",
                                    "http://example.org/a",
                                    "http://example.org/a b",
                                    "urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11",
                                    "urn:oid:2.16.840",
                                    "2024-02-30",
                                    "1992-08-22",
                                    "2026-02-12T10:00:00-05:00",
                                    "10:00:00",
                                    "true",
                                    "1",
                                    "-1",
                                    "1.5",
                                    "aGVsbG8=",
                                    "<div>x</div>",
                                    std::string(70, 'a'),
                                    "0123456789abcdef0123456789abcdef x"};
  std::vector<std::string> jsons = {"true", "false",      "null", "0",  "-1",        "1",
                                    "1.5",  "2147483648", "{}",   "[]", "{\"a\":1}", "[\"a\"]"};
  for (const auto& t : texts) {
    rapidjson::StringBuffer b;
    rapidjson::Writer<rapidjson::StringBuffer> w(b);
    w.String(t.data(), static_cast<rapidjson::SizeType>(t.size()));
    jsons.emplace_back(b.GetString(), b.GetSize());
  }
  int accepted = 0;
  for (const char* type : types) {
    for (const auto& json : jsons) {
      rapidjson::Document d;
      d.Parse(json.c_str());
      BOOST_REQUIRE(!d.HasParseError());
      if (!plainlyValid(primitiveKind(type), d)) continue;
      ++accepted;
      BOOST_TEST(!checkPrimitive(type, d), type << " " << json);
    }
  }
  BOOST_TEST(accepted > 40);
  rapidjson::Document v;
  v.Parse("\"booked\"");
  BOOST_TEST(plainlyValid(primitiveKind("code"), v));
  BOOST_TEST(plainlyValid(primitiveKind("string"), v));
  BOOST_TEST(plainlyValid(primitiveKind("uri"), v));
  v.Parse("true");
  BOOST_TEST(plainlyValid(primitiveKind("boolean"), v));
}

BOOST_AUTO_TEST_SUITE_END()
