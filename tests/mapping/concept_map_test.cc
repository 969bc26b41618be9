// ConceptMap loading and translation.
#include <boost/test/unit_test.hpp>

#include "engine/mapping/concept_map.h"
#include "test_util.h"

namespace switchboard::mapping {
using test::parse;

namespace {
const char* kMap = R"({
  "resourceType": "ConceptMap", "id": "colors", "url": "urn:test:colors", "name": "Colors",
  "status": "active",
  "group": [{
    "source": "urn:test:src", "target": "urn:test:tgt",
    "element": [
      {"code": "r", "display": "Red", "target": [{"code": "RED", "display": "red!", "equivalence": "equivalent"}]},
      {"code": "x", "display": "Unknown", "target": [{"equivalence": "unmatched"}]},
      {"code": "g", "target": [{"equivalence": "disjoint", "code": "NOPE"}, {"code": "GREEN", "equivalence": "wider"}]}
    ]
  }]
})";
}  // namespace

BOOST_AUTO_TEST_SUITE(concept_map)

BOOST_AUTO_TEST_CASE(translates_by_id_name_and_url) {
  ConceptMapSet set;
  auto doc = parse(kMap);
  BOOST_REQUIRE(set.add(doc, "colors.json"));
  for (const char* name : {"colors", "Colors", "urn:test:colors"}) {
    auto t = set.translate(name, "r");
    BOOST_REQUIRE(t);
    BOOST_TEST(t->matched);
    BOOST_TEST(t->system == "urn:test:tgt");
    BOOST_TEST(t->code == "RED");
    BOOST_TEST(t->display == "red!");
    BOOST_TEST(t->sourceDisplay == "Red");
  }
  auto g = set.translate("colors", "g");
  BOOST_REQUIRE(g);
  BOOST_TEST(g->code == "GREEN");  // the disjoint target is skipped
}

BOOST_AUTO_TEST_CASE(unmatched_and_unknown) {
  ConceptMapSet set;
  auto doc = parse(kMap);
  BOOST_REQUIRE(set.add(doc, "colors.json"));
  auto x = set.translate("colors", "x");
  BOOST_REQUIRE(x);
  BOOST_TEST(!x->matched);
  BOOST_TEST(x->sourceDisplay == "Unknown");
  auto none = set.translate("colors", "blue");
  BOOST_REQUIRE(!none);
  BOOST_TEST(static_cast<int>(none.error().code) == static_cast<int>(ErrorCode::kCodeInvalid));
  BOOST_TEST(!set.translate("colors", "r", "urn:other:system"));  // group source must match
  BOOST_TEST(set.translate("colors", "r", "urn:test:src").has_value());
  auto missing = set.translate("shapes", "r");
  BOOST_REQUIRE(!missing);
  BOOST_TEST(static_cast<int>(missing.error().code) == static_cast<int>(ErrorCode::kNotFound));
}

BOOST_AUTO_TEST_CASE(unmapped_modes) {
  ConceptMapSet set;
  auto provided =
      parse(R"({"resourceType":"ConceptMap","id":"p","status":"active","group":[{"target":"urn:t",
    "element":[{"code":"a","target":[{"code":"A","equivalence":"equal"}]}],"unmapped":{"mode":"provided"}}]})");
  auto fixed =
      parse(R"({"resourceType":"ConceptMap","id":"f","status":"active","group":[{"target":"urn:t",
    "element":[],"unmapped":{"mode":"fixed","code":"UNK","display":"unknown"}}]})");
  BOOST_REQUIRE(set.add(provided, "p.json"));
  BOOST_REQUIRE(set.add(fixed, "f.json"));
  BOOST_TEST(set.translate("p", "zzz")->code == "zzz");
  BOOST_TEST(set.translate("p", "a")->code == "A");
  BOOST_TEST(set.translate("f", "zzz")->code == "UNK");
}

BOOST_AUTO_TEST_CASE(rejects_bad_conceptmaps) {
  ConceptMapSet set;
  auto notMap = parse(R"({"resourceType":"ValueSet","id":"v"})");
  auto r = set.add(notMap, "v.json");
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().message == "v.json: /resourceType: expected \"ConceptMap\"");
  auto noEq = parse(
      R"({"resourceType":"ConceptMap","id":"e","group":[{"element":[{"code":"a","target":[{"code":"A"}]}]}]})");
  r = set.add(noEq, "e.json");
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().location == "/group/0/element/0/target/0/equivalence");
  auto dup = parse(
      R"({"resourceType":"ConceptMap","id":"d","group":[{"element":[{"code":"a"},{"code":"a"}]}]})");
  BOOST_TEST(!set.add(dup, "d.json"));
  auto doc = parse(kMap);
  BOOST_REQUIRE(set.add(doc, "colors.json"));
  BOOST_TEST(!set.add(doc, "again.json"));  // same id twice
}

BOOST_AUTO_TEST_CASE(shipped_conceptmaps_load) {
  auto set = ConceptMapSet::loadDirectory(test::sourceDir() + "/mappings/conceptmaps");
  BOOST_REQUIRE_MESSAGE(set.has_value(), (set ? std::string() : set.error().message));
  BOOST_TEST((*set)->size() >= 5u);
  auto any = (*set)->translate("provider-practitioner", "any");
  BOOST_REQUIRE(any);
  BOOST_TEST(!any->matched);
  BOOST_TEST((*set)->translate("appointment-type", "sick_visit")->code == "185345009");
}

// The codes' table (open addressing over a power-of-two size): every code of groups of many
// sizes found with its own target, codes that share a prefix, a length or eight-byte blocks told
// apart, absent codes not found, and a group moved with its map (the table views its codes).
BOOST_AUTO_TEST_CASE(many_codes_each_found) {
  for (int count : {1, 3, 4, 5, 17, 100}) {
    std::string elements;
    auto code = [](int i) {  // long and short codes, some equal in their first eight bytes
      return i % 3 == 0 ? "c" + std::to_string(i) : "shared-prefix-" + std::to_string(i);
    };
    for (int i = 0; i < count; ++i) {
      if (i) elements += ",";
      elements += R"({"code":")" + code(i) + R"(","target":[{"code":"T)" + std::to_string(i) +
                  R"(","equivalence":"equal"}]})";
    }
    ConceptMapSet set;
    auto doc = parse(R"({"resourceType":"ConceptMap","id":"m","group":[{"target":"urn:t",
        "element":[)" +
                     elements + "]}]}");
    BOOST_REQUIRE(set.add(doc, "m.json"));
    ConceptMapSet moved = std::move(set);
    for (int i = 0; i < count; ++i) {
      auto t = moved.translate("m", code(i));
      BOOST_REQUIRE_MESSAGE(t, code(i));
      BOOST_TEST(t->code == "T" + std::to_string(i));
    }
    for (const std::string absent : {"", "c", "shared-prefix-", "shared-prefix-1000", "C0"}) {
      auto t = moved.translate("m", absent);
      BOOST_TEST(!t, absent);
      if (!t)
        BOOST_TEST(static_cast<int>(t.error().code) == static_cast<int>(ErrorCode::kCodeInvalid));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
