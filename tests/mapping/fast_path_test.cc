// The fast path gives exactly what the FHIRPath engine gives, and declines what it cannot decide.
#include <boost/test/unit_test.hpp>

#include "engine/mapping/fast_path.h"
#include "test_util.h"

namespace switchboard::mapping {

BOOST_AUTO_TEST_SUITE(fast_path)

BOOST_AUTO_TEST_CASE(same_results_as_fhirpath) {
  auto input = fhirpath::parseJsonResource(
      R"({"a":" x ","n":3,"arr":["p","q"],"o":{"k":"v","list":[{"m":"1"},{"m":"2"}]},"nul":null,"e":"","b":true,"U":"X"})");
  BOOST_REQUIRE(input.has_value());
  fhirpath::Environment env;
  env.setVariable("s", "+1555");
  auto obj = test::parse(R"({"patient":"urn:uuid:1","n":2})");
  env.setVariable("ref", obj);
  int decided = 0;
  for (const char* text : {"a",
                           "a.trim()",
                           "a.lower()",
                           "a.exists()",
                           "missing",
                           "missing.exists()",
                           "missing.trim()",
                           "n",
                           "arr",
                           "o.k",
                           "o.list.m",
                           "nul",
                           "e",
                           "e.trim() != ''",
                           "a = ' x '",
                           "a != 'y'",
                           "missing = 'x'",
                           "b",
                           "%s",
                           "%s.trim()",
                           "%ref.patient",
                           "%ref.n",
                           "%s = '+1555'",
                           "o.list.m = '1'",
                           "arr.trim()",
                           "a in (' x ' | 'y')",
                           "e in ('a')",
                           "missing in ('a' | 'b')",
                           "arr in ('p' | 'q')",
                           "%s in ('+1555')",
                           "n in ('3')",
                           "n.trim()",
                           "%undefined",
                           "U",
                           "o.kk"}) {
    auto plan = planFast(text);
    auto slow = fhirpath::evaluate(text, *input, env);
    if (!plan) continue;
    auto quick = runFast(*plan, *input, env);
    if (!quick) {
      continue;  // declined: the engine decides (errors included)
    }
    ++decided;
    BOOST_REQUIRE_MESSAGE(slow.has_value(), text);
    BOOST_TEST(fhirpath::toJsonString(*quick) == fhirpath::toJsonString(*slow), text);
    // The node-free variant agrees too.
    std::vector<const rapidjson::Value*> values;
    std::optional<std::string> str;
    if (runFastJson(*plan, *input, env, values, str)) {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartArray();
      if (str) w.String(str->c_str(), static_cast<rapidjson::SizeType>(str->size()));
      for (const auto* v : values) v->Accept(w);
      w.EndArray();
      BOOST_TEST(std::string(sb.GetString()) == fhirpath::toJsonString(*slow), text);
    }
  }
  BOOST_TEST(decided >= 20);
}

BOOST_AUTO_TEST_CASE(plans_only_simple_forms) {
  BOOST_TEST(planFast("a.b.c").has_value());
  BOOST_TEST(planFast("%x.y.trim() != ''").has_value());
  BOOST_TEST(!planFast("a.where(b = 1)"));
  BOOST_TEST(!planFast("a + 1"));
  BOOST_TEST(!planFast("Patient.name"));  // a type name
  BOOST_TEST(!planFast("true"));
  BOOST_TEST(!planFast("a = 'x' and b = 'y'"));
  BOOST_TEST(!planFast("a.exists() = 'x'"));
  BOOST_TEST(!planFast("a = 'it\\'s'"));
  BOOST_TEST(planFast("a in ('x' | 'y')").has_value());
  BOOST_TEST(!planFast("a in ('x' | 1)"));
  BOOST_TEST(!planFast("a in ('x' | 'y') and b"));
  auto p = planFast("%ref.patient");
  BOOST_REQUIRE(p.has_value());
  BOOST_TEST(p->var == "ref");
  BOOST_TEST(p->path.size() == 1u);
}

BOOST_AUTO_TEST_CASE(declines_choice_elements_and_extensions) {
  auto input = fhirpath::parseJsonResource(R"({"valueString":"x","code":"c","_code":{"id":"1"}})");
  BOOST_REQUIRE(input.has_value());
  fhirpath::Environment env;
  BOOST_TEST(!runFast(*planFast("value"), *input, env));
  BOOST_TEST(!runFast(*planFast("code"), *input, env));
  BOOST_TEST(!runFast(*planFast("%nope"), *input, env));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
