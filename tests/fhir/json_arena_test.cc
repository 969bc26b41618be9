// The arena reader (engine/fhir/json_arena.h) against fhirpath::parseResource(): whatever text it
// accepts must give a document equal to parseResource()'s member by member (order, keys, string
// bytes, number types), it must decline what parseResource() rejects, and validateText(), which
// uses it, must report exactly the issues of a validation of parseResource()'s document.
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <boost/test/unit_test.hpp>

#include "engine/fhir/json_arena.h"
#include "test_support.h"

using namespace switchboard::fhir;
using namespace switchboard::fhir::test;

namespace {

using rapidjson::Value;

// Exact structural equality: member order and duplicates count, numbers by type and value.
bool same(const Value& a, const Value& b) {
  if (a.GetType() != b.GetType()) return false;
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (auto i = a.MemberBegin(), j = b.MemberBegin(); i != a.MemberEnd(); ++i, ++j) {
      if (!same(i->name, j->name) || !same(i->value, j->value)) return false;
    }
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a.IsString()) {
    return std::string_view(a.GetString(), a.GetStringLength()) ==
           std::string_view(b.GetString(), b.GetStringLength());
  }
  if (a.IsNumber()) {
    if (a.IsInt() != b.IsInt() || a.IsUint() != b.IsUint() || a.IsInt64() != b.IsInt64() ||
        a.IsUint64() != b.IsUint64() || a.IsDouble() != b.IsDouble())
      return false;
    if (a.IsDouble()) return a.GetDouble() == b.GetDouble();
    return a.IsInt64() ? a.GetInt64() == b.GetInt64() : a.GetUint64() == b.GetUint64();
  }
  return a == b;  // true, false, null
}

// Reads `text` both ways; true when the arena accepted it (and then it must agree).
bool check(const std::string& text, const std::string& what) {
  auto arena = ArenaDocument::read(text);
  auto reference = switchboard::fhirpath::parseResource(text);
  if (!arena) return false;
  BOOST_TEST_REQUIRE(reference.has_value(), what << ": the arena accepted what parseResource "
                                                    "rejects: "
                                                 << text.substr(0, 200));
  BOOST_TEST(same(*arena->document(), *reference->document()),
             what << ": documents differ: " << text.substr(0, 200));
  return true;
}

// The JSON files of the corpus, as (name, text).
std::vector<std::pair<std::string, std::string>> corpus() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, path] : corpusFiles())
    if (name.ends_with(".json")) out.emplace_back(name, readFile(path));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(json_arena)

BOOST_AUTO_TEST_CASE(plain_json_is_read_as_parse_resource_reads_it) {
  std::size_t accepted = 0;
  auto files = corpus();
  BOOST_TEST(files.size() >= 8u);
  for (const auto& [name, text] : files) accepted += check(text, name);
  // Everything but the files with decimals or \u escapes.
  BOOST_TEST(accepted >= 6u);
  BOOST_TEST(check(dataFile("seed-flow-bundle.json"), "seed Bundle"));

  const std::vector<std::string> accept = {
      R"({})",
      R"( {"a":[]} )",
      "\xEF\xBB\xBF\v\f {\"a\":1}\n",
      R"({"a":{},"b":[{},[]],"c":[true,false,null],"d":"","e":-0,"f":0,"g":-12})",
      R"({"n":999999999999999999,"m":-999999999999999999,"i":2147483648,"j":-2147483649})",
      R"({"a":"q\"uo\\te\/s\b\f\n\r\t","a":"dup","\n":"escaped key"})",
      "{\"utf8\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\",\"bad\":\"\xFF\xFE\"}",
      "{ \"a\" :\t[ 1 ,\r\n2 ] , \"b\" : { \"c\" : \"d\" } }",
  };
  for (const auto& t : accept) BOOST_TEST(check(t, "accepted"), t);

  // Left to parseResource: \u escapes, fractions, exponents, 19 digits, other roots, and text
  // that is not JSON (the error message comes from parseResource).
  const std::vector<std::string> decline = {R"({"a":"\u0041"})",
                                            R"({"a":1.5})",
                                            R"({"a":1e3})",
                                            R"({"a":1E3})",
                                            R"({"a":1234567890123456789})",
                                            R"([{}])",
                                            R"("x")",
                                            "",
                                            "   ",
                                            "<Patient/>",
                                            R"({"a":01})",
                                            R"({"a":-})",
                                            R"({"a":+1})",
                                            R"({"a":1,})",
                                            R"({"a":[1,]})",
                                            R"({"a":tru})",
                                            R"({"a":nul})",
                                            R"({"a":"x)",
                                            R"({"a":"x\)",
                                            R"({"a":"\x"})",
                                            "{\"a\":\"tab\there\"}",
                                            R"({"a" 1})",
                                            R"({a:1})",
                                            R"({"a":1}})",
                                            R"({"a":1} x)",
                                            std::string("{\"a\":1}\0", 8),
                                            std::string("{\"a\":\"x\0y\"}", 11),
                                            R"({"a":1)",
                                            R"({"a":[1)",
                                            R"({"a":[1 2]})",
                                            R"({"a":{"b":1 "c":2}})",
                                            R"({"a":true1})",
                                            R"({"a":NaN})",
                                            R"({"a":Infinity})",
                                            R"({"a":1}/*c*/)",
                                            "{\"a\":\"x\"}\xEF\xBB\xBF"};
  for (const auto& t : decline) BOOST_TEST(!check(t, "declined"), t);
}

BOOST_AUTO_TEST_CASE(strings_and_escapes_at_every_position_of_the_16_byte_scan) {
  const std::string pieces[] = {"a", "\\n", "\\\"", "\\\\", "\xC3\xA9", "\\/", "b"};
  for (std::size_t length = 0; length < 48; ++length) {
    for (std::size_t p = 0; p < std::size(pieces); ++p) {
      for (std::size_t at = 0; at <= length; at += 5) {
        std::string s;
        for (std::size_t i = 0; i < length; ++i) s += i == at ? pieces[p] : "x";
        std::string text = "{\"k" + s + "\":\"" + s + "\",\"v\":[\"" + s + "\",\"" + s + "\"]}";
        BOOST_TEST(check(text, "string"), text);
      }
    }
  }
}

// Two escapes in one string, the second anywhere in the plain run after the first (moved down
// through the 16-byte scan) or ending it: a control byte, a \u escape (declined) or the end.
BOOST_AUTO_TEST_CASE(a_second_escape_after_the_first_at_every_distance) {
  const std::string escapes[] = {"\\n", "\\\"", "\\\\", "\\/"};
  const std::string seconds[] = {"\\t", "\\\"", "\\u0041", "\x01"};  // the last two declined
  for (std::size_t at = 0; at < 20; at += 3) {
    for (std::size_t gap = 0; gap < 36; ++gap) {
      for (const auto& e : escapes) {
        for (std::size_t i = 0; i < std::size(seconds); ++i) {
          const std::string s = std::string(at, 'x') + e + std::string(gap, 'y') + seconds[i] + "z";
          const std::string text = "{\"k\":\"" + s + "\",\"" + s + "\":[\"" + s + "\"]}";
          BOOST_TEST(check(text, "two escapes") == (i < 2), text);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_one_byte_change_of_the_seed_bundle_is_read_alike_or_declined) {
  const std::string seed = dataFile("seed-flow-bundle.json");
  // Accepted texts are validated both ways too (what validateText did before: parseResource).
  auto check = [](const std::string& text, const std::string& what) {
    if (!::check(text, what)) return false;
    auto parsed = switchboard::fhirpath::parseResource(text);
    auto fromText = validator().validateText(text);
    auto fromDocument = validator().validate(parsed->document());
    BOOST_TEST(sameIssues(fromText, fromDocument), what << "\n" << describe(fromText));
    return true;
  };
  const char bytes[] = {'"', '\\', ',', '}', ']', '{',  '[',    ':',   ' ',
                        '0', '-',  '.', 'e', 'x', '\0', '\x01', '\xC3'};
  std::size_t accepted = 0, total = 0;
  for (std::size_t i = 0; i < seed.size(); i += 3) {
    for (char c : bytes) {
      std::string text = seed;
      text[i] = c;
      accepted += check(text, "byte " + std::to_string(i));
      ++total;
    }
    accepted += check(seed.substr(0, i), "prefix " + std::to_string(i));
    ++total;
  }
  BOOST_TEST_MESSAGE(accepted << " of " << total << " changed texts accepted");
  BOOST_TEST(accepted > total / 10);
}

BOOST_AUTO_TEST_CASE(the_arena_is_one_document_at_a_time_and_grows) {
  const std::string seed = dataFile("seed-flow-bundle.json");
  {
    auto first = ArenaDocument::read(seed);
    BOOST_REQUIRE(first);
    BOOST_TEST(!ArenaDocument::read(R"({"a":1})"));  // the thread's arena is held
    auto moved = std::move(*first);
    BOOST_TEST(!ArenaDocument::read(R"({"a":1})"));
    BOOST_TEST(std::string((*moved.document())["resourceType"].GetString()) == "Bundle");
  }
  BOOST_TEST(check(R"({"a":1})", "after release"));
  // Larger than the pool's first block, twice (the second time with a grown block).
  std::string large = R"({"resourceType":"Bundle","type":"collection","entry":[)";
  for (int i = 0; i < 3000; ++i) {
    large += (i ? "," : "") + std::string(R"({"fullUrl":"urn:uuid:)") + std::to_string(i) +
             R"(","resource":{"resourceType":"Organization","name":"O","active":true}})";
  }
  large += "]}";
  BOOST_TEST(check(large, "large"));
  BOOST_TEST(check(large, "large again"));
  BOOST_TEST(check(seed, "seed after large"));
}

BOOST_AUTO_TEST_CASE(validate_text_reports_what_a_validation_of_the_parsed_document_reports) {
  auto files = corpus();
  files.emplace_back("bad", R"({"resourceType":"Patient","gender":"x","birthDate":"1980-02-30",
      "name":[{"given":["A\nB"]}],"active":"yes","foo":1,"telecom":[]})");
  files.emplace_back("not JSON", R"({"resourceType":"Patient",)");
  for (const auto& [name, text] : files) {
    for (bool bestPractice : {true, false}) {
      ValidationOptions options;
      options.bestPractice = bestPractice;
      auto parsed = switchboard::fhirpath::parseResource(text);
      auto fromText = validator().validateText(text, options);
      if (!parsed) {
        BOOST_TEST(fromText.size() == 1u);
        BOOST_TEST(fromText.front().severity == "fatal");
        continue;
      }
      auto fromDocument = validator().validate(parsed->document(), options);
      BOOST_TEST(sameIssues(fromText, fromDocument), name << "\n"
                                                          << describe(fromText) << "against\n"
                                                          << describe(fromDocument));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
