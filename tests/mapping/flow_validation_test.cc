// The Flow mappings' Bundles checked by the FHIR R4 validator over fhir-profiles/: no error in
// any variant (insured or not, telehealth or in person, booked or proposed, any provider).
#include <boost/test/unit_test.hpp>

#include "engine/mapping/mapping.h"
#include "validator_util.h"

namespace switchboard::mapping {
namespace {

using test::validator;

std::string withAnswers(const std::string& response,
                        const std::vector<std::pair<std::string, std::string>>& changes) {
  auto doc = test::parse(response);
  for (const auto& [k, v] : changes) {
    if (doc.HasMember(k.c_str())) doc.RemoveMember(k.c_str());
    rapidjson::Value key(k.c_str(), doc.GetAllocator());
    rapidjson::Value value(v.c_str(), doc.GetAllocator());
    doc.AddMember(key, value, doc.GetAllocator());
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return sb.GetString();
}

void expectValid(const std::string& mappingFile, const std::string& input,
                 const std::string& status = "booked") {
  auto mapping = Mapping::loadFile(test::sourceDir() + "/mappings/" + mappingFile);
  BOOST_REQUIRE_MESSAGE(mapping.has_value(), (mapping ? std::string() : mapping.error().message));
  fhirpath::Environment env;
  env.setVariable("sender", "+15551234567");
  env.setVariable("facility", "HealthCare Clinic");
  env.setVariable("appointment_status", status);
  env.variables["receivedAt"] = {fhirpath::Node::temporal(
      *fhirpath::Temporal::parse("2026-02-10T14:00:00.000Z", fhirpath::TemporalKind::kDateTime))};
  auto out = (*mapping)->run(input, env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto issues = validator().validateText(out->payload);
  BOOST_TEST(!fhir::hasErrors(issues), fhir::toOperationOutcomeJson(issues));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(flow_validation)

BOOST_AUTO_TEST_CASE(appointment_bundles_validate) {
  const std::string seed =
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-flow-response.json");
  expectValid("whatsapp-flow-appointment.json", seed);
  expectValid("whatsapp-flow-appointment.json",
              withAnswers(seed, {{"insurance_status", "self_pay"},
                                 {"insurance_provider", ""},
                                 {"member_id", ""},
                                 {"visit_notes", ""},
                                 {"provider_preference", "any"}}));
  expectValid("whatsapp-flow-appointment.json",
              withAnswers(seed, {{"visit_type", "telehealth"},
                                 {"visit_reason_category", "chronic"},
                                 {"appointment_type", "annual_checkup"}}),
              "proposed");
}

BOOST_AUTO_TEST_CASE(registration_bundles_validate) {
  const std::string seed =
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-flow-response.json");
  expectValid("whatsapp-flow-registration.json", seed);
  expectValid("whatsapp-flow-registration.json",
              withAnswers(seed, {{"insurance_status", "self_pay"}, {"patient_email", ""}}));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
