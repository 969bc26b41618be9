// The fhir-validate pipeline stage: config checked at deploy, valid payloads continue with an
// event, invalid ones fail with the first error's code and location.
#include <rapidjson/document.h>
#include <boost/test/unit_test.hpp>

#include "engine/core/config.h"
#include "engine/fhir/validate_stage.h"
#include "test_support.h"

using namespace switchboard;
using namespace switchboard::fhir;
using namespace switchboard::fhir::test;

namespace {

Result<std::unique_ptr<core::Stage>> stageFrom(const std::string& json) {
  static rapidjson::Document doc;  // the reader keeps a reference while the factory runs
  doc.Parse(json.c_str());
  BOOST_REQUIRE(!doc.HasParseError());
  core::ConfigReader reader(doc, "conf/channels/test.json", "/transformer/1");
  core::ConnectorContext ctx;
  ctx.channelId = "test";
  ctx.confDir = sourceDir() + "/conf";
  return ValidateStage::fromConfig(reader, ctx);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(validate_stage)

BOOST_AUTO_TEST_CASE(valid_bundle_continues_with_an_event) {
  auto stage = stageFrom(R"({"definitions":"fhir-profiles"})");
  BOOST_REQUIRE_MESSAGE(stage.has_value(), (stage ? std::string() : stage.error().message));
  core::PipelineMessage pm;
  pm.payload = dataFile("bundle_transaction.json");
  auto r = (*stage)->process(pm);
  BOOST_TEST(static_cast<int>(r.kind) == static_cast<int>(core::StageResult::Kind::kContinue));
  BOOST_REQUIRE_EQUAL(pm.events.size(), 1u);
  BOOST_TEST(pm.events[0].first == "validated");
  BOOST_TEST(pm.payload == dataFile("bundle_transaction.json"));  // untouched
}

BOOST_AUTO_TEST_CASE(invalid_payload_fails_with_location) {
  auto stage = stageFrom(R"({"definitions":"fhir-profiles"})");
  BOOST_REQUIRE(stage.has_value());
  core::PipelineMessage pm;
  pm.payload = R"({"resourceType":"Appointment","status":"booked",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})";
  auto r = (*stage)->process(pm);
  BOOST_REQUIRE(static_cast<int>(r.kind) == static_cast<int>(core::StageResult::Kind::kFail));
  BOOST_TEST(static_cast<int>(r.error.code) == static_cast<int>(ErrorCode::kInvariant));
  BOOST_TEST(r.error.location == "Appointment");
  BOOST_TEST(r.error.message.find("app-3") != std::string::npos, r.error.message);
  pm.payload = "not json";
  r = (*stage)->process(pm);
  BOOST_TEST(static_cast<int>(r.kind) == static_cast<int>(core::StageResult::Kind::kFail));
  BOOST_TEST(static_cast<int>(r.error.code) == static_cast<int>(ErrorCode::kStructure));
}

BOOST_AUTO_TEST_CASE(profiles_and_warnings) {
  auto stage = stageFrom(R"({"definitions":"fhir-profiles","profiles":["us-core-patient"]})");
  BOOST_REQUIRE(stage.has_value());
  core::PipelineMessage pm;
  pm.payload = R"({"resourceType":"Patient","gender":"female"})";
  auto r = (*stage)->process(pm);
  BOOST_REQUIRE(static_cast<int>(r.kind) == static_cast<int>(core::StageResult::Kind::kFail));
  BOOST_TEST(r.error.message.find("Patient.identifier: minimum required = 1") != std::string::npos,
             r.error.message);
  // Warnings fail the message only when asked to.
  auto strict =
      stageFrom(R"({"definitions":"fhir-profiles","fail_on_warning":true,"best_practice":true})");
  BOOST_REQUIRE(strict.has_value());
  pm.payload = dataFile("appointment.json");
  r = (*strict)->process(pm);
  BOOST_TEST(static_cast<int>(r.kind) == static_cast<int>(core::StageResult::Kind::kFail));
  BOOST_TEST(r.error.message.find("dom-6") != std::string::npos, r.error.message);
}

BOOST_AUTO_TEST_CASE(bad_config_is_refused_at_deploy) {
  auto stage = stageFrom(R"({"definitions":"fhir-profiles","profiles":["http://example.org/p"]})");
  BOOST_REQUIRE(!stage.has_value());
  BOOST_TEST(stage.error().message.find("/transformer/1/profiles") != std::string::npos,
             stage.error().message);
  stage = stageFrom(R"({"definitions":"no-such-dir"})");
  BOOST_TEST(!stage.has_value());
  stage = stageFrom(R"({"definitions":"fhir-profiles","strict":true})");
  BOOST_REQUIRE(!stage.has_value());
  BOOST_TEST(stage.error().message.find("strict") != std::string::npos, stage.error().message);
}

BOOST_AUTO_TEST_SUITE_END()
