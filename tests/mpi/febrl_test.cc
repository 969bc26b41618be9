// FEBRL evaluation with the shipped conf/mpi.json: prints the figures and fails when they drop
// below floors set a little under what the matcher achieves (see docs/mpi.md, section 8).
#define BOOST_TEST_MODULE mpi_febrl
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <iostream>

#include "engine/mpi/febrl.h"

using namespace switchboard::mpi;

namespace {
std::string src() {
  const char* s = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE(s != nullptr);
  return s;
}
MatchConfig config() {
  auto c = MatchConfig::load(src() + "/conf/mpi.json");
  BOOST_REQUIRE(c.has_value());
  return *c;
}
}  // namespace

BOOST_AUTO_TEST_CASE(febrl3_deduplication) {
  auto e = evaluateFebrlDedup(src() + "/tests/data/febrl/dataset3.csv", config());
  BOOST_REQUIRE_MESSAGE(e.has_value(), (e ? std::string() : e.error().message));
  std::cout << formatEvaluation(*e);
  BOOST_TEST(e->records == 5000u);
  BOOST_TEST(e->autoLink.truePairs == 6538u);
  BOOST_TEST(e->autoLink.f1() >= 0.97);
  BOOST_TEST(e->autoLink.precision() >= 0.998);
  BOOST_TEST(e->linkOrReview.recall() >= 0.99);
  BOOST_TEST(e->enterprise.precision() >= 0.998);
  BOOST_TEST(e->enterprise.f1() >= 0.965);
}

BOOST_AUTO_TEST_CASE(febrl4_linkage) {
  auto e = evaluateFebrlLinkage(src() + "/tests/data/febrl/dataset4a.csv",
                                src() + "/tests/data/febrl/dataset4b.csv", config());
  BOOST_REQUIRE_MESSAGE(e.has_value(), (e ? std::string() : e.error().message));
  std::cout << formatEvaluation(*e);
  BOOST_TEST(e->records == 10000u);
  BOOST_TEST(e->autoLink.truePairs == 5000u);
  BOOST_TEST(e->autoLink.f1() >= 0.985);
  BOOST_TEST(e->autoLink.precision() >= 0.998);
  BOOST_TEST(e->linkOrReview.recall() >= 0.995);
}

BOOST_AUTO_TEST_CASE(missing_file_is_an_error) {
  auto e = evaluateFebrlDedup("/nonexistent/dataset3.csv", config());
  BOOST_TEST(!e.has_value());
}
