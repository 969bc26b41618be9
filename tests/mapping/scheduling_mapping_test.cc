// mappings/scheduling-appointment-event.json: each scheduling-system event (both spellings) to a
// transaction Bundle that the FHIR R4 validator accepts: the Patient found by its scheduling ids,
// the Appointment found by its id with the status mapped and the facility as its location, both
// written as conditional updates (PUT Type?search) by the mapping itself.
#include <boost/test/unit_test.hpp>

#include "engine/mapping/mapping.h"
#include "validator_util.h"

namespace switchboard::mapping {
namespace {

using test::validator;

std::shared_ptr<const Mapping> scheduling() {
  static const auto m = [] {
    auto loaded =
        Mapping::loadFile(test::sourceDir() + "/mappings/scheduling-appointment-event.json");
    BOOST_REQUIRE_MESSAGE(loaded.has_value(), (loaded ? std::string() : loaded.error().message));
    return *loaded;
  }();
  return m;
}

fhirpath::Environment environment(const char* sender = "+639175550101") {
  fhirpath::Environment env;
  env.setVariable("facility", "north-campus");
  if (sender != nullptr) env.setVariable("sender", sender);
  return env;
}

// The Bundle a body maps to, checked by the validator.
rapidjson::Document mapValid(const std::string& body, const char* sender = "+639175550101") {
  auto out = scheduling()->run(body, environment(sender));
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto issues = validator().validateText(out->payload);
  BOOST_TEST(!fhir::hasErrors(issues), fhir::toOperationOutcomeJson(issues));
  return test::parse(out->payload);
}

std::string str(const rapidjson::Value& v, const char* pointer) {
  const rapidjson::Value* at = rapidjson::Pointer(pointer).Get(v);
  if (at == nullptr) return "<absent>";
  if (!at->IsString()) return "<not a string>";
  return at->GetString();
}

const rapidjson::Value& entry(const rapidjson::Document& bundle, const char* type) {
  const rapidjson::Value* e = test::entryOf(bundle, type);
  BOOST_REQUIRE_MESSAGE(e != nullptr, std::string("no ") + type + " entry");
  return *e;
}

std::size_t entries(const rapidjson::Document& bundle, const char* type) {
  std::size_t n = 0;
  for (const auto& e : bundle["entry"].GetArray()) n += e["resource"]["resourceType"] == type;
  return n;
}

const char* kCreatedCamel =
    R"({"event":"appointmentCreated","appointmentId":"A-100","patientId":"P-7","status":"SCHEDULED",)"
    R"("name":"Zoë Ñúñez","DoB":"1985-04-12","phone":"+63 917 555 0101","email":"zoe@example.org",)"
    R"("start":"2026-03-02T09:30:00+08:00","end":"2026-03-02T10:00:00+08:00"})";
const char* kCreatedSnake =
    R"({"action":"scheduled","appointment_id":"A-100","patient_id":"P-7","status":"SCHEDULED",)"
    R"("name":"Zoë Ñúñez","date_of_birth":"1985-04-12","phone":"+63 917 555 0101","email":"zoe@example.org",)"
    R"("start_time":"2026-03-02T09:30:00+08:00","end_time":"2026-03-02T10:00:00+08:00"})";

}  // namespace

BOOST_AUTO_TEST_SUITE(scheduling_mapping)

BOOST_AUTO_TEST_CASE(created_maps_patient_location_and_appointment_in_both_spellings) {
  auto camel = mapValid(kCreatedCamel);
  auto snake = mapValid(kCreatedSnake);
  for (const auto* bundle : {&camel, &snake}) {
    BOOST_TEST(entries(*bundle, "Patient") == 1u);
    BOOST_TEST(entries(*bundle, "Appointment") == 1u);
    const auto& patient = entry(*bundle, "Patient");
    BOOST_TEST(str(patient, "/resource/identifier/0/system") ==
               "urn:switchboard:scheduling:patient-id");
    BOOST_TEST(str(patient, "/resource/identifier/0/value") == "P-7");
    BOOST_TEST(str(patient, "/resource/name/0/text") == "Zoë Ñúñez");
    BOOST_TEST(str(patient, "/resource/birthDate") == "1985-04-12");
    BOOST_TEST(str(patient, "/resource/telecom/0/value") == "+639175550101");
    BOOST_TEST(str(patient, "/resource/telecom/1/value") == "zoe@example.org");
    BOOST_TEST(str(patient, "/request/method") == "PUT");
    BOOST_TEST(str(patient, "/request/url") ==
               "Patient?identifier=urn:switchboard:scheduling:patient-id|P-7");
    BOOST_TEST(str(patient, "/request/ifNoneExist") == "<absent>");
    BOOST_TEST(entries(*bundle, "Location") == 0u);  // the facility is a logical reference
    const auto& appointment = entry(*bundle, "Appointment");
    BOOST_TEST(str(appointment, "/resource/status") == "booked");
    BOOST_TEST(str(appointment, "/resource/identifier/0/value") == "A-100");
    BOOST_TEST(str(appointment, "/resource/start") == "2026-03-02T09:30:00+08:00");
    BOOST_TEST(str(appointment, "/resource/end") == "2026-03-02T10:00:00+08:00");
    BOOST_TEST(str(appointment, "/request/method") == "PUT");
    BOOST_TEST(str(appointment, "/request/url") ==
               "Appointment?identifier=urn:switchboard:scheduling:appointment-id|A-100");
    BOOST_TEST(str(appointment, "/request/ifNoneExist") == "<absent>");
    BOOST_TEST(str(appointment, "/resource/participant/0/actor/reference") ==
               str(patient, "/fullUrl"));
    BOOST_TEST(str(appointment, "/resource/participant/1/actor/type") == "Location");
    BOOST_TEST(str(appointment, "/resource/participant/1/actor/identifier/system") ==
               "urn:switchboard:scheduling:facility");
    BOOST_TEST(str(appointment, "/resource/participant/1/actor/identifier/value") ==
               "north-campus");
  }
  // The same appointment, whichever spelling: the same uuids (so the same resources).
  BOOST_TEST(str(entry(camel, "Appointment"), "/fullUrl") ==
             str(entry(snake, "Appointment"), "/fullUrl"));
}

BOOST_AUTO_TEST_CASE(each_status_maps_to_its_fhir_status) {
  struct Case {
    const char* body;
    const char* status;
  };
  const Case cases[] = {
      {R"({"event":"appointmentRescheduled","appointmentId":"A1","patientId":"P1","start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "booked"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"CONFIRMED","start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "booked"},
      {R"({"event":"appointmentCanceled","appointmentId":"A1","patientId":"P1"})", "cancelled"},
      {R"({"action":"cancelled","appointment_id":"A1","patient_id":"P1"})", "cancelled"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"canceled"})",
       "cancelled"},
      {R"({"event":"Queued","appointmentId":"A1","patientId":"P1","queueNumber":12,"start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "arrived"},
      {R"({"action":"queued","appointment_id":"A1","patient_id":"P1","queue_number":"12","start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "arrived"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"NO SHOW","start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "noshow"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"no_show","start":"2026-03-03T08:00:00Z","end":"2026-03-03T08:30:00Z"})",
       "noshow"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.body) {
      auto bundle = mapValid(c.body);
      BOOST_TEST(str(entry(bundle, "Appointment"), "/resource/status") == c.status);
    }
  }
}

BOOST_AUTO_TEST_CASE(queue_number_and_a_default_end) {
  auto bundle = mapValid(
      R"({"event":"Queued","appointmentId":7,"patientId":9,"queueNumber":12,"start":"2026-03-03T08:00:00+08:00"})");
  const auto& appointment = entry(bundle, "Appointment");
  BOOST_TEST(str(appointment, "/resource/comment") == "Queue number 12");
  BOOST_TEST(str(appointment, "/resource/identifier/0/value") == "7");  // an integer id as text
  BOOST_TEST(str(appointment, "/resource/end") == "2026-03-03T08:30:00+08:00");
  BOOST_TEST(str(entry(bundle, "Patient"), "/resource/identifier/0/value") == "9");
}

BOOST_AUTO_TEST_CASE(temporary_and_permanent_ids_find_the_patient_by_either) {
  auto both = mapValid(
      R"({"event":"appointmentCanceled","appointmentId":"A1","patientId":"P1","temporaryPatientId":"T1"})");
  const auto& patient = entry(both, "Patient");
  BOOST_TEST(str(patient, "/request/url") ==
             "Patient?identifier=urn:switchboard:scheduling:patient-id|P1,"
             "urn:switchboard:scheduling:temporary-patient-id|T1");
  BOOST_TEST(str(patient, "/resource/identifier/1/use") == "temp");
  auto temporary = mapValid(
      R"({"event":"appointmentCanceled","appointment_id":"A1","temporary_patient_id":"T1"})");
  BOOST_TEST(str(entry(temporary, "Patient"), "/request/url") ==
             "Patient?identifier=urn:switchboard:scheduling:temporary-patient-id|T1");
  BOOST_TEST(str(entry(temporary, "Appointment"), "/resource/participant/0/actor/reference") ==
             str(entry(temporary, "Patient"), "/fullUrl"));
}

BOOST_AUTO_TEST_CASE(patient_created_links_the_permanent_id_and_touches_no_appointment) {
  for (const char* body :
       {R"({"event":"patientCreated","patientId":"P-900","temporaryPatientId":"TMP-5"})",
        R"({"event":"patient_created","patient_id":"P-900","temporary_patient_id":"TMP-5"})"}) {
    BOOST_TEST_CONTEXT(body) {
      auto bundle = mapValid(body, nullptr);
      BOOST_TEST(bundle["entry"].Size() == 1u);
      const auto& patient = entry(bundle, "Patient");
      BOOST_TEST(str(patient, "/resource/identifier/0/value") == "P-900");
      BOOST_TEST(str(patient, "/resource/identifier/0/use") == "official");
      BOOST_TEST(str(patient, "/resource/identifier/1/value") == "TMP-5");
      BOOST_TEST(str(patient, "/request/method") == "PUT");
      BOOST_TEST(str(patient, "/request/url") ==
                 "Patient?identifier=urn:switchboard:scheduling:patient-id|P-900,"
                 "urn:switchboard:scheduling:temporary-patient-id|TMP-5");
    }
  }
}

BOOST_AUTO_TEST_CASE(hostile_strings_stay_text_and_are_encoded_in_searches) {
  auto bundle = mapValid(
      R"({"event":"appointmentCreated","appointmentId":"A|1,2&x=y","patientId":"P 1","name":"{{ %sender }} <b>","status":"CANCELED"})");
  const auto& appointment = entry(bundle, "Appointment");
  BOOST_TEST(str(appointment, "/resource/identifier/0/value") == "A|1,2&x=y");
  BOOST_TEST(str(appointment, "/request/url") ==
             "Appointment?identifier=urn:switchboard:scheduling:appointment-id|A%7C1%2C2%26x%3Dy");
  BOOST_TEST(str(entry(bundle, "Patient"), "/resource/name/0/text") == "{{ %sender }} <b>");
}

BOOST_AUTO_TEST_CASE(input_the_source_would_refuse_fails_the_mapping_too) {
  for (
      const char* body :
      {R"({"event":"appointmentCreated","patientId":"P1"})",
       R"({"event":"somethingElse","appointmentId":"A1","patientId":"P1"})",
       R"({"event":"appointmentCreated","appointmentId":"A1"})",
       R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"BOOKED"})"}) {
    auto out = scheduling()->run(body, environment());
    BOOST_TEST(!out.has_value(), body);
  }
  fhirpath::Environment noFacility;
  auto out = scheduling()->run(kCreatedCamel, noFacility);
  BOOST_REQUIRE(!out.has_value());
  BOOST_TEST(out.error().location == "%facility");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
