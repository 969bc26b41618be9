// `switchboard map` exit codes and output, and the flow mapping from several threads at once.
#include <boost/test/unit_test.hpp>

#include <iostream>
#include <sstream>
#include <thread>

#include "engine/mapping/map_cli.h"
#include "engine/mapping/mapping.h"
#include "test_util.h"

namespace switchboard::mapping {

BOOST_AUTO_TEST_SUITE(map_command)

BOOST_AUTO_TEST_CASE(exit_codes) {
  const std::string mapping = test::sourceDir() + "/mappings/whatsapp-flow-appointment.json";
  const std::string seed = test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json";
  auto ok = test::runMap({mapping, seed, "--var", "facility=HealthCare Clinic", "--var",
                          "receivedAt=2026-02-10T14:00:00Z"});
  BOOST_TEST(ok.code == 0);
  auto bundle = test::parse(ok.out);
  BOOST_TEST(bundle["resourceType"] == "Bundle");
  BOOST_TEST(bundle["entry"].Size() == 5u);

  // The bare response has no sender: a mapping failure, OperationOutcome on stderr.
  auto failed =
      test::runMap({mapping, test::sourceDir() + "/tests/data/mapping/seed-flow-response.json"});
  BOOST_TEST(failed.code == 1);
  BOOST_TEST(failed.out.empty());
  auto outcome = test::parse(failed.err);
  BOOST_TEST(outcome["resourceType"] == "OperationOutcome");
  BOOST_TEST(outcome["issue"][0]["code"] == "required");

  BOOST_TEST(test::runMap({mapping}).code == 2);
  BOOST_TEST(test::runMap({mapping, seed, "--var"}).code == 2);
  BOOST_TEST(test::runMap({mapping, seed, "--var", "novalue"}).code == 2);
  BOOST_TEST(test::runMap({mapping, seed, "--frobnicate"}).code == 2);
  BOOST_TEST(test::runMap({mapping, "/nonexistent/input.json"}).code == 2);
  BOOST_TEST(test::runMap({"/nonexistent/mapping.json", seed}).code == 1);
}

BOOST_AUTO_TEST_CASE(concurrent_runs_agree) {
  auto mapping = Mapping::loadFile(test::sourceDir() + "/mappings/whatsapp-flow-appointment.json");
  BOOST_REQUIRE(mapping.has_value());
  const std::string body =
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json");
  fhirpath::Environment env;
  env.setVariable("facility", "HealthCare Clinic");
  auto expected = (*mapping)->run(body, env);
  BOOST_REQUIRE(expected.has_value());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto out = (*mapping)->run(body, env);
        if (!out || out->payload != expected->payload) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) BOOST_TEST(m == 0);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
