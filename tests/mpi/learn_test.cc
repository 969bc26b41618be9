// Learning from reviewers' decisions kept in the MPI store (`switchboard mpi learn --store`):
// merged pairs raise the weight of what they agree and disagree on, not-duplicate pairs lower
// it, undone decisions do not count, and learning never changes a MANUAL link, not even when
// the service runs on the learned parameters afterwards.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/mpi/estimate.h"
#include "engine/mpi/mpi_cli.h"
#include "engine/mpi/mpi_service.h"
#include "engine/mpi/reviewer_labels.h"
#include "tests/mpi/mpi_test_support.h"

using namespace switchboard;
using namespace switchboard::mpi;
using namespace switchboard::mpi::testing;

namespace {

MatchConfig shipped() {
  auto c = MatchConfig::load(sourceDir() + "/conf/mpi.json");
  BOOST_REQUIRE(c.has_value());
  return *c;
}

std::string patient(const std::string& id, const std::string& given, const std::string& family,
                    const std::string& dob, const std::string& gender, const std::string& phone,
                    const std::string& line, const std::string& zip) {
  return R"({"resourceType":"Patient","id":")" + id + R"(","name":[{"family":")" + family +
         R"(","given":[")" + given + R"("]}],"birthDate":")" + dob + R"(","gender":")" + gender +
         R"(","telecom":[{"system":"phone","value":")" + phone + R"("}],"address":[{"line":[")" +
         line + R"("],"city":"Austin","postalCode":")" + zip + R"("}]})";
}

// Same woman: birth date one digit off, another phone and street.
const std::string kKatherine = patient("p1", "Katherine", "O'Neil", "1975-05-20", "female",
                                       "512 555 0101", "14 Cedar Street", "73301");
const std::string kKatherineMoved = patient("p2", "Katherine", "O'Neil", "1975-05-21", "female",
                                            "512 555 0199", "9 Elm Road", "78701");
// Twins: same family, birth date, phone and address; different given name.
const std::string kLiam =
    patient("p3", "Liam", "Novak", "2012-09-09", "male", "512 555 0300", "8 Birch Lane", "78664");
const std::string kNoah =
    patient("p4", "Noah", "Novak", "2012-09-09", "male", "512 555 0300", "8 Birch Lane", "78664");

double pairWeight(const ComparisonVector& v, const MatchConfig& c) {
  double w = 0;
  for (size_t f = 0; f < kFieldCount; ++f) w += c.weight(static_cast<Field>(f), v.level[f]);
  return w;
}

size_t level(Field f, const std::string& name) {
  const auto& names = levelNames(f);
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

struct LearnFixture {
  core::FakeClock clock;
  std::string url;
  std::unique_ptr<MpiService> mpi;
  int64_t mergeItem = 0, twinItem = 0;

  LearnFixture() {
    auto s = MpiService::open(shipped(), freshStore(&url), &clock);
    BOOST_REQUIRE(s.has_value());
    mpi = std::move(*s);
    submit(kKatherine);
    auto moved = submit(kKatherineMoved);
    submit(kLiam);
    auto noah = submit(kNoah);
    BOOST_REQUIRE((moved.result == Decision::kPossibleMatch));
    BOOST_REQUIRE((noah.result == Decision::kPossibleMatch));
    BOOST_REQUIRE(moved.reviewItemIds.size() == 1u);
    BOOST_REQUIRE(noah.reviewItemIds.size() == 1u);
    mergeItem = moved.reviewItemIds[0];
    twinItem = noah.reviewItemIds[0];
  }
  SubmitDecision submit(const std::string& json) {
    clock.advance(1000);
    auto d = mpi->submit(json, "wa");
    BOOST_REQUIRE_MESSAGE(d.has_value(), (d ? std::string() : d.error().message));
    return *d;
  }
  ReviewerLabels labels(const MatchConfig& c) {
    auto store = MpiStore::open(url);
    BOOST_REQUIRE(store.has_value());
    auto l = labelsFromStore(**store, c);
    BOOST_REQUIRE_MESSAGE(l.has_value(), (l ? std::string() : l.error().message));
    return *l;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(mpi_learn, LearnFixture)

BOOST_AUTO_TEST_CASE(only_decided_items_are_labels_and_undone_ones_drop_out) {
  const MatchConfig c = shipped();
  BOOST_TEST(labels(c).pairs.empty());  // open items are not decisions
  BOOST_REQUIRE(mpi->decide(mergeItem, ReviewVerdict::kMerge, "ana", "same woman").has_value());
  BOOST_REQUIRE(mpi->decide(twinItem, ReviewVerdict::kNotDuplicate, "ana", "twins").has_value());
  auto l = labels(c);
  BOOST_TEST(l.merges == 1u);
  BOOST_TEST(l.notDuplicates == 1u);
  BOOST_TEST(l.skipped == 0u);
  BOOST_REQUIRE(l.pairs.size() == 2u);
  const auto& merged = l.pairs[0].match ? l.pairs[0] : l.pairs[1];
  const auto& apart = l.pairs[0].match ? l.pairs[1] : l.pairs[0];
  BOOST_TEST(merged.vector.level[size_t(Field::kBirthDate)] ==
             level(Field::kBirthDate, "typoOrTransposed"));
  BOOST_TEST(apart.vector.level[size_t(Field::kPhone)] == level(Field::kPhone, "exact"));
  BOOST_TEST(apart.vector.level[size_t(Field::kGiven)] == level(Field::kGiven, "disagree"));

  BOOST_REQUIRE(mpi->undo(mergeItem, "bo", "too hasty").has_value());
  l = labels(c);
  BOOST_TEST(l.merges == 0u);
  BOOST_TEST(l.notDuplicates == 1u);
}

BOOST_AUTO_TEST_CASE(decisions_move_the_weights_in_the_right_direction) {
  BOOST_REQUIRE(mpi->decide(mergeItem, ReviewVerdict::kMerge, "ana", "same woman").has_value());
  BOOST_REQUIRE(mpi->decide(twinItem, ReviewVerdict::kNotDuplicate, "ana", "twins").has_value());
  MatchConfig c = shipped();
  c.learningPriorStrength = 20;
  auto l = labels(c);
  BOOST_REQUIRE(l.pairs.size() == 2u);
  const auto& merged = l.pairs[0].match ? l.pairs[0] : l.pairs[1];
  const auto& apart = l.pairs[0].match ? l.pairs[1] : l.pairs[0];

  // m from the merge: the pair's birth dates differ by one digit, so that level now says more
  // for a match (the conjugate update with 20 pseudo-observations), and the pair scores higher.
  MatchConfig learned = learnFromDecisions(c, l.pairs);
  const size_t typo = level(Field::kBirthDate, "typoOrTransposed");
  const auto& bdBefore = c.fields[size_t(Field::kBirthDate)];
  const auto& bdAfter = learned.fields[size_t(Field::kBirthDate)];
  BOOST_TEST(bdAfter.m[typo] == (20 * bdBefore.m[typo] + 1) / 21.0,
             boost::test_tools::tolerance(1e-9));
  BOOST_TEST(bdAfter.weights[typo] > bdBefore.weights[typo]);
  BOOST_TEST(pairWeight(merged.vector, learned) > pairWeight(merged.vector, c));
  // By default the not-duplicate changes nothing: u stays, and m is what the merge alone gives.
  const MatchConfig mergeOnly = learnFromDecisions(c, {merged});
  for (size_t f = 0; f < kFieldCount; ++f) {
    BOOST_TEST(learned.fields[f].u == c.fields[f].u);
    BOOST_TEST(learned.fields[f].m == mergeOnly.fields[f].m);
  }

  // With u learning, the twins kept apart teach that a shared phone says less, and the pair
  // scores lower.
  const size_t exact = level(Field::kPhone, "exact");
  MatchConfig withU = learnFromDecisions(c, l.pairs, /*updateU=*/true);
  BOOST_TEST(withU.fields[size_t(Field::kPhone)].u[exact] >
             c.fields[size_t(Field::kPhone)].u[exact]);
  BOOST_TEST(withU.fields[size_t(Field::kPhone)].weights[exact] <
             c.fields[size_t(Field::kPhone)].weights[exact]);
  BOOST_TEST(pairWeight(apart.vector, learnFromDecisions(c, {apart}, true)) <
             pairWeight(apart.vector, c));
  BOOST_TEST(withU.fields[size_t(Field::kBirthDate)].m ==
             learned.fields[size_t(Field::kBirthDate)].m);

  // No decisions, no change; a stronger prior moves less.
  BOOST_TEST(learnFromDecisions(c, {}, true).fields[size_t(Field::kPhone)].weights ==
             c.fields[size_t(Field::kPhone)].weights);
  MatchConfig stubborn = c;
  stubborn.learningPriorStrength = 2000;
  MatchConfig slow = learnFromDecisions(stubborn, l.pairs);
  BOOST_TEST(slow.fields[size_t(Field::kBirthDate)].weights[typo] < bdAfter.weights[typo]);
  BOOST_TEST(slow.fields[size_t(Field::kBirthDate)].weights[typo] > bdBefore.weights[typo]);
}

BOOST_AUTO_TEST_CASE(learn_command_reads_the_store_and_never_undoes_manual_decisions) {
  BOOST_REQUIRE(mpi->decide(mergeItem, ReviewVerdict::kMerge, "ana", "same woman").has_value());
  BOOST_REQUIRE(mpi->decide(twinItem, ReviewVerdict::kNotDuplicate, "ana", "twins").has_value());
  const auto katherine = mpi->linkOf("wa/p2");
  const auto noah = mpi->linkOf("wa/p4");
  BOOST_REQUIRE(katherine.has_value());
  BOOST_REQUIRE(noah.has_value());
  BOOST_REQUIRE((katherine->origin == LinkOrigin::kManual));
  BOOST_REQUIRE((noah->origin == LinkOrigin::kManual));

  // The command: the store's decisions in, a loadable config with the learned weights out.
  const auto out = std::filesystem::temp_directory_path() /
                   ("switchboard-mpi-learn-" + std::to_string(::getpid()) + ".json");
  const std::string config = sourceDir() + "/conf/mpi.json";
  auto learnWith = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"mpi",      "learn", "--store",  url,
                                     "--config", config,  "--output", out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    BOOST_REQUIRE_EQUAL(runMpiCommand(static_cast<int>(argv.size()), argv.data()), 0);
    auto learned = MatchConfig::load(out.string());
    std::filesystem::remove(out);
    BOOST_REQUIRE_MESSAGE(learned.has_value(), (learned ? std::string() : learned.error().message));
    return *learned;
  };
  const MatchConfig c = shipped();
  const size_t typo = level(Field::kBirthDate, "typoOrTransposed");
  const size_t phoneExact = level(Field::kPhone, "exact");
  MatchConfig learned = learnWith({});
  BOOST_TEST(learned.fields[size_t(Field::kBirthDate)].weights[typo] >
             c.fields[size_t(Field::kBirthDate)].weights[typo]);
  BOOST_TEST(learned.fields[size_t(Field::kPhone)].u[phoneExact] ==
                 c.fields[size_t(Field::kPhone)].u[phoneExact],
             boost::test_tools::tolerance(1e-9));
  BOOST_TEST(learned.learningPriorStrength == c.learningPriorStrength);
  BOOST_TEST(learned.matchThreshold == c.matchThreshold);
  MatchConfig withU = learnWith({"--learn-u"});
  BOOST_TEST(withU.fields[size_t(Field::kPhone)].u[phoneExact] >
             c.fields[size_t(Field::kPhone)].u[phoneExact]);
  // A bad option is a usage error.
  std::vector<std::string> bad = {"mpi", "learn", "--stor", url};
  std::vector<char*> badv;
  for (auto& a : bad) badv.push_back(a.data());
  BOOST_TEST(runMpiCommand(static_cast<int>(badv.size()), badv.data()) == 2);

  // Learning only read the store; and the service on the learned parameters, re-matching the
  // same people with new data, keeps every reviewer's decision.
  BOOST_TEST(mpi->linkOf("wa/p2")->goldenId == katherine->goldenId);
  BOOST_TEST((mpi->linkOf("wa/p2")->origin == LinkOrigin::kManual));
  mpi.reset();
  auto reopened = MpiService::open(
      std::move(withU),
      [&] {
        auto s = MpiStore::open(url);
        BOOST_REQUIRE(s.has_value());
        return std::move(*s);
      }(),
      &clock);
  BOOST_REQUIRE(reopened.has_value());
  mpi = std::move(*reopened);
  submit(patient("p2", "Katherine", "O'Neil", "1975-05-21", "female", "512 555 0199", "9 Elm Road",
                 "78701"));
  submit(kNoah);
  // Noah becomes an exact copy of Liam but the reviewer kept them apart.
  submit(patient("p4", "Liam", "Novak", "2012-09-09", "male", "512 555 0300", "8 Birch Lane",
                 "78664"));
  auto k2 = mpi->linkOf("wa/p2");
  auto n2 = mpi->linkOf("wa/p4");
  BOOST_TEST(k2->goldenId == katherine->goldenId);
  BOOST_TEST((k2->origin == LinkOrigin::kManual));
  BOOST_TEST(k2->reviewer == "ana");
  BOOST_TEST(n2->goldenId == noah->goldenId);
  BOOST_TEST((n2->origin == LinkOrigin::kManual));
  BOOST_TEST(n2->goldenId != mpi->linkOf("wa/p3")->goldenId);
}

BOOST_AUTO_TEST_SUITE_END()
