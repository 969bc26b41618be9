// The 72-message sample corpus: byte-for-byte round trip, and path reads of values checked by
// reading the files (tests/data/hl7v2-samples/SOURCES.md describes each file).
#include <boost/test/unit_test.hpp>

#include "hl7v2/message.h"
#include "tests/hl7v2/test_util.h"

namespace switchboard::hl7v2 {
namespace {

using test::corpusFiles;
using test::corpusMessage;
using test::readBytes;

Message parsed(const std::string& prefix) {
  std::string text = corpusMessage(prefix);
  BOOST_REQUIRE_MESSAGE(!text.empty(),
                        "corpus file " << prefix << " not found under " << test::corpusDir());
  auto m = Message::parse(text);
  BOOST_REQUIRE_MESSAGE(m.has_value(), prefix << ": " << m.error().message);
  return std::move(*m);
}

std::string get(const Message& m, const std::string& path) {
  auto v = m.get(path);
  BOOST_REQUIRE_MESSAGE(v.has_value(), path << ": " << v.error().message);
  return *v;
}

std::string raw(const Message& m, const std::string& path) {
  auto v = m.getRaw(path);
  BOOST_REQUIRE_MESSAGE(v.has_value(), path << ": " << v.error().message);
  return *v;
}

BOOST_AUTO_TEST_SUITE(corpus)

BOOST_AUTO_TEST_CASE(every_file_round_trips_byte_for_byte) {
  auto files = corpusFiles();
  BOOST_REQUIRE_EQUAL(files.size(), 72u);
  size_t ok = 0;
  for (const auto& f : files) {
    const std::string name = f.filename().string();
    const std::string text = readBytes(f);
    BOOST_REQUIRE_MESSAGE(!text.empty(), name << " is empty or unreadable");
    auto m = Message::parse(text);
    if (!m) {
      BOOST_ERROR(name << " does not parse: " << m.error().message << " (" << m.error().location
                       << ")");
      continue;
    }
    const std::string out = m->toEr7();
    if (out != text) {
      size_t at = 0;
      while (at < out.size() && at < text.size() && out[at] == text[at]) ++at;
      BOOST_ERROR(name << " does not round-trip: first difference at byte " << at << " (input "
                       << text.size() << " bytes, output " << out.size() << ")");
      continue;
    }
    // The segment count matches the CR count (files hold no empty segments).
    size_t crs = static_cast<size_t>(std::count(text.begin(), text.end(), '\r'));
    size_t expected = crs + (text.back() == '\r' ? 0 : 1);
    BOOST_CHECK_MESSAGE(m->segments().size() == expected,
                        name << ": " << m->segments().size() << " segments, expected " << expected);
    BOOST_CHECK_MESSAGE(m->endsWithTerminator() == (text.back() == '\r'), name);
    ++ok;
  }
  BOOST_TEST_MESSAGE("round trip: " << ok << " of " << files.size());
  BOOST_CHECK_EQUAL(ok, files.size());
}

BOOST_AUTO_TEST_CASE(repetitions_components_and_msh_facts_004) {
  Message m = parsed("004");
  BOOST_CHECK_EQUAL(get(m, "PID-3(2).1"), "4242");
  BOOST_CHECK_EQUAL(get(m, "PID-3(3).4"), "YARDI");
  BOOST_CHECK_EQUAL(get(m, "PID-3.1"), "397979797");  // no repetition given: the first
  BOOST_CHECK_EQUAL(raw(m, "PID-3"), "397979797^^^SN^SN~4242^^^BKDMDM^PI~1000^^^YARDI^PI");
  BOOST_CHECK_EQUAL(get(m, "PID-5.1"), "Williams");
  BOOST_CHECK_EQUAL(get(m, "PID-5.2"), "Rory");
  BOOST_CHECK_EQUAL(get(m, "NK1[2]-2(2).2"), "The Doctor");
  BOOST_CHECK_EQUAL(get(m, "NK1[2]-2(1).1"), "Smith");
  BOOST_CHECK_EQUAL(get(m, "IN1[3]-15"), "Medicaid");
  BOOST_CHECK_EQUAL(get(m, "ZFA-5"), "20120201000000-0600");
  BOOST_CHECK_EQUAL(get(m, "IN1[4]-15"), "");   // no fourth IN1
  BOOST_CHECK_EQUAL(get(m, "PID-3(4).1"), "");  // no fourth repetition
  BOOST_CHECK_EQUAL(m.count("IN1"), 3u);
  BOOST_CHECK_EQUAL(m.messageCode(), "ADT");
  BOOST_CHECK_EQUAL(m.triggerEvent(), "A01");
  BOOST_CHECK_EQUAL(m.messageStructure(), "ADT_A01");
  BOOST_CHECK_EQUAL(m.controlId(), "9c906177-dfca-4bbe-9abd-d8eb43df93a0");
  BOOST_CHECK_EQUAL(m.version(), "2.6");
  BOOST_CHECK_EQUAL(get(m, "MSH-1"), "|");
  BOOST_CHECK_EQUAL(get(m, "MSH-2"), "^~\\&");
  BOOST_CHECK_EQUAL(get(m, "MSH-3"), "DATASERVICES");
  BOOST_CHECK_EQUAL(get(m, "MSH-7"), "20120711120510.2-0500");
}

BOOST_AUTO_TEST_CASE(non_default_delimiters_018) {
  // Field ^, component ~, repetition |, escape \, subcomponent &.
  Message m = parsed("018");
  BOOST_CHECK_EQUAL(m.delimiters().field, '^');
  BOOST_CHECK_EQUAL(m.delimiters().component, '~');
  BOOST_CHECK_EQUAL(m.delimiters().repetition, '|');
  BOOST_CHECK_EQUAL(get(m, "MSH-3"), "SENDING");
  BOOST_CHECK_EQUAL(m.messageCode(), "ADT");
  BOOST_CHECK_EQUAL(m.triggerEvent(), "A24");
  BOOST_CHECK_EQUAL(m.controlId(), "2003582144");
  BOOST_CHECK_EQUAL(m.version(), "2.4");
  BOOST_CHECK_EQUAL(get(m, "PID[2]-1"), "2");
  BOOST_CHECK_EQUAL(get(m, "PID-3.4.3"), "0363");
  BOOST_CHECK_EQUAL(get(m, "PID-3.6.2"), "200M");
  BOOST_CHECK_EQUAL(get(m, "PID-5.2"), "JOHN");
}

BOOST_AUTO_TEST_CASE(all_five_delimiter_escapes_031) {
  Message m = parsed("031");
  BOOST_CHECK_EQUAL(raw(m, "PID-5.1"), "Smith\\F\\\\S\\\\R\\\\E\\\\T\\");
  BOOST_CHECK_EQUAL(get(m, "PID-5.1"), "Smith|^~\\&");
  BOOST_CHECK_EQUAL(get(m, "PID-5.2"), "John");
  BOOST_CHECK_EQUAL(m.messageStructure(), "");  // ORM^O01 with no MSH-9.3, not in the table
}

BOOST_AUTO_TEST_CASE(subcomponent_dollar_047) {
  Message m = parsed("047");
  BOOST_CHECK_EQUAL(m.delimiters().subcomponent, '$');
  BOOST_CHECK_EQUAL(m.count("OBX"), 20u);
  BOOST_CHECK_EQUAL(get(m, "OBX[3]-3"), "RBC");
  BOOST_CHECK_EQUAL(get(m, "OBX[3]-5"), "4.00");
  BOOST_CHECK_EQUAL(get(m, "PID-5.1"), "BARNES");
}

BOOST_AUTO_TEST_CASE(msh_only_custom_delimiters_062) {
  Message m = parsed("062");
  BOOST_CHECK_EQUAL(m.segments().size(), 1u);
  BOOST_CHECK_EQUAL(get(m, "MSH-1"), "!");
  BOOST_CHECK_EQUAL(get(m, "MSH-2"), "$r?@");
  BOOST_CHECK_EQUAL(m.messageCode(), "RSP^SLI^RSP_K11");  // ^ is not a delimiter here
  BOOST_CHECK_EQUAL(m.triggerEvent(), "");
  BOOST_CHECK_EQUAL(m.controlId(), "430102");
  BOOST_CHECK_EQUAL(m.version(), "2.5");
  BOOST_CHECK_EQUAL(get(m, "MSH-4"), "LIP");
  BOOST_CHECK_EQUAL(get(m, "MSH-5"), "LB");
}

BOOST_AUTO_TEST_CASE(highlight_escapes_kept_063) {
  Message m = parsed("063");
  BOOST_CHECK_EQUAL(get(m, "MSH-8"), "\\H\\HIGHLIGHTED\\N\\TEXT\\H\\IMPORTANT\\N\\");
  BOOST_CHECK_EQUAL(m.messageStructure(), "RSP_K11");
}

BOOST_AUTO_TEST_CASE(no_message_type_071) {
  Message m = parsed("071");
  BOOST_CHECK_EQUAL(m.delimiters().field, '$');
  BOOST_CHECK_EQUAL(m.delimiters().component, '%');
  BOOST_CHECK_EQUAL(raw(m, "MSH-9"), "");
  BOOST_CHECK_EQUAL(m.messageCode(), "");
  BOOST_CHECK_EQUAL(m.messageStructure(), "");
  BOOST_CHECK_EQUAL(get(m, "MSH-3"), "GHH LAB");
  BOOST_CHECK_EQUAL(get(m, "PID-3"), "555-44-4444");
  BOOST_CHECK_EQUAL(get(m, "PID-5.1"), "EVERYWOMAN");
  BOOST_CHECK_EQUAL(get(m, "PID-5.2"), "EVE");
  BOOST_CHECK_EQUAL(get(m, "PID-5.3"), "E");
  BOOST_CHECK_EQUAL(get(m, "PID-5.6"), "L");
}

BOOST_AUTO_TEST_CASE(three_encoding_characters_072) {
  // MSH-2 `~\&`: component ~, repetition \, escape &, no subcomponent separator.
  Message m = parsed("072");
  BOOST_CHECK_EQUAL(m.delimiters().component, '~');
  BOOST_CHECK_EQUAL(m.delimiters().repetition, '\\');
  BOOST_CHECK_EQUAL(m.delimiters().escape, '&');
  BOOST_CHECK_EQUAL(m.delimiters().subcomponent, kNone);
  BOOST_CHECK_EQUAL(m.messageCode(), "ORU^R01");
  BOOST_CHECK_EQUAL(get(m, "OBX-5(1)"), " Biochemistry (Whole Blood Sample) - Type Venous");
  BOOST_CHECK_EQUAL(get(m, "OBX-5(2)"), ".br");
  BOOST_CHECK_EQUAL(get(m, "OBX-5(3)"), "");
  BOOST_CHECK_EQUAL(get(m, "OBX-3.1"), "GAS^^LN");  // ^ is data under this MSH-2
}

BOOST_AUTO_TEST_CASE(hex_and_escaped_escape_053) {
  Message m = parsed("053");
  BOOST_CHECK_EQUAL(get(m, "OBX-5"),
                    "&#39;Thirty days have September,\rApril\nJune,\nand November.\nWhen short "
                    "February is done,\\X0A\\all the rest have&nbsp;31.&#39");
}

BOOST_AUTO_TEST_CASE(utf8_and_subcomponents_013) {
  Message m = parsed("013");
  BOOST_CHECK_EQUAL(get(m, "IN1-5(1).1"),
                    "Hans-B\xC3\xB6"
                    "ckler-Allee 30");
  BOOST_CHECK_EQUAL(get(m, "IN1-5(1).3"), "Hannover");
  BOOST_CHECK_EQUAL(get(m, "IN1-5(3).3"), "Moscow");
  BOOST_CHECK_EQUAL(get(m, "IN1-4(3)"), "Comp 3");
  BOOST_CHECK_EQUAL(get(m, "IN1-9(1).5.2"), "gesetzliche Krankenkasse");
  BOOST_CHECK_EQUAL(get(m, "IN1-9(1).5.1"), "");
  BOOST_CHECK_EQUAL(get(m, "IN1-9(2).7"), "U");
  BOOST_CHECK_EQUAL(get(m, "ZBE-4"), "UPDATE");
}

BOOST_AUTO_TEST_CASE(structure_test_041_and_truncation_061) {
  Message a = parsed("041");
  BOOST_CHECK_EQUAL(get(a, "PID-2.2"), "Component2");
  BOOST_CHECK_EQUAL(get(a, "PID-3.2.2"), "Sub-Component2");
  BOOST_CHECK_EQUAL(get(a, "PID-4(2)"), "Repeat2");
  Message b = parsed("061");
  BOOST_CHECK_EQUAL(b.delimiters().truncation, '#');
  BOOST_CHECK_EQUAL(get(b, "MSH-2"), "^~\\&#");
  BOOST_CHECK_EQUAL(get(b, "PID-3.4.2"), "1.3.6.1.4.1.21367.2011.2.5.17");
  BOOST_CHECK_EQUAL(b.messageStructure(), "RSP_K21");
  BOOST_CHECK_EQUAL(b.version(), "2.7");
}

BOOST_AUTO_TEST_CASE(escape_brace_no_subcomponent_058) {
  Message m = parsed("058");
  BOOST_CHECK_EQUAL(m.delimiters().escape, '}');
  BOOST_CHECK_EQUAL(m.delimiters().subcomponent, kNone);
  BOOST_CHECK_EQUAL(get(m, "PID-11.6"), "\"\"");
  BOOST_CHECK_EQUAL(get(m, "PID-5.1"), "CRESWELL");
  BOOST_CHECK_EQUAL(m.controlId(), "908594ADT30502185327");
}

BOOST_AUTO_TEST_CASE(edit_then_serialise_changes_only_that_value) {
  const std::string text = corpusMessage("004");
  Message m = parsed("004");
  BOOST_REQUIRE(m.set("PID-5.2", "Amy").has_value());
  std::string out = m.toEr7();
  const std::string before = "Williams^Rory^H";
  const std::string after = "Williams^Amy^H";
  std::string expected = text;
  expected.replace(expected.find(before), before.size(), after);
  BOOST_CHECK_EQUAL(out, expected);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace switchboard::hl7v2
