// The shipped WhatsApp Flow appointment mapping on the seed submission and its variants.
#include <boost/test/unit_test.hpp>

#include <map>

#include "engine/mapping/mapping.h"
#include "test_util.h"

namespace switchboard::mapping {
namespace {

std::shared_ptr<const Mapping> flowMapping() {
  static std::shared_ptr<const Mapping> m = [] {
    auto loaded = Mapping::loadFile(test::sourceDir() + "/mappings/whatsapp-flow-appointment.json");
    BOOST_REQUIRE_MESSAGE(loaded.has_value(), (loaded ? std::string() : loaded.error().message));
    return *loaded;
  }();
  return m;
}

fhirpath::Environment channelVars() {
  fhirpath::Environment env;
  env.setVariable("facility", "HealthCare Clinic");
  env.setVariable("channel", "whatsapp-8x8");
  env.variables["receivedAt"] = {fhirpath::Node::temporal(
      *fhirpath::Temporal::parse("2026-02-10T14:00:00.000Z", fhirpath::TemporalKind::kDateTime))};
  return env;
}

std::string seedResponse() {
  return test::readFile(test::sourceDir() + "/tests/data/mapping/seed-flow-response.json");
}

// The seed's Flow response with some answers replaced (JSON values) and some removed (null).
std::string variant(const std::map<std::string, std::string>& changes) {
  auto doc = test::parse(seedResponse());
  for (const auto& [k, v] : changes) {
    if (doc.HasMember(k.c_str())) doc.RemoveMember(k.c_str());
    if (v == "null") continue;
    rapidjson::Document value;
    value.Parse(v.c_str());
    BOOST_REQUIRE(!value.HasParseError());
    rapidjson::Value key(k.c_str(), doc.GetAllocator());
    rapidjson::Value copy(value, doc.GetAllocator());
    doc.AddMember(key, copy, doc.GetAllocator());
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return sb.GetString();
}

rapidjson::Document mapBare(const std::string& response,
                            fhirpath::Environment env = channelVars()) {
  env.setVariable("sender", "+15551234567");
  auto out = flowMapping()->run(response, env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  BOOST_TEST(out->contentType == "application/fhir+json");
  return test::parse(out->payload);
}

Error mapError(const std::string& response) {
  auto env = channelVars();
  env.setVariable("sender", "+15551234567");
  auto out = flowMapping()->run(response, env);
  BOOST_REQUIRE(!out);
  return out.error();
}

// No empty strings, objects or arrays anywhere.
bool noEmptyValues(const rapidjson::Value& v) {
  if (v.IsString()) return v.GetStringLength() > 0;
  if (v.IsObject()) {
    if (v.ObjectEmpty()) return false;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      if (!noEmptyValues(it->value)) return false;
    }
  }
  if (v.IsArray()) {
    if (v.Empty()) return false;
    for (const auto& i : v.GetArray()) {
      if (!noEmptyValues(i)) return false;
    }
  }
  return !v.IsNull();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(flow_mapping)

BOOST_AUTO_TEST_CASE(seed_8x8_submission) {
  auto out = flowMapping()->run(
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json"),
      channelVars());
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto b = test::parse(out->payload);
  BOOST_TEST(b["type"] == "transaction");
  BOOST_TEST(b["entry"].Size() ==
             5u);  // Patient, Organization, Coverage, Appointment, QuestionnaireResponse
  BOOST_TEST(noEmptyValues(b));

  const auto* pe = test::entryOf(b, "Patient");
  BOOST_REQUIRE(pe);
  const auto& p = (*pe)["resource"];
  BOOST_TEST(p["identifier"][0]["system"] == "urn:switchboard:whatsapp");
  BOOST_TEST(p["identifier"][0]["value"] == "+15551234567");
  BOOST_TEST(p["name"][0]["family"] == "Chen");
  BOOST_TEST(p["name"][0]["given"][0] == "Emily");
  BOOST_TEST(p["birthDate"] == "1992-08-22");
  BOOST_TEST(p["telecom"][0]["system"] == "phone");
  BOOST_TEST(p["telecom"][1]["value"] == "emily.chen@example.com");
  BOOST_TEST((*pe)["request"]["ifNoneExist"] ==
             "identifier=urn:switchboard:whatsapp|%2B15551234567");
  const std::string patientRef = (*pe)["fullUrl"].GetString();

  const auto* ce = test::entryOf(b, "Coverage");
  BOOST_REQUIRE(ce);
  const auto& c = (*ce)["resource"];
  BOOST_TEST(c["status"] == "active");
  BOOST_TEST(c["subscriberId"] == "BCBS987654321");
  BOOST_TEST(c["beneficiary"]["reference"].GetString() == patientRef);
  const auto* oe = test::entryOf(b, "Organization");
  BOOST_REQUIRE(oe);
  BOOST_TEST((*oe)["resource"]["name"] == "Blue Cross Blue Shield");
  BOOST_TEST(std::string(c["payor"][0]["reference"].GetString()) == (*oe)["fullUrl"].GetString());

  const auto* ae = test::entryOf(b, "Appointment");
  BOOST_REQUIRE(ae);
  const auto& a = (*ae)["resource"];
  BOOST_TEST(a["status"] == "booked");
  BOOST_TEST(a["start"] == "2026-02-12T10:00:00-05:00");
  BOOST_TEST(a["end"] == "2026-02-12T10:20:00-05:00");
  BOOST_TEST(a["minutesDuration"].GetInt() == 20);
  BOOST_TEST(a["serviceType"][0]["coding"][0]["code"] == "185345009");
  BOOST_TEST(a["serviceType"][0]["text"] == "Sick Visit");
  BOOST_TEST(a["reasonCode"][0]["coding"][0]["code"] == "404684003");
  BOOST_TEST(a["serviceCategory"][0]["coding"][0]["code"] == "AMB");
  BOOST_TEST(a["comment"] == "Persistent cough and fever for 3 days");
  BOOST_REQUIRE(a["participant"].Size() == 3u);  // patient, Dr. Smith, the clinic
  BOOST_TEST(a["participant"][0]["actor"]["reference"].GetString() == patientRef);
  BOOST_TEST(a["participant"][0]["status"] == "accepted");
  BOOST_TEST(a["participant"][1]["actor"]["reference"] ==
             "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893");
  BOOST_TEST(a["participant"][2]["actor"]["display"] == "HealthCare Clinic");
  for (const auto& part : a["participant"].GetArray()) BOOST_TEST(part.HasMember("status"));
  const std::string apptId = a["identifier"][0]["value"].GetString();
  BOOST_TEST((*ae)["request"]["ifNoneExist"].GetString() ==
             "identifier=urn:switchboard:appointment|" + apptId);

  const auto* qe = test::entryOf(b, "QuestionnaireResponse");
  BOOST_REQUIRE(qe);
  const auto& q = (*qe)["resource"];
  BOOST_TEST(q["status"] == "completed");
  BOOST_TEST(q["subject"]["reference"].GetString() == patientRef);
  BOOST_TEST(q["questionnaire"] == "urn:switchboard:whatsapp-flow:healthcare_appt_flow_789");
  BOOST_TEST(q["authored"] == "2026-02-10T14:00:00.000Z");
  BOOST_TEST(q["item"].Size() == 15u);  // every Flow field answered in the seed
  BOOST_TEST(q["item"][0]["linkId"] == "appointment_type");
  BOOST_TEST(q["item"][14]["answer"].Size() == 2u);  // contact_preferences: whatsapp, email
  BOOST_TEST(q.HasMember("identifier"));
  BOOST_TEST((*qe)["request"].HasMember("ifNoneExist"));
}

BOOST_AUTO_TEST_CASE(meta_body_gives_the_same_resources) {
  auto env = channelVars();
  auto fromMeta = flowMapping()->run(
      test::readFile(test::sourceDir() + "/tests/data/mapping/meta-flow-submission.json"), env);
  auto from8x8 = flowMapping()->run(
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json"), env);
  env.setVariable("sender", "+15551234567");
  auto fromBare = flowMapping()->run(seedResponse(), env);
  BOOST_REQUIRE_MESSAGE(fromMeta.has_value(),
                        (fromMeta ? std::string() : fromMeta.error().message));
  BOOST_REQUIRE(from8x8);
  BOOST_REQUIRE(fromBare);
  BOOST_TEST(fromMeta->payload == from8x8->payload);
  BOOST_TEST(fromBare->payload == from8x8->payload);
}

BOOST_AUTO_TEST_CASE(replay_is_byte_identical) {
  const std::string body =
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json");
  auto a = flowMapping()->run(body, channelVars());
  auto b = flowMapping()->run(body, channelVars());
  BOOST_REQUIRE(a);
  BOOST_REQUIRE(b);
  BOOST_TEST(a->payload == b->payload);
  // Another submission by the same patient keeps the Patient's fullUrl, not the Appointment's.
  auto other = mapBare(variant({{"appointment_date", "\"2026-02-13\""}}));
  auto first = mapBare(seedResponse());
  auto url = [](const rapidjson::Document& b, const char* type) {
    return std::string(test::entryOf(b, type)->operator[]("fullUrl").GetString());
  };
  BOOST_TEST(url(other, "Patient") == url(first, "Patient"));
  BOOST_TEST(url(other, "Appointment") != url(first, "Appointment"));
}

BOOST_AUTO_TEST_CASE(uninsured_has_no_coverage) {
  auto b = mapBare(variant({{"insurance_status", "\"self_pay\""},
                            {"insurance_provider", "\"\""},
                            {"member_id", "\"\""}}));
  BOOST_TEST(!test::entryOf(b, "Coverage"));
  BOOST_TEST(!test::entryOf(b, "Organization"));
  BOOST_TEST(b["entry"].Size() == 3u);
  const auto& q = test::entryOf(b, "QuestionnaireResponse")->operator[]("resource");
  for (const auto& item : q["item"].GetArray()) {
    BOOST_TEST(item["linkId"] != "insurance_provider");
    BOOST_TEST(item["linkId"] != "member_id");
  }
  BOOST_TEST(noEmptyValues(b));
}

BOOST_AUTO_TEST_CASE(empty_optional_answers_leave_no_trace) {
  auto b = mapBare(variant({{"visit_notes", "\"  \""},
                            {"provider_preference", "\"any\""},
                            {"contact_preferences", "null"},
                            {"patient_first_name", "\"  Emily \""}}));
  BOOST_TEST(noEmptyValues(b));
  const auto& a = test::entryOf(b, "Appointment")->operator[]("resource");
  BOOST_TEST(!a.HasMember("comment"));
  BOOST_TEST(a["participant"].Size() == 2u);  // "any": no practitioner
  const auto& p = test::entryOf(b, "Patient")->operator[]("resource");
  BOOST_TEST(p["name"][0]["given"][0] == "Emily");
  const auto& q = test::entryOf(b, "QuestionnaireResponse")->operator[]("resource");
  BOOST_TEST(q["item"].Size() == 13u);  // no visit_notes, no contact_preferences
}

BOOST_AUTO_TEST_CASE(telehealth_proposed_and_durations) {
  auto env = channelVars();
  env.setVariable("appointment_status", "proposed");
  auto b = mapBare(variant({{"visit_type", "\"telehealth\""},
                            {"appointment_type", "\"specialist\""},
                            {"time_slot", "\"1600\""},
                            {"appointment_date", "\"2026-03-08\""}}),
                   env);
  const auto& a = test::entryOf(b, "Appointment")->operator[]("resource");
  BOOST_TEST(a["status"] == "proposed");
  BOOST_TEST(a["serviceCategory"][0]["coding"][0]["code"] == "VR");
  BOOST_TEST(a["start"] == "2026-03-08T16:00:00-04:00");  // the DST day itself
  BOOST_TEST(a["end"] == "2026-03-08T16:45:00-04:00");
  BOOST_TEST(a["participant"].Size() == 2u);  // no clinic location for telehealth
  BOOST_TEST(a["participant"][1]["status"] == "needs-action");
  env.setVariable("timezone", "America/Los_Angeles");
  auto la = mapBare(seedResponse(), env);
  BOOST_TEST(test::entryOf(la, "Appointment")->operator[]("resource")["start"] ==
             "2026-02-12T10:00:00-08:00");
}

BOOST_AUTO_TEST_CASE(bad_input_is_named) {
  auto e = mapError(variant({{"patient_last_name", "\"\""}}));
  BOOST_TEST(static_cast<int>(e.code) == static_cast<int>(ErrorCode::kRequired));
  BOOST_TEST(e.location == "patient_last_name");
  BOOST_TEST(mapError(variant({{"time_slot", "null"}})).location == "time_slot");
  auto slot = mapError(variant({{"time_slot", "\"1030\""}}));
  BOOST_TEST(slot.location == "time_slot");
  BOOST_TEST(slot.message ==
             "mapping whatsapp-flow-appointment: time_slot: not one of the Flow's time slots");
  BOOST_TEST(mapError(variant({{"appointment_date", "\"2026-02-30\""}})).location ==
             "appointment_date");
  BOOST_TEST(mapError(variant({{"date_of_birth", "\"22/08/1992\""}})).location == "date_of_birth");
  auto code = mapError(variant({{"appointment_type", "\"massage\""}}));
  BOOST_TEST(static_cast<int>(code.code) == static_cast<int>(ErrorCode::kCodeInvalid));
  BOOST_TEST(code.location == "appointment_type");
  BOOST_TEST(mapError(variant({{"visit_reason_category", "\"boredom\""}})).location ==
             "visit_reason_category");
  BOOST_TEST(mapError(variant({{"insurance_provider", "\"\""}})).location == "insurance_provider");
  BOOST_TEST(mapError(variant({{"patient_email", "\"not-an-email\""}})).location ==
             "patient_email");
  BOOST_TEST(mapError(variant({{"contact_preferences", "[\"pigeon\"]"}})).location ==
             "contact_preferences");
  auto env = channelVars();
  env.setVariable("sender", "+15551234567");
  env.setVariable("appointment_status", "cancelled");
  auto status = flowMapping()->run(seedResponse(), env);
  BOOST_REQUIRE(!status);
  BOOST_TEST(status.error().location == "%appointment_status");
}

BOOST_AUTO_TEST_CASE(malformed_response_json_and_missing_sender) {
  auto out = flowMapping()->run(
      R"({"eventType":"inbound_message_received","payload":{"user":{"msisdn":"+15551234567"},
    "type":"Interactive","content":{"interactive":{"type":"nfmReply","nfmReply":{"responseJson":"{not json"}}}}})",
      channelVars());
  BOOST_REQUIRE(!out);
  BOOST_TEST(static_cast<int>(out.error().code) == static_cast<int>(ErrorCode::kStructure));
  BOOST_TEST(out.error().location == "/payload/content/interactive/nfmReply/responseJson");
  BOOST_TEST(out.error().message.starts_with(
      "mapping whatsapp-flow-appointment: /payload/content/interactive/nfmReply/responseJson is "
      "not valid JSON"));
  auto noSender = flowMapping()->run(seedResponse(), channelVars());
  BOOST_REQUIRE(!noSender);
  BOOST_TEST(noSender.error().location == "%sender");
}

BOOST_AUTO_TEST_CASE(hostile_names_stay_text) {
  auto b = mapBare(variant({{"patient_last_name", "\"O'Brien\\\"}]<script>\\u0001\""},
                            {"visit_notes", "\"{{ %sender }}\""}}));
  const auto& p = test::entryOf(b, "Patient")->operator[]("resource");
  BOOST_TEST(p["name"][0]["family"] == "O'Brien\"}]<script>\x01");
  BOOST_TEST(test::entryOf(b, "Appointment")->operator[]("resource")["comment"] == "{{ %sender }}");
}

// Reverse check: the QuestionnaireResponse gives back every answer of the Flow response.
BOOST_AUTO_TEST_CASE(questionnaire_response_round_trips_the_answers) {
  auto b = mapBare(seedResponse());
  const auto& q = test::entryOf(b, "QuestionnaireResponse")->operator[]("resource");
  auto original = test::parse(seedResponse());
  rapidjson::Document rebuilt(rapidjson::kObjectType);
  auto& alloc = rebuilt.GetAllocator();
  for (const auto& item : q["item"].GetArray()) {
    rapidjson::Value key(item["linkId"].GetString(), alloc);
    rapidjson::Value values(rapidjson::kArrayType);
    for (const auto& answer : item["answer"].GetArray()) {
      std::string v;
      if (answer.HasMember("valueString")) v = answer["valueString"].GetString();
      if (answer.HasMember("valueDate")) v = answer["valueDate"].GetString();
      if (answer.HasMember("valueCoding")) v = answer["valueCoding"]["code"].GetString();
      if (answer.HasMember("valueTime")) {
        std::string t = answer["valueTime"].GetString();  // "10:00:00" -> "1000"
        v = t.substr(0, 2) + t.substr(3, 2);
      }
      values.PushBack(rapidjson::Value(v.c_str(), alloc), alloc);
    }
    if (std::string(item["linkId"].GetString()) == "contact_preferences") {
      rebuilt.AddMember(key, values, alloc);
    } else {
      BOOST_REQUIRE(values.Size() == 1u);
      rebuilt.AddMember(key, values[0], alloc);
    }
  }
  original.RemoveMember("flow_token");  // not a Flow field
  const bool same = rebuilt == original;
  BOOST_TEST(same, "rebuilt " << rebuilt << " original " << original);
  BOOST_TEST(rebuilt.MemberCount() == 15u);
}

BOOST_AUTO_TEST_CASE(registration_only_mapping) {
  auto reg = Mapping::loadFile(test::sourceDir() + "/mappings/whatsapp-flow-registration.json");
  BOOST_REQUIRE_MESSAGE(reg.has_value(), (reg ? std::string() : reg.error().message));
  auto out = (*reg)->run(
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json"),
      channelVars());
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto b = test::parse(out->payload);
  BOOST_TEST(b["entry"].Size() == 3u);
  BOOST_TEST(test::entryOf(b, "Patient"));
  BOOST_TEST(test::entryOf(b, "Coverage"));
  BOOST_TEST(!test::entryOf(b, "Appointment"));
  // Only the registration answers are needed, and the email is optional.
  auto env = channelVars();
  env.setVariable("sender", "+15551234567");
  auto minimal = (*reg)->run(
      R"({"patient_first_name":"Emily","patient_last_name":"Chen","date_of_birth":"1992-08-22","insurance_status":"self_pay"})",
      env);
  BOOST_REQUIRE_MESSAGE(minimal.has_value(), (minimal ? std::string() : minimal.error().message));
  auto m = test::parse(minimal->payload);
  BOOST_TEST(m["entry"].Size() == 1u);
  BOOST_TEST(m["entry"][0]["resource"]["telecom"].Size() == 1u);
  BOOST_TEST(noEmptyValues(m));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
