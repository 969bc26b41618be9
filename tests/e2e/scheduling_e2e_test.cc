// The scheduling-system webhooks end to end: the `switchboard` binary runs the shipped
// conf/channels/scheduling.json and its mapping; a real FHIR R4 server (Medplum's FhirRouter over
// MemoryRepository, validating every resource) receives the transactions. One appointment created,
// rescheduled and canceled stays one Appointment; Queued sets arrived; a redelivery creates
// nothing; patientCreated adds the permanent id to the Patient made under the temporary one.
#define BOOST_TEST_MODULE scheduling_e2e
#include <boost/test/unit_test.hpp>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/engine_process.h"
#include "tests/support/node_peer.h"
#include "tests/support/source_tests.h"

namespace fs = std::filesystem;
using namespace switchboard::e2e;
using switchboard::testing::NodePeer;
using switchboard::testing::peerRequest;

namespace {

const std::string kNorthKey = "north-campus-key-7f3a9c21e0b4";
const std::string kSouthKey = "south-campus-key-19d2e6a8c5f0";
const std::vector<std::pair<std::string, std::string>> kAdmin = {
    {"Authorization", "Bearer e2e-admin-token"}};
const std::string kPatientSystem = "urn:switchboard:scheduling:patient-id";
const std::string kTemporarySystem = "urn:switchboard:scheduling:temporary-patient-id";
const std::string kAppointmentSystem = "urn:switchboard:scheduling:appointment-id";

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

std::string at(const rapidjson::Value& v, const char* pointer) {
  const rapidjson::Value* found = rapidjson::Pointer(pointer).Get(v);
  return found != nullptr && found->IsString() ? found->GetString() : "<absent>";
}

struct World {
  NodePeer fhir{"fhir-server.mjs"};
  std::unique_ptr<EngineProcess> engine;

  World() {
    BOOST_REQUIRE_MESSAGE(fhir.error().empty(), fhir.error());
    const fs::path source = NodePeer::sourceDir();
    engine = std::make_unique<EngineProcess>(
        "scheduling", switchboard::testing::readTestFile(source / "conf" / "switchboard.json"));
    fs::copy_file(source / "conf" / "channels" / "scheduling.json",
                  engine->dir() / "conf" / "channels" / "scheduling.json");
    fs::create_directory_symlink(source / "mappings", engine->dir() / "mappings");
    const fs::path keys = engine->dir() / "scheduling-keys";
    std::ofstream(keys) << "# facility key\nnorth-campus " << kNorthKey << "\nsouth-campus\t"
                        << kSouthKey << "\n";
    engine->setEnv("SWITCHBOARD_FHIR_BASE_URL", fhir.baseUrl());
    engine->setEnv("SWITCHBOARD_SCHEDULING_KEYS_FILE", keys.string());
    BOOST_REQUIRE_MESSAGE(engine->start(), "engine did not start: " + engine->stderrText());
  }

  Response post(const std::string& body, const std::string& key = kNorthKey) {
    return http(engine->port(), "POST", "/webhooks/scheduling", body,
                {{"X-API-Key", key}, {"Content-Type", "application/json"}});
  }

  std::string detail(long long id) {
    return http(engine->port(), "GET", "/api/messages/" + std::to_string(id), {}, kAdmin).body;
  }

  std::string deliveryStatus(long long id) {
    auto d = parse(detail(id));
    if (!d.IsObject() || !d.HasMember("deliveries") || d["deliveries"].Empty()) return "";
    return at(d["deliveries"][d["deliveries"].Size() - 1], "/status");
  }

  int messageCount() {
    auto d = parse(
        http(engine->port(), "GET", "/api/messages?channel=scheduling&limit=500", {}, kAdmin).body);
    return d.IsObject() && d.HasMember("items") ? static_cast<int>(d["items"].Size()) : -1;
  }

  // Posts an event, expects 200 and waits until the EHR took it; returns the message id.
  long long deliver(const std::string& body, const std::string& key = kNorthKey) {
    auto r = post(body, key);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    auto it = r.headers.find("X-Switchboard-Message-Ids");
    BOOST_REQUIRE(it != r.headers.end());
    const long long id = std::stoll(it->second);
    BOOST_REQUIRE_MESSAGE(
        waitFor([&] { return deliveryStatus(id) == "succeeded"; }, 60),
        "message " + std::to_string(id) + " not delivered: " + detail(id) +
            "\nFHIR server: " + peerRequest(fhir.port(), "GET", "/_control/stats").body);
    return id;
  }

  // The search's matches on the FHIR server.
  rapidjson::Document search(const std::string& query) {
    return parse(peerRequest(fhir.port(), "GET", query).body);
  }
  int count(const std::string& query) {
    auto d = search(query);
    if (d.HasParseError() || !d.IsObject()) return -1;
    return d.HasMember("entry") ? static_cast<int>(d["entry"].Size()) : 0;
  }
};

std::string appointmentEvent(const std::string& event, const std::string& appointment,
                             const std::string& patientIds, const std::string& start,
                             const std::string& end, const std::string& extra = "") {
  return R"({"event":")" + event + R"(","appointmentId":")" + appointment + R"(",)" + patientIds +
         R"(,"name":"Zoë Ñúñez","DoB":"1985-04-12","phone":"+63 917 555 0101",)"
         R"("email":"zoe@example.org","start":")" +
         start + R"(","end":")" + end + "\"" + extra + "}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_appointment_through_its_life_is_one_appointment_on_the_server) {
  World w;
  const std::string temporary = R"("temporaryPatientId":"TMP-5")";
  w.deliver(appointmentEvent("appointmentCreated", "A-100", temporary, "2026-03-02T09:30:00+08:00",
                             "2026-03-02T10:00:00+08:00",
                             R"(,"timestamp":"2026-03-01T10:00:00Z")"));
  BOOST_TEST(w.count("/Appointment") == 1);
  BOOST_TEST(w.count("/Patient") == 1);
  BOOST_TEST(w.count("/Patient?identifier=" + kTemporarySystem + "|TMP-5") == 1);

  // Rescheduled (snake_case, action spelling): the same Appointment moves.
  const std::string rescheduled =
      R"({"action":"rescheduled","appointment_id":"A-100","temporary_patient_id":"TMP-5",)"
      R"("name":"Zoë Ñúñez","phone":"+63 917 555 0101","start_time":"2026-03-04T14:00:00+08:00",)"
      R"("end_time":"2026-03-04T14:30:00+08:00","timestamp":"2026-03-01T11:00:00Z"})";
  const long long rescheduledId = w.deliver(rescheduled);
  BOOST_TEST(w.count("/Appointment") == 1);
  auto moved = w.search("/Appointment?identifier=" + kAppointmentSystem + "|A-100");
  BOOST_REQUIRE(moved.HasMember("entry") && moved["entry"].Size() == 1u);
  BOOST_TEST(at(moved, "/entry/0/resource/status") == "booked");
  BOOST_TEST(at(moved, "/entry/0/resource/start").starts_with("2026-03-04T"));

  // The provider redelivers the reschedule: 200, the same message, nothing new anywhere.
  const int messages = w.messageCount();
  auto again = w.post(rescheduled);
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.headers["X-Switchboard-Message-Ids"] == std::to_string(rescheduledId));
  BOOST_TEST(w.messageCount() == messages);

  // The permanent id arrives: added to the Patient made under the temporary one.
  w.deliver(
      R"({"event":"patientCreated","patientId":"P-900","temporaryPatientId":"TMP-5","name":"Zoë Ñúñez"})");
  BOOST_TEST(w.count("/Patient") == 1);
  BOOST_TEST(w.count("/Patient?identifier=" + kPatientSystem + "|P-900") == 1);
  BOOST_TEST(w.count("/Patient?identifier=" + kTemporarySystem + "|TMP-5") == 1);

  // Canceled, now under both ids: still one Patient, one Appointment, the last status and time.
  w.deliver(appointmentEvent("appointmentCanceled", "A-100",
                             R"("patientId":"P-900","temporaryPatientId":"TMP-5")",
                             "2026-03-04T14:00:00+08:00", "2026-03-04T14:30:00+08:00"));
  BOOST_TEST(w.count("/Patient") == 1);
  BOOST_TEST(w.count("/Appointment") == 1);
  auto canceled = w.search("/Appointment?identifier=" + kAppointmentSystem + "|A-100");
  BOOST_REQUIRE(canceled.HasMember("entry") && canceled["entry"].Size() == 1u);
  const auto& appointment = canceled["entry"][0]["resource"];
  BOOST_TEST(at(appointment, "/status") == "cancelled");
  BOOST_TEST(at(appointment, "/start").starts_with("2026-03-04T"));
  BOOST_TEST(at(appointment, "/participant/1/actor/identifier/value") == "north-campus");
  auto patients = w.search("/Patient");
  const std::string patientRef = "Patient/" + at(patients, "/entry/0/resource/id");
  BOOST_TEST(at(appointment, "/participant/0/actor/reference") == patientRef);
  BOOST_TEST(at(patients, "/entry/0/resource/name/0/text") == "Zoë Ñúñez");

  auto stats = parse(peerRequest(w.fhir.port(), "GET", "/_control/stats").body);
  BOOST_TEST(stats["rejected"].GetInt() == 0,
             peerRequest(w.fhir.port(), "GET", "/_control/stats").body);
}

BOOST_AUTO_TEST_CASE(queued_sets_arrived_at_the_facility_of_the_key) {
  World w;
  const std::string patient = R"("patientId":"P-1")";
  w.deliver(appointmentEvent("appointmentCreated", "B-7", patient, "2026-03-02T08:00:00Z",
                             "2026-03-02T08:20:00Z"),
            kSouthKey);
  w.deliver(appointmentEvent("Queued", "B-7", patient, "2026-03-02T08:00:00Z",
                             "2026-03-02T08:20:00Z", R"(,"queueNumber":12)"),
            kSouthKey);
  BOOST_TEST(w.count("/Appointment") == 1);
  auto appointments = w.search("/Appointment");
  BOOST_TEST(at(appointments, "/entry/0/resource/status") == "arrived");
  BOOST_TEST(at(appointments, "/entry/0/resource/comment") == "Queue number 12");
  BOOST_TEST(at(appointments, "/entry/0/resource/participant/1/actor/identifier/value") ==
             "south-campus");
  BOOST_TEST(w.count("/Patient") == 1);
}

BOOST_AUTO_TEST_CASE(wrong_keys_store_nothing_and_bad_bodies_are_kept_and_not_sent) {
  World w;
  const std::string body = appointmentEvent("appointmentCreated", "C-1", R"("patientId":"P-2")",
                                            "2026-03-02T08:00:00Z", "2026-03-02T08:20:00Z");
  BOOST_TEST(w.post(body, "not-a-key-of-any-facility").status == 401);
  BOOST_TEST(http(w.engine->port(), "POST", "/webhooks/scheduling", body,
                  {{"Content-Type", "application/json"}})
                 .status == 401);
  BOOST_TEST(w.messageCount() == 0);

  auto bad = w.post(R"({"event":"appointmentCreated","patientId":"P-2"})");
  BOOST_TEST(bad.status == 422);
  BOOST_TEST(bad.body.find("/appointmentId") != std::string::npos, bad.body);
  BOOST_TEST(w.post("{not json").status == 400);
  BOOST_TEST(w.messageCount() == 2);  // both recorded, as rejected messages
  BOOST_TEST(w.count("/Appointment") == 0);
  BOOST_TEST(w.count("/Patient") == 0);
}
