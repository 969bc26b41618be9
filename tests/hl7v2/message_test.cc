// Escapes, path syntax, path writes, parse errors with positions, and hostile input.
#include <boost/test/unit_test.hpp>

#include <random>

#include "hl7v2/escape.h"
#include "hl7v2/message.h"
#include "hl7v2/path.h"
#include "tests/hl7v2/test_util.h"

namespace switchboard::hl7v2 {
namespace {

const std::string kSample =
    "MSH|^~\\&|WAGW|CLINIC|EHR|HOSP|20250301101500||ADT^A04^ADT_A01|MSG0001|P|2.5.1|||AL|NE\r"
    "EVN|A04|20250301101500\r"
    "PID|1||MRN12345^^^HOSP^MR||Doe^Jane^Q||19800115|F|||123 Main "
    "St^^Springfield^IL^62701^USA^H||^PRN^CP^^1^555^1234567\r"
    "PV1|1|O\r";

Message mustParse(std::string_view text) {
  auto m = Message::parse(text);
  BOOST_REQUIRE_MESSAGE(m.has_value(), m.error().message << " (" << m.error().location << ")");
  return std::move(*m);
}

Error mustFail(std::string_view text) {
  auto m = Message::parse(text);
  BOOST_REQUIRE_MESSAGE(!m.has_value(), "parse unexpectedly succeeded");
  return m.error();
}

BOOST_AUTO_TEST_SUITE(escapes)

BOOST_AUTO_TEST_CASE(decode_delimiter_and_hex_sequences) {
  Delimiters d;
  BOOST_CHECK_EQUAL(decode("Smith \\T\\ Sons", d), "Smith & Sons");
  BOOST_CHECK_EQUAL(decode("a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f", d), "a|b^c~d\\e&f");
  BOOST_CHECK_EQUAL(decode("x\\X0D0A\\y", d), "x\r\ny");
  BOOST_CHECK_EQUAL(decode("\\X41\\\\Xc3a9\\", d), "A\xC3\xA9");
  // With other delimiters the same letters name those characters.
  Delimiters odd;
  odd.field = '!';
  odd.component = '$';
  odd.repetition = 'r';
  odd.escape = '?';
  odd.subcomponent = '@';
  BOOST_CHECK_EQUAL(decode("?F??S??R??E??T?", odd), "!$r?@");
  Delimiters trunc;
  trunc.truncation = '#';
  BOOST_CHECK_EQUAL(decode("a\\P\\b", trunc), "a#b");
  BOOST_CHECK_EQUAL(decode("a\\P\\b", d), "a\\P\\b");  // no truncation character declared
}

BOOST_AUTO_TEST_CASE(unknown_and_invalid_sequences_kept_verbatim) {
  Delimiters d;
  for (const char* s : {"\\H\\bold\\N\\", "line\\.br\\next", "\\Zlocal\\", "BSV 4\\5 re.", "\\X0\\",
                        "\\XZZ\\", "\\X\\", "\\\\", "\\Q\\", "trailing\\", "\\Cxxyy\\", "\\E"}) {
    BOOST_CHECK_EQUAL(decode(s, d), s);
  }
  BOOST_CHECK_EQUAL(decode("\\E\\X0A\\E\\", d), "\\X0A\\");  // escaped escape, not hex
  BOOST_CHECK_EQUAL(decode("a\\T\\b\\H\\c", d), "a&b\\H\\c");
}

BOOST_AUTO_TEST_CASE(encode_every_special_character) {
  Delimiters d;
  auto e = encode("Smith & Sons|^~\\\r\n", d);
  BOOST_REQUIRE(e.has_value());
  BOOST_CHECK_EQUAL(*e, "Smith \\T\\ Sons\\F\\\\S\\\\R\\\\E\\\\X0D\\\\X0A\\");
  Delimiters trunc;
  trunc.truncation = '#';
  BOOST_CHECK_EQUAL(*encode("#1", trunc), "\\P\\1");
  BOOST_CHECK_EQUAL(*encode("#1", d), "#1");
  Delimiters odd;
  odd.escape = '}';
  odd.subcomponent = kNone;
  BOOST_CHECK_EQUAL(*encode("a&b}c", odd), "a&b}E}c");
}

BOOST_AUTO_TEST_CASE(encode_then_decode_gives_the_text_back) {
  Delimiters d;
  std::mt19937 rng(7);
  const std::string alphabet = "ab|^~\\&\r\nXF#. ";
  for (int i = 0; i < 500; ++i) {
    std::string text;
    size_t n = rng() % 20;
    for (size_t k = 0; k < n; ++k) text.push_back(alphabet[rng() % alphabet.size()]);
    auto e = encode(text, d);
    BOOST_REQUIRE(e.has_value());
    BOOST_CHECK_EQUAL(decode(*e, d), text);
    for (char c : *e) {
      BOOST_CHECK(c != '|' && c != '^' && c != '~' && c != '&' && c != '\r' && c != '\n');
    }
  }
}

BOOST_AUTO_TEST_CASE(encode_fails_without_escape_character) {
  Delimiters d;
  d.escape = kNone;
  d.subcomponent = kNone;
  BOOST_CHECK(encode("plain", d).has_value());
  BOOST_CHECK(!encode("a|b", d).has_value());
  BOOST_CHECK(!encode("a\rb", d).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(paths)

BOOST_AUTO_TEST_CASE(syntax) {
  auto p = Path::parse("OBX[2]-5(3).4.2");
  BOOST_REQUIRE(p.has_value());
  BOOST_CHECK_EQUAL(p->segment, "OBX");
  BOOST_CHECK_EQUAL(p->occurrence, 2u);
  BOOST_CHECK_EQUAL(p->field, 5u);
  BOOST_CHECK_EQUAL(p->repetition, 3u);
  BOOST_CHECK_EQUAL(p->component, 4u);
  BOOST_CHECK_EQUAL(p->subcomponent, 2u);
  BOOST_CHECK_EQUAL(p->toString(), "OBX[2]-5(3).4.2");
  auto q = Path::parse("PID-5.1");
  BOOST_REQUIRE(q.has_value());
  BOOST_CHECK_EQUAL(q->occurrence, 1u);
  BOOST_CHECK_EQUAL(q->repetition, 0u);
  BOOST_CHECK_EQUAL(q->toString(), "PID-5.1");
  BOOST_CHECK(Path::parse("ZB1").has_value());
  for (const char* bad : {"", "PI", "pid-5", "PID-", "PID-0", "PID-5.", "PID-5..1", "PID-5(0)",
                          "PID-5(1", "PID[2", "PID[0]-1", "PID-5.1.2.3", "PID 5", "PID-5x",
                          "PID-99999999999999999999", "PID-100001", "PID-1-2"}) {
    auto r = Path::parse(bad);
    BOOST_CHECK_MESSAGE(!r.has_value(), "accepted '" << bad << "'");
    if (!r) {
      BOOST_CHECK_EQUAL(static_cast<int>(r.error().code), static_cast<int>(ErrorCode::kInvalid));
      BOOST_CHECK_EQUAL(r.error().location, bad);
    }
  }
}

BOOST_AUTO_TEST_CASE(reads_on_the_protocols_example) {
  Message m = mustParse(kSample);
  BOOST_CHECK_EQUAL(*m.get("PID-5.1"), "Doe");
  BOOST_CHECK_EQUAL(*m.get("PID-5.3"), "Q");
  BOOST_CHECK_EQUAL(*m.get("PID-3.4"), "HOSP");
  BOOST_CHECK_EQUAL(*m.get("PID-11.3"), "Springfield");
  BOOST_CHECK_EQUAL(*m.get("PID-13.6"), "555");
  BOOST_CHECK_EQUAL(*m.get("MSH-15"), "AL");
  BOOST_CHECK_EQUAL(*m.getRaw("PV1"), "PV1|1|O");
  BOOST_CHECK_EQUAL(*m.get("PV1-2"), "O");
  BOOST_CHECK_EQUAL(*m.get("PV1-3"), "");
  BOOST_CHECK_EQUAL(*m.get("OBX-1"), "");
  BOOST_CHECK(!m.get("PID-x").has_value());
}

BOOST_AUTO_TEST_CASE(set_creates_what_is_missing) {
  Message m = mustParse(kSample);
  BOOST_REQUIRE(m.set("PV1-3.1", "W1").has_value());
  BOOST_CHECK_EQUAL(*m.getRaw("PV1"), "PV1|1|O|W1");
  BOOST_REQUIRE(m.set("PV1-5(2).3.2", "x").has_value());
  BOOST_CHECK_EQUAL(*m.getRaw("PV1"), "PV1|1|O|W1||~^^&x");
  BOOST_REQUIRE(m.set("OBX[2]-5", "7").has_value());  // two OBX appended at the end
  BOOST_CHECK_EQUAL(m.count("OBX"), 2u);
  BOOST_CHECK_EQUAL(m.segments().back().id, "OBX");
  BOOST_CHECK(m.toEr7().ends_with("PV1|1|O|W1||~^^&x\rOBX\rOBX|||||7\r"));
  BOOST_REQUIRE(m.set("MSH-10", "NEW1").has_value());
  BOOST_CHECK_EQUAL(m.controlId(), "NEW1");
}

BOOST_AUTO_TEST_CASE(set_encodes_and_reparse_reads_it_back) {
  Message m = mustParse(kSample);
  const std::string text = "O'Brien & Sons | ^ ~ \\ done\rline2";
  BOOST_REQUIRE(m.set("PID-5.1", text).has_value());
  BOOST_CHECK_EQUAL(*m.getRaw("PID-5.1"),
                    "O'Brien \\T\\ Sons \\F\\ \\S\\ \\R\\ \\E\\ done\\X0D\\line2");
  Message again = mustParse(m.toEr7());
  BOOST_CHECK_EQUAL(*again.get("PID-5.1"), text);
  BOOST_CHECK_EQUAL(*again.get("PID-5.2"), "Jane");
}

BOOST_AUTO_TEST_CASE(set_raw_splits_by_level) {
  Message m = mustParse(kSample);
  BOOST_REQUIRE(m.setRaw("PID-3", "A^^^X~B^^^Y").has_value());
  BOOST_CHECK_EQUAL(*m.get("PID-3(2).4"), "Y");
  BOOST_REQUIRE(m.setRaw("PID-5.1", "Van&Dam").has_value());
  BOOST_CHECK_EQUAL(*m.get("PID-5.1.2"), "Dam");
  // A delimiter above the target level is refused.
  auto r = m.setRaw("PID-5.1", "a^b");
  BOOST_REQUIRE(!r.has_value());
  BOOST_CHECK_EQUAL(r.error().location, "PID-5.1");
  BOOST_CHECK(!m.setRaw("PID-5", "a|b").has_value());
  BOOST_CHECK(!m.setRaw("PID-5.1.1", "a&b").has_value());
  BOOST_CHECK(!m.setRaw("PID-5(1)", "a~b").has_value());
}

BOOST_AUTO_TEST_CASE(msh_numbering_and_refusals) {
  Message m = mustParse(kSample);
  BOOST_CHECK(!m.set("MSH-1", "#").has_value());
  BOOST_CHECK(!m.set("MSH-2", "^~\\&").has_value());
  BOOST_CHECK(!m.set("MSH[2]-3", "x").has_value());
  BOOST_CHECK(!m.set("PID", "x").has_value());
  BOOST_REQUIRE(m.set("MSH-3", "APP").has_value());
  BOOST_CHECK(m.toEr7().starts_with("MSH|^~\\&|APP|CLINIC|"));
  // Random writes read back after serialising and parsing again.
  std::mt19937 rng(11);
  const char* ids[] = {"PID", "ZZ1", "OBX", "MSH"};
  for (int i = 0; i < 300; ++i) {
    Path p;
    p.segment = ids[rng() % 4];
    p.occurrence = p.segment == "MSH" ? 1 : 1 + rng() % 3;
    p.field = (p.segment == "MSH" ? 3 : 1) + rng() % 12;
    p.repetition = rng() % 3;
    p.component = rng() % 4;
    p.subcomponent = p.component == 0 ? 0 : rng() % 3;
    std::string text = std::to_string(i);
    if (i % 5 == 0) text += "&|x";
    const std::string path = p.toString();
    BOOST_REQUIRE_MESSAGE(m.set(path, text).has_value(), path);
    Message again = mustParse(m.toEr7());
    BOOST_CHECK_EQUAL(again.toEr7(), m.toEr7());
    BOOST_CHECK_MESSAGE(*again.get(path) == text, path << " read " << *again.get(path));
  }
}

BOOST_AUTO_TEST_CASE(levels_without_a_declared_delimiter_cannot_be_written) {
  Message m = mustParse("MSH|^|A\rPID|x~y&z");    // only a component separator
  BOOST_CHECK_EQUAL(*m.get("PID-1.1"), "x~y&z");  // ~ and & are data here
  BOOST_CHECK(!m.set("PID-3(2)", "y").has_value());
  BOOST_CHECK(!m.set("PID-3.1.2", "y").has_value());
  BOOST_CHECK(m.set("PID-3.2", "y").has_value());
  BOOST_CHECK_EQUAL(m.toEr7(), "MSH|^|A\rPID|x~y&z||^y");
  Delimiters none;
  none.component = kNone;
  none.repetition = kNone;
  none.escape = kNone;
  none.subcomponent = kNone;
  Message bare = Message::create(none);
  BOOST_CHECK(!bare.set("PID-5.2", "x").has_value());
  BOOST_CHECK(!bare.set("PID-5", "a|b").has_value());  // no escape character to write | with
  BOOST_CHECK(bare.set("PID-5", "ok").has_value());
  BOOST_CHECK_EQUAL(bare.toEr7(), "MSH|\rPID|||||ok\r");
}

BOOST_AUTO_TEST_CASE(create_builds_an_msh_only_message) {
  Message m = Message::create();
  BOOST_CHECK_EQUAL(m.toEr7(), "MSH|^~\\&\r");
  BOOST_REQUIRE(m.set("MSH-9.1", "ADT").has_value());
  BOOST_REQUIRE(m.set("MSH-9.2", "A04").has_value());
  BOOST_REQUIRE(m.set("PID-5.1", "Doe").has_value());
  BOOST_CHECK_EQUAL(m.toEr7(), "MSH|^~\\&|||||||ADT^A04\rPID|||||Doe\r");
  BOOST_CHECK_EQUAL(m.messageStructure(), "ADT_A01");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(broken_input_gets_a_precise_error) {
  struct Case {
    std::string text;
    std::string location;
    std::string phrase;
  };
  const Case cases[] = {
      {"", "byte 0", "empty"},
      {"PID|1", "byte 0", "does not start with an MSH"},
      {"\xEF\xBB\xBFMSH|^~\\&|", "byte 0", "byte order mark"},
      {"MSH|", "byte 4", "too short"},
      {"MSH", "byte 3", "too short"},
      {"MSH||A", "byte 4", "MSH-2 (encoding characters) is empty"},
      {"MSH|^~\\&#!|", "byte 4", "at most 5"},
      {"MSH|^^\\&|", "byte 5", "repeats"},
      {"MSH\r^~\\&", "byte 3", "line break"},
      {"MSH|^~\\&|A\rpid|1", "byte 11", "segment 2 does not start with a segment id"},
      {"MSH|^~\\&|A\rPI", "byte 11", "segment 2"},
      {"MSH|^~\\&|A\rPIDX|1", "byte 11", "segment 2"},
      {"MSH|^~\\&|A\rEVN|1\rP D|1", "byte 17", "segment 3"},
      {"MSH|^~\\&|A\r\rPID|1", "byte 11", "segment 2 is empty"},
      {"MSH|^~\\&|A\rPID|1\r\r", "byte 17", "segment 3 is empty"},
      {"MSH|^~\\&|A\r\nPID|1", "byte 11", "line feed"},
      {"MSH|^~\\&|A\rMSH|^~\\&|B", "byte 11", "second MSH"},
  };
  for (const auto& c : cases) {
    Error e = mustFail(c.text);
    BOOST_CHECK_EQUAL(static_cast<int>(e.code), static_cast<int>(ErrorCode::kStructure));
    BOOST_CHECK_MESSAGE(e.location == c.location, "input #" << (&c - cases) << ": location "
                                                            << e.location << ", expected "
                                                            << c.location);
    BOOST_CHECK_MESSAGE(
        e.message.find(c.phrase) != std::string::npos,
        "input #" << (&c - cases) << ": message '" << e.message << "' lacks '" << c.phrase << "'");
  }
}

BOOST_AUTO_TEST_CASE(line_feed_segment_ends_can_be_normalised) {
  const std::string lf = "MSH|^~\\&|A\r\nPID|1\nPV1|2\r";
  BOOST_CHECK(!Message::parse(lf).has_value());
  const std::string fixed = normaliseSegmentEnds(lf);
  BOOST_CHECK_EQUAL(fixed, "MSH|^~\\&|A\rPID|1\rPV1|2\r");
  Message m = mustParse(fixed);
  BOOST_CHECK_EQUAL(*m.get("PV1-1"), "2");
}

BOOST_AUTO_TEST_CASE(error_text_shows_control_bytes_escaped) {
  Error e = mustFail("MSH|^~\\&|A\r\x01\x02Z|DOE^JANE");
  BOOST_CHECK(e.message.find("(found '\\x01\\x02Z|')") != std::string::npos);
  BOOST_CHECK(e.message.find("DOE") == std::string::npos);  // no field content in errors
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(hostile)

void checkParseIsSafe(const std::string& text) {
  auto m = Message::parse(text);
  if (m) {
    BOOST_CHECK(m->toEr7() == text);  // whatever parses, round-trips
    (void)m->get("PID-5.1");
    (void)m->messageStructure();
  } else {
    BOOST_CHECK(m.error().location.starts_with("byte "));
    BOOST_CHECK(!m.error().message.empty());
  }
}

BOOST_AUTO_TEST_CASE(nul_bytes) {
  const char kNul[] = "MSH|^~\\&|A\0B|C\rPID|1||\0\0^x\r";
  const std::string withNul(kNul, sizeof kNul - 1);
  Message m = mustParse(withNul);
  BOOST_CHECK_EQUAL(m.toEr7(), withNul);
  BOOST_CHECK_EQUAL(*m.get("MSH-3"), std::string("A\0B", 3));
  BOOST_CHECK_EQUAL(*m.get("PID-3.1"), std::string("\0\0", 2));
  checkParseIsSafe(std::string(100, '\0'));
  BOOST_CHECK(!Message::parse(std::string(100, '\0')).has_value());
}

BOOST_AUTO_TEST_CASE(one_mebibyte_field) {
  const std::string big(1 << 20, 'A');
  const std::string text = "MSH|^~\\&|X\rOBX|1|TX|||" + big + "\r";
  Message m = mustParse(text);
  BOOST_CHECK(m.toEr7() == text);
  BOOST_CHECK_EQUAL(m.get("OBX-5")->size(), big.size());
  // A 1 MiB value of nothing but delimiters: refused by the default element limit, at the
  // byte where the limit was passed, and parsed when the caller allows it.
  const std::string seps = "MSH|^~\\&|X\rOBX|" + std::string(1 << 20, '^');
  auto refused = Message::parse(seps);
  BOOST_REQUIRE(!refused.has_value());
  BOOST_CHECK_EQUAL(static_cast<int>(refused.error().code), static_cast<int>(ErrorCode::kTooLong));
  // Before the first '^' (byte 15): 4 (segment) + 4 (MSH-1) + 6 (MSH-2: ^ 2, ~ 3, & 1) + 4 (|)
  // + 4 (CR) + 4 (|) = 26; the k-th '^' makes 26 + 2k, past 2,000,000 at k = 999,988.
  BOOST_CHECK_EQUAL(refused.error().location, "byte " + std::to_string(15 + 999'987));
  ParseLimits roomy;
  roomy.maxElements = 4'000'000;
  auto s = Message::parse(seps, roomy);
  BOOST_REQUIRE(s.has_value());
  BOOST_CHECK(s->toEr7() == seps);
  BOOST_CHECK_EQUAL(s->segments()[1].fields[0].repetitions[0].components.size(), (1u << 20) + 1);
  ParseLimits small;
  small.maxBytes = 100;
  auto tooBig = Message::parse(text, small);
  BOOST_REQUIRE(!tooBig.has_value());
  BOOST_CHECK_EQUAL(tooBig.error().location, "byte 100");
}

BOOST_AUTO_TEST_CASE(random_bytes_and_mutated_corpus) {
  std::mt19937 rng(2026);
  for (int i = 0; i < 2000; ++i) {
    std::string text(rng() % 300, '\0');
    for (char& c : text) c = static_cast<char>(rng() & 0xFF);
    if (i % 2 == 0) text = "MSH" + text;  // get past the first check half of the time
    checkParseIsSafe(text);
  }
  const std::string specials = "|^~\\&\r\n\x0B\x1C#";
  for (const auto& f : test::corpusFiles()) {
    const std::string original = test::readBytes(f);
    for (int k = 0; k < 40; ++k) {
      std::string t = original;
      for (int edits = 1 + rng() % 4; edits > 0 && !t.empty(); --edits) {
        size_t at = rng() % t.size();
        char c = (rng() % 2) ? specials[rng() % specials.size()] : static_cast<char>(rng());
        switch (rng() % 3) {
          case 0:
            t[at] = c;
            break;
          case 1:
            t.insert(t.begin() + static_cast<long>(at), c);
            break;
          default:
            t.erase(at, 1 + rng() % 8);
        }
      }
      checkParseIsSafe(t);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace switchboard::hl7v2
