// Scoring, hard negatives, explanations, configuration, EM and learning from decisions.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>

#include <rapidjson/document.h>

#include "engine/mpi/estimate.h"
#include "engine/mpi/scoring.h"

using namespace switchboard::mpi;

namespace {

MatchConfig shippedConfig() {
  const char* src = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE(src != nullptr);
  auto c = MatchConfig::load(std::string(src) + "/conf/mpi.json");
  BOOST_REQUIRE_MESSAGE(c.has_value(), (c ? std::string() : c.error().message + " " + c.error().location));
  return *c;
}

PersonRecord person(std::string id, std::string given, std::string family, std::string dob,
                    std::string phone = "", std::string address = "", std::string email = "") {
  PersonRecord p;
  p.id = std::move(id);
  p.givenNames = {std::move(given)};
  p.familyNames = {std::move(family)};
  p.birthDate = std::move(dob);
  if (!phone.empty()) p.phones = {phone};
  if (!address.empty()) {
    p.addressLines = {address};
    p.city = "Springfield";
    p.postcode = "62701";
  }
  if (!email.empty()) p.emails = {email};
  return p;
}

PairScore scorePair(const MatchConfig& c, const PersonRecord& a, const PersonRecord& b) {
  NormalizedRecord na = normalizeRecord(a, c), nb = normalizeRecord(b, c);
  return Scorer(c, nullptr).score(viewOf(na), viewOf(nb));
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_person_with_variations_is_a_match) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Jonathan", "Smith", "1980-03-15", "(555) 123-4567", "12 Oak Street", "jon.smith@gmail.com"),
                     person("b", "Jon", "Smith", "1980-03-15", "+1 555 123 4567", "12 Oak St", "jonsmith@gmail.com"));
  BOOST_TEST(s.fields[size_t(Field::kGiven)].level == 1);  // nickname
  BOOST_TEST(s.fields[size_t(Field::kEmail)].level == 0);  // gmail dots
  BOOST_TEST((s.decision == Decision::kMatch));
  BOOST_TEST(s.probability > 0.99);

  auto t = scorePair(c, person("a", "José", "García", "1980-03-05", "555 987 6543"),
                     person("b", "Jose", "Garcia", "1980-05-03", "5559876543"));
  BOOST_TEST(t.fields[size_t(Field::kBirthDate)].level == 1);  // day/month transposed
  BOOST_TEST((t.decision == Decision::kMatch));
}

BOOST_AUTO_TEST_CASE(different_people_are_not_matched) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Alice", "Walker", "1990-01-01", "5551112222", "1 Elm Road"),
                     person("b", "Bruno", "Keller", "1961-07-23", "5553334444", "99 Pine Avenue"));
  BOOST_TEST((s.decision == Decision::kNoMatch));
  BOOST_TEST(s.fields[size_t(Field::kGiven)].level == 4);  // disagree
  BOOST_TEST(s.weight < c.possibleThreshold);
}

BOOST_AUTO_TEST_CASE(twins_are_never_auto_linked) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Ana", "Lopez", "2010-06-01", "5550001111", "5 Main Street"),
                     person("b", "Maria", "Lopez", "2010-06-01", "5550001111", "5 Main Street"));
  BOOST_TEST((s.hardNegatives & kHardNegativeTwins) != 0);
  BOOST_TEST((s.decision != Decision::kMatch));
  // A shared family member id does not lift the rule; a shared person identifier does.
  PersonRecord a = person("a", "Ana", "Lopez", "2010-06-01", "5550001111", "5 Main Street");
  PersonRecord b = person("b", "Maria", "Lopez", "2010-06-01", "5550001111", "5 Main Street");
  a.identifiers = {{"MB", "FAM-1"}};
  b.identifiers = {{"MB", "FAM-1"}};
  BOOST_TEST((scorePair(c, a, b).decision != Decision::kMatch));
  a.identifiers = {{"ssn", "123456789"}};
  b.identifiers = {{"ssn", "123456789"}};
  BOOST_TEST(scorePair(c, a, b).hardNegatives == 0);
}

BOOST_AUTO_TEST_CASE(parent_and_child_of_the_same_name_are_never_auto_linked) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Robert", "Jones", "1950-02-10", "5552223333", "7 Hill Lane", "rj@example.org"),
                     person("b", "Robert", "Jones", "1979-08-30", "5552223333", "7 Hill Lane", "rj@example.org"));
  BOOST_TEST((s.hardNegatives & kHardNegativeParentChild) != 0);
  BOOST_TEST((s.decision != Decision::kMatch));
}

BOOST_AUTO_TEST_CASE(spouses_sharing_a_phone_are_never_auto_linked) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Carlos", "Ruiz", "1970-04-04", "5554445555", "3 Bay Road"),
                     person("b", "Elena", "Ruiz", "1972-11-19", "5554445555", "3 Bay Road"));
  BOOST_TEST((s.hardNegatives & kHardNegativeSpouses) != 0);
  BOOST_TEST((s.decision != Decision::kMatch));
}

BOOST_AUTO_TEST_CASE(swapped_given_and_family_names) {
  MatchConfig c = shippedConfig();
  auto s = scorePair(c, person("a", "Lee", "Chen", "1985-09-09", "5556667777"),
                     person("b", "Chen", "Lee", "1985-09-09", "5556667777"));
  BOOST_TEST(s.swappedNames);
  BOOST_TEST(s.fields[size_t(Field::kGiven)].level == 0);
  BOOST_TEST((s.decision == Decision::kMatch));
}

BOOST_AUTO_TEST_CASE(term_frequency_discounts_common_names) {
  MatchConfig c = shippedConfig();
  c.tfMinRecords = 200;  // the table below holds 201 records
  FrequencyTable tf;
  std::vector<NormalizedRecord> recs;
  for (int i = 0; i < 200; ++i) recs.push_back(normalizeRecord(person("s" + std::to_string(i), "x", "Smith", ""), c));
  recs.push_back(normalizeRecord(person("z", "x", "Zbyszewski", ""), c));
  for (auto& r : recs) tf.add(viewOf(r));
  Scorer scorer(c, &tf);
  NormalizedRecord s1 = normalizeRecord(person("1", "Ann", "Smith", "1990-01-01"), c);
  NormalizedRecord s2 = normalizeRecord(person("2", "Ann", "Smith", "1990-01-01"), c);
  NormalizedRecord z1 = normalizeRecord(person("3", "Ann", "Zbyszewski", "1990-01-01"), c);
  NormalizedRecord z2 = normalizeRecord(person("4", "Ann", "Zbyszewski", "1990-01-01"), c);
  auto common = scorer.score(viewOf(s1), viewOf(s2));
  auto rare = scorer.score(viewOf(z1), viewOf(z2));
  BOOST_TEST(common.fields[size_t(Field::kFamily)].termFrequencyAdjusted);
  BOOST_TEST(rare.fields[size_t(Field::kFamily)].weight > common.fields[size_t(Field::kFamily)].weight + 5);
  // Below termFrequencyMinRecords the frequencies are not trusted: plain m/u weights.
  c.tfMinRecords = 202;
  auto small = Scorer(c, &tf).score(viewOf(s1), viewOf(s2));
  BOOST_TEST(!small.fields[size_t(Field::kFamily)].termFrequencyAdjusted);
  BOOST_TEST(std::abs(double(small.fields[size_t(Field::kFamily)].weight) - c.weight(Field::kFamily, 0)) < 1e-4);
}

BOOST_AUTO_TEST_CASE(explanation_lists_every_field) {
  MatchConfig c = shippedConfig();
  NormalizedRecord a = normalizeRecord(person("1", "Ann", "Smith", "1990-01-01", "5551234567"), c);
  NormalizedRecord b = normalizeRecord(person("2", "Anne", "Smith", "1990-01-01", "5551234567"), c);
  Scorer scorer(c, nullptr);
  PairScore s = scorer.score(viewOf(a), viewOf(b));
  rapidjson::Document d;
  d.Parse(scorer.explainJson(s).c_str());
  BOOST_REQUIRE(!d.HasParseError());
  BOOST_TEST(d["fields"].Size() == kFieldCount);
  BOOST_TEST(std::string(d["decision"].GetString()) == decisionName(s.decision));
  double sum = 0;
  for (const auto& f : d["fields"].GetArray()) sum += f["weight"].GetDouble();
  BOOST_TEST(sum == d["weight"].GetDouble(), boost::test_tools::tolerance(0.01));
  BOOST_TEST(std::string(d["fields"][0]["level"].GetString()) == "jw92");
  BOOST_TEST(std::string(d["fields"][4]["field"].GetString()) == "phone");
}

BOOST_AUTO_TEST_CASE(config_rejects_bad_input_and_round_trips) {
  auto bad = MatchConfig::fromJson(R"({"thresholdz": {}})");
  BOOST_REQUIRE(!bad.has_value());
  BOOST_TEST(bad.error().location == "$.thresholdz");
  auto badLevel = MatchConfig::fromJson(R"({"fields": {"given": {"levels": {"exactly": {"m": 0.5, "u": 0.1}}}}})");
  BOOST_REQUIRE(!badLevel.has_value());
  BOOST_TEST(badLevel.error().location == "$.fields.given.levels.exactly");
  auto badP = MatchConfig::fromJson(R"({"fields": {"given": {"levels": {"exact": {"m": 1.5, "u": 0.1}}}}})");
  BOOST_TEST(!badP.has_value());
  BOOST_TEST(!MatchConfig::fromJson(R"({"thresholds": {"match": 1, "possible": 5}})").has_value());
  MatchConfig c = shippedConfig();
  auto again = MatchConfig::fromJson(c.toJson());
  BOOST_REQUIRE(again.has_value());
  BOOST_TEST(again->matchThreshold == c.matchThreshold);
  for (size_t f = 0; f < kFieldCount; ++f)
    for (size_t l = 0; l < c.fields[f].weights.size(); ++l)
      BOOST_TEST(again->fields[f].weights[l] == c.fields[f].weights[l], boost::test_tools::tolerance(1e-3));
  BOOST_TEST(again->nicknames.canonical("lalo") == "eduardo");
}

BOOST_AUTO_TEST_CASE(em_recovers_known_parameters) {
  // Expected pattern counts for three conditionally independent binary fields (exact/disagree)
  // under known m, u and lambda; EM started from the defaults must find them again.
  const double lambda = 0.3;
  const double m[3] = {0.9, 0.85, 0.8}, u[3] = {0.05, 0.1, 0.02};
  const Field fields[3] = {Field::kSex, Field::kPhone, Field::kEmail};
  PatternCounts patterns;
  for (int bits = 0; bits < 8; ++bits) {
    std::array<uint8_t, kFieldCount> p;
    p.fill(kNullLevel);
    double pm = lambda, pu = 1 - lambda;
    for (int f = 0; f < 3; ++f) {
      bool agree = bits & (1 << f);
      p[size_t(fields[f])] = agree ? 0 : 1;
      pm *= agree ? m[f] : 1 - m[f];
      pu *= agree ? u[f] : 1 - u[f];
    }
    patterns[p] = static_cast<uint64_t>((pm + pu) * 1e7);
  }
  EmResult r = estimateParameters(patterns, MatchConfig::defaults(), 500);
  BOOST_TEST(r.converged);
  BOOST_TEST(r.config.lambda == lambda, boost::test_tools::tolerance(0.02));
  for (int f = 0; f < 3; ++f) {
    BOOST_TEST(r.config.fields[size_t(fields[f])].m[0] == m[f], boost::test_tools::tolerance(0.03));
    BOOST_TEST(r.config.fields[size_t(fields[f])].u[0] == u[f], boost::test_tools::tolerance(0.05));
  }
}

BOOST_AUTO_TEST_CASE(learning_from_reviewer_decisions_moves_m_and_u) {
  MatchConfig c = MatchConfig::defaults();
  c.learningPriorStrength = 10;
  std::vector<LabelledPair> labels;
  for (int i = 0; i < 90; ++i) {
    LabelledPair p;
    p.vector.level.fill(kNullLevel);
    p.vector.level[size_t(Field::kPhone)] = 0;  // reviewers merged pairs that share a phone
    p.match = true;
    labels.push_back(p);
    p.match = false;  // and kept apart 30 other pairs that also did
    if (i % 3 == 0) labels.push_back(p);
  }
  MatchConfig learned = learnFromDecisions(c, labels, /*updateU=*/true);
  BOOST_TEST(learnFromDecisions(c, labels).fields[size_t(Field::kPhone)].u == c.fields[size_t(Field::kPhone)].u);
  const auto& before = c.fields[size_t(Field::kPhone)];
  const auto& after = learned.fields[size_t(Field::kPhone)];
  BOOST_TEST(after.m[0] > before.m[0]);
  BOOST_TEST(after.m[0] == (10 * before.m[0] + 90) / 100.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(after.u[0] > before.u[0]);
  BOOST_TEST(learned.fields[size_t(Field::kGiven)].m == c.fields[size_t(Field::kGiven)].m);
}
