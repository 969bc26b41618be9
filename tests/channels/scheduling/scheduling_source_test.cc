// The scheduling-system source: per-facility API keys (header and Bearer, constant-time lookup),
// every event in both spellings, bad input answered 400/422 and kept as a rejected message,
// idempotency keys, and config (keys from environment variables and files only).
#define BOOST_TEST_MODULE channel_scheduling_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "channels/scheduling/register.h"
#include "channels/scheduling/scheduling_source.h"
#include "tests/support/source_tests.h"

namespace core = switchboard::core;
namespace sched = switchboard::channels::scheduling;
using Kind = core::SourceVerdict::Kind;

namespace {

constexpr const char* kNorthKey = "north-key-0123456789abcdef";
constexpr const char* kSouthKey = "south-key-fedcba9876543210";

std::filesystem::path tempFile(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() /
           ("sched-test-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

switchboard::Result<std::unique_ptr<core::HttpSource>> tryCreate(const std::string& json) {
  return switchboard::testing::createSource(switchboard::channels::registerSchedulingConnectors,
                                            "scheduling", "scheduling", json);
}

std::unique_ptr<core::HttpSource> makeSource(std::size_t maxBody = 65536) {
  ::setenv("SCHED_TEST_NORTH_KEY", kNorthKey, 1);
  const auto south = tempFile("south", std::string(kSouthKey) + "\n");
  auto r =
      tryCreate(R"({"path":"/webhooks/scheduling","max_body_bytes":)" + std::to_string(maxBody) +
                R"(,"keys":[{"facility":"north-campus","key_env":"SCHED_TEST_NORTH_KEY"},)"
                R"({"facility":"south-campus","key_file":")" +
                south.string() + R"("}]})");
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error().message));
  return std::move(*r);
}

core::HttpRequest post(std::string body, const char* header = "X-API-Key",
                       const char* value = kNorthKey) {
  core::HttpRequest r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "engine.example.org";
  r.path = "/webhooks/scheduling";
  r.headers.push_back({"Content-Type", "application/json"});
  if (header != nullptr) r.headers.push_back({header, value});
  r.body = std::move(body);
  return r;
}

std::string meta(const core::InboundMessage& m, const char* key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

core::InboundMessage only(const core::SourceVerdict& v) {
  BOOST_REQUIRE_MESSAGE(v.kind == Kind::kAccept, v.reply.body);
  BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
  return v.messages.front();
}

const char* kCreatedCamel =
    R"({"event":"appointmentCreated","appointmentId":"A-100","patientId":"P-7","status":"SCHEDULED",)"
    R"("name":"Maria Santos","DoB":"1985-04-12","phone":"+63 917 555 0101","email":"m@example.org",)"
    R"("start":"2026-03-02T09:30:00+08:00","timestamp":"2026-03-01T10:00:00Z"})";
const char* kCreatedSnake =
    R"({"action":"scheduled","appointment_id":"A-100","patient_id":"P-7","status":"SCHEDULED",)"
    R"("name":"Maria Santos","DoB":"1985-04-12","phone":"+63 917 555 0101","email":"m@example.org",)"
    R"("start_time":"2026-03-02T09:30:00+08:00","timestamp":"2026-03-01T10:00:00Z"})";

}  // namespace

BOOST_AUTO_TEST_SUITE(auth)

BOOST_AUTO_TEST_CASE(right_key_names_its_facility) {
  auto source = makeSource();
  auto north = only(source->handle(post(kCreatedCamel)));
  BOOST_TEST(meta(north, "facility") == "north-campus");
  auto south = only(source->handle(post(kCreatedCamel, "X-API-Key", kSouthKey)));
  BOOST_TEST(meta(south, "facility") == "south-campus");
  // The same event from another facility is another message.
  BOOST_TEST(north.idempotencyKey != south.idempotencyKey);
}

BOOST_AUTO_TEST_CASE(bearer_authorization_is_accepted_too) {
  auto source = makeSource();
  const std::string bearer = std::string("Bearer ") + kSouthKey;
  auto m = only(source->handle(post(kCreatedCamel, "Authorization", bearer.c_str())));
  BOOST_TEST(meta(m, "facility") == "south-campus");
  auto v = source->handle(post(kCreatedCamel, "Authorization", kSouthKey));  // no "Bearer "
  BOOST_TEST((v.kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(wrong_and_missing_keys_are_refused_with_nothing_stored) {
  auto source = makeSource();
  for (const char* key : {"north-key-0123456789abcdeX", "", "north-key-0123456789abcdef ",
                          "north-key-0123456789abcde"}) {
    auto v = source->handle(post(kCreatedCamel, "X-API-Key", key));
    BOOST_TEST((v.kind == Kind::kRefuse), key);
    BOOST_TEST(v.reply.status == 401);
    BOOST_TEST(v.messages.empty());
    BOOST_TEST(v.auditReason.find(kNorthKey) == std::string::npos);
  }
  auto missing = source->handle(post(kCreatedCamel, nullptr));
  BOOST_TEST((missing.kind == Kind::kRefuse));
  BOOST_TEST(missing.reply.status == 401);
  BOOST_TEST(missing.auditReason == "api key missing");
  // Another header than the configured one is not read.
  auto other = source->handle(post(kCreatedCamel, "X-Api-Token", kNorthKey));
  BOOST_TEST((other.kind == Kind::kRefuse));
  // Authentication comes before the body is read: garbage from a stranger stores nothing.
  auto garbage = source->handle(post("{not json", "X-API-Key", "nope"));
  BOOST_TEST((garbage.kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(header_name_is_configurable_and_case_insensitive) {
  ::setenv("SCHED_TEST_NORTH_KEY", kNorthKey, 1);
  auto r = tryCreate(
      R"({"path":"/s","header":"X-Facility-Key","keys":[{"facility":"north","key_env":"SCHED_TEST_NORTH_KEY"}]})");
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(
      ((*r)->handle(post(kCreatedCamel, "x-facility-key", kNorthKey)).kind == Kind::kAccept));
  BOOST_TEST(((*r)->handle(post(kCreatedCamel, "X-API-Key", kNorthKey)).kind == Kind::kRefuse));
}

BOOST_AUTO_TEST_CASE(only_post_is_served) {
  auto source = makeSource();
  auto request = post("");
  request.method = "GET";
  auto v = source->handle(request);
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 405);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(events)

BOOST_AUTO_TEST_CASE(created_in_both_spellings_reads_the_same) {
  auto source = makeSource();
  auto camel = only(source->handle(post(kCreatedCamel)));
  auto snake = only(source->handle(post(kCreatedSnake)));
  for (const auto* m : {&camel, &snake}) {
    BOOST_TEST(meta(*m, "event") == "appointmentCreated");
    BOOST_TEST(meta(*m, "kind") == "appointment");
    BOOST_TEST(meta(*m, "status") == "SCHEDULED");
    BOOST_TEST(meta(*m, "appointment_id") == "A-100");
    BOOST_TEST(meta(*m, "provider") == "scheduling");
    BOOST_TEST(meta(*m, "sender") == "+639175550101");
    BOOST_TEST(meta(*m, "sender_raw") == "+63 917 555 0101");
    BOOST_TEST(m->contentType == "application/json");
  }
  BOOST_TEST(camel.body == kCreatedCamel);  // the raw body is what is stored
  // Same event, same timestamp: the same key whichever spelling carried it.
  BOOST_TEST(camel.idempotencyKey == snake.idempotencyKey);
  BOOST_TEST(
      camel.idempotencyKey ==
      "scheduling:north-campus:appointmentCreated:A-100:SCHEDULED:t=2026-03-01T10%3A00%3A00Z");
}

BOOST_AUTO_TEST_CASE(each_event_and_action_maps_to_its_event_and_default_status) {
  struct Case {
    const char* body;
    const char* event;
    const char* status;
  };
  const Case cases[] = {
      {R"({"event":"appointmentRescheduled","appointmentId":"A1","patientId":"P1"})",
       "appointmentRescheduled", "RESCHEDULED"},
      {R"({"action":"rescheduled","appointment_id":"A1","patient_id":"P1"})",
       "appointmentRescheduled", "RESCHEDULED"},
      {R"({"event":"appointmentCanceled","appointmentId":"A1","patientId":"P1"})",
       "appointmentCanceled", "CANCELED"},
      {R"({"action":"cancelled","appointment_id":"A1","patient_id":"P1"})", "appointmentCanceled",
       "CANCELED"},
      {R"({"event":"appointment_cancelled","appointment_id":"A1","temporaryPatientId":"T1"})",
       "appointmentCanceled", "CANCELED"},
      {R"({"event":"Queued","appointmentId":"A1","patientId":"P1","queueNumber":12})", "Queued",
       "SHOW"},
      {R"({"action":"queued","appointment_id":"A1","patient_id":"P1","queue_number":"B-12"})",
       "Queued", "SHOW"},
      {R"({"event":"appointmentCreated","appointmentId":42,"patientId":7,"status":"no_show"})",
       "appointmentCreated", "NO SHOW"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"Confirmed"})",
       "appointmentCreated", "CONFIRMED"},
      {R"({"event":"APPOINTMENTCREATED","action":"scheduled","appointmentId":"A1","patientId":"P1","status":"NO SHOW"})",
       "appointmentCreated", "NO SHOW"},
  };
  auto source = makeSource();
  for (const auto& c : cases) {
    auto v = source->handle(post(c.body));
    BOOST_TEST_CONTEXT(c.body) {
      auto m = only(v);
      BOOST_TEST(meta(m, "event") == c.event);
      BOOST_TEST(meta(m, "status") == c.status);
      BOOST_TEST(meta(m, "kind") == "appointment");
    }
  }
}

BOOST_AUTO_TEST_CASE(patient_created_in_both_spellings) {
  auto source = makeSource();
  auto camel = only(source->handle(
      post(R"({"event":"patientCreated","patientId":"P-900","temporaryPatientId":"TMP-5"})")));
  auto snake = only(source->handle(
      post(R"({"event":"patient_created","patient_id":"P-900","temporary_patient_id":"TMP-5"})")));
  for (const auto* m : {&camel, &snake}) {
    BOOST_TEST(meta(*m, "kind") == "patient");
    BOOST_TEST(meta(*m, "event") == "patientCreated");
    BOOST_TEST(meta(*m, "status") == "<absent>");
    BOOST_TEST(meta(*m, "sender") == "<absent>");
  }
  BOOST_TEST(camel.idempotencyKey.starts_with(
      "scheduling:north-campus:patientCreated:TMP-5>P-900::sha256="));
  // No timestamp: the body's hash tells redeliveries (same bytes) from other events.
  BOOST_TEST(camel.idempotencyKey != snake.idempotencyKey);
}

BOOST_AUTO_TEST_CASE(unicode_names_and_hostile_strings_are_kept_verbatim) {
  auto source = makeSource();
  const std::string body =
      R"({"event":"appointmentCreated","appointmentId":"A|1,2&x=%3C","patientId":"P'1\" OR 1=1","name":"Zoë Ñúñez 王小明 <script>{{ %sender }}</script>","email":"x@y","phone":"not a phone"})";
  auto m = only(source->handle(post(body)));
  BOOST_TEST(m.body == body);
  BOOST_TEST(meta(m, "appointment_id") == "A|1,2&x=%3C");
  BOOST_TEST(meta(m, "sender") == "");  // not a phone number: no E.164
  BOOST_TEST(meta(m, "sender_raw") == "not a phone");
  // ':' inside an id is escaped, so ids cannot forge another key's parts.
  auto a = only(source->handle(post(
      R"({"event":"appointmentCreated","appointmentId":"A:SCHEDULED","patientId":"P","timestamp":"1"})")));
  BOOST_TEST(a.idempotencyKey ==
             "scheduling:north-campus:appointmentCreated:A%3ASCHEDULED:SCHEDULED:t=1");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

struct Bad {
  const char* body;
  int status;
  const char* code;  // OperationOutcome issue code
  const char* location;
};

BOOST_AUTO_TEST_CASE(bad_bodies_are_rejected_and_kept) {
  const Bad cases[] = {
      {R"({"event":"appointmentCreated",)", 400, "structure", ""},
      {R"([1,2])", 400, "structure", ""},
      {"{\"event\":\"appointmentCreated\",\"name\":\"\xff\xfe\"}", 400, "structure", ""},
      {R"({"appointmentId":"A1","patientId":"P1"})", 422, "required", "/event"},
      {R"({"event":"appointmentMoved","appointmentId":"A1","patientId":"P1"})", 422, "code-invalid",
       "/event"},
      {R"({"action":"booked","appointmentId":"A1","patientId":"P1"})", 422, "code-invalid",
       "/action"},
      {R"({"event":"appointmentCreated","action":"cancelled","appointmentId":"A1","patientId":"P1"})",
       422, "value", "/action"},
      {R"({"event":"appointmentCreated","patientId":"P1"})", 422, "required", "/appointmentId"},
      {R"({"event":"Queued","appointment_id":"","patientId":"P1"})", 422, "value",
       "/appointment_id"},
      {R"({"event":"appointmentCreated","appointmentId":{"id":1},"patientId":"P1"})", 422, "value",
       "/appointmentId"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","appointment_id":"A2","patientId":"P1"})",
       422, "value", "/appointment_id"},
      {R"({"event":"appointmentCreated","appointmentId":"A1"})", 422, "required", "/patientId"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"BOOKED"})",
       422, "code-invalid", "/status"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","DoB":"12/04/1985"})",
       422, "value", "/DoB"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","start":"2026-03-02 09:30"})",
       422, "value", "/start"},
      {R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","name":["a"]})", 422,
       "value", "/name"},
      {R"({"event":"appointmentCreated","appointmentId":"A\u0000B","patientId":"P1"})", 422,
       "value", "/appointmentId"},
      {R"({"event":"patientCreated","patientId":"P1"})", 422, "required", "/temporaryPatientId"},
      {R"({"event":"patientCreated","temporaryPatientId":"T1"})", 422, "required", "/patientId"},
      {R"({"event":"patientCreated","patientId":"T1","temporaryPatientId":"T1"})", 422, "value",
       "/patientId"},
  };
  auto source = makeSource();
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.body) {
      auto v = source->handle(post(c.body));
      BOOST_REQUIRE((v.kind == Kind::kReject));
      BOOST_TEST(v.reply.status == c.status);
      BOOST_TEST(v.reply.contentType == "application/fhir+json");
      BOOST_TEST(v.reply.body.find("\"OperationOutcome\"") != std::string::npos);
      BOOST_TEST(std::string(switchboard::issueTypeCode(v.error.code)) == c.code);
      BOOST_TEST(v.error.location == c.location);
      BOOST_REQUIRE_EQUAL(v.messages.size(), 1u);
      BOOST_TEST(v.messages[0].body == c.body);  // the raw body is recorded
      BOOST_TEST(meta(v.messages[0], "facility") == "north-campus");
      BOOST_TEST(meta(v.messages[0], "kind") == "other");
    }
  }
}

BOOST_AUTO_TEST_CASE(error_messages_carry_no_payload_values) {
  auto source = makeSource();
  auto v = source->handle(post(
      R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","DoB":"Maria-secret"})"));
  BOOST_REQUIRE((v.kind == Kind::kReject));
  BOOST_TEST(v.reply.body.find("Maria-secret") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(oversized_body_is_answered_413) {
  auto source = makeSource(256);
  std::string body =
      R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","name":")" +
      std::string(300, 'x') + "\"}";
  auto v = source->handle(post(body));
  BOOST_TEST((v.kind == Kind::kRespond));
  BOOST_TEST(v.reply.status == 413);
  BOOST_TEST(v.reply.body.find("too-long") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(idempotency)

BOOST_AUTO_TEST_CASE(redelivery_is_a_duplicate_and_a_status_change_is_not) {
  auto source = makeSource();
  const std::string created =
      R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1"})";
  auto first = only(source->handle(post(created)));
  auto again = only(source->handle(post(created)));
  BOOST_TEST(first.idempotencyKey == again.idempotencyKey);
  auto confirmed = only(source->handle(post(
      R"({"event":"appointmentCreated","appointmentId":"A1","patientId":"P1","status":"CONFIRMED"})")));
  BOOST_TEST(confirmed.idempotencyKey != first.idempotencyKey);
  auto rescheduled = only(source->handle(
      post(R"({"event":"appointmentRescheduled","appointmentId":"A1","patientId":"P1"})")));
  BOOST_TEST(rescheduled.idempotencyKey != first.idempotencyKey);
  // A second reschedule of the same appointment (another time) is a new message too.
  auto later = only(source->handle(post(
      R"({"event":"appointmentRescheduled","appointmentId":"A1","patientId":"P1","start":"2026-03-05T10:00:00Z","end":"2026-03-05T10:30:00Z"})")));
  BOOST_TEST(later.idempotencyKey != rescheduled.idempotencyKey);
}

BOOST_AUTO_TEST_CASE(a_timestamp_decides_over_the_bytes) {
  auto source = makeSource();
  auto a = only(source->handle(post(
      R"({"event":"Queued","appointmentId":"A1","patientId":"P1","queueNumber":5,"timestamp":1772400000})")));
  // The same event re-serialised by the provider (another order, spaces) with the same timestamp.
  auto b = only(source->handle(post(
      R"({ "timestamp": 1772400000, "queue_number": 5, "patient_id": "P1", "appointment_id": "A1", "action": "queued" })")));
  BOOST_TEST(a.idempotencyKey == b.idempotencyKey);
  auto c = only(source->handle(post(
      R"({"event":"Queued","appointmentId":"A1","patientId":"P1","queueNumber":5,"timestamp":1772400999})")));
  BOOST_TEST(c.idempotencyKey != a.idempotencyKey);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(keys_file_lines_name_facilities) {
  const auto file = tempFile("keys", std::string("# facility key\n\nnorth-campus ") + kNorthKey +
                                         "\r\nsouth-campus\t" + kSouthKey + "\n");
  auto r = tryCreate(R"({"path":"/s","keys_file":")" + file.string() + R"("})");
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r.has_value() ? std::string() : r.error().message));
  BOOST_TEST(meta(only((*r)->handle(post(kCreatedCamel, "X-API-Key", kSouthKey))), "facility") ==
             "south-campus");
}

BOOST_AUTO_TEST_CASE(bad_config_is_refused_at_deploy) {
  ::setenv("SCHED_TEST_NORTH_KEY", kNorthKey, 1);
  ::setenv("SCHED_TEST_SHORT_KEY", "short", 1);
  ::setenv("SCHED_TEST_SAME_KEY", kNorthKey, 1);
  ::unsetenv("SCHED_TEST_UNSET_KEY");
  const std::string cases[] = {
      R"({"path":"/s"})",  // no key at all
      R"({"path":"/s","keys":[{"facility":"n","key":"literal-key-in-config-text"}]})",  // literal
      R"({"path":"/s","keys":[{"facility":"n","key_env":"SCHED_TEST_UNSET_KEY"}]})",
      R"({"path":"/s","keys":[{"facility":"n","key_env":"SCHED_TEST_SHORT_KEY"}]})",
      R"({"path":"/s","keys":[{"facility":"n","key_file":"/nonexistent/key"}]})",
      R"({"path":"/s","keys":[{"facility":"n","key_env":"SCHED_TEST_NORTH_KEY","key_file":"/x"}]})",
      R"({"path":"/s","keys":[{"facility":"bad id!","key_env":"SCHED_TEST_NORTH_KEY"}]})",
      R"({"path":"/s","keys":[{"facility":"a","key_env":"SCHED_TEST_NORTH_KEY"},{"facility":"b","key_env":"SCHED_TEST_SAME_KEY"}]})",
      R"({"path":"s","keys":[{"facility":"a","key_env":"SCHED_TEST_NORTH_KEY"}]})",
      R"({"path":"/s","keys_file":"/nonexistent/keys"})",
      R"({"path":"/s","header":"authorization","keys":[{"facility":"a","key_env":"SCHED_TEST_NORTH_KEY"}]})",
      R"({"path":"/s","keys":[{"facility":"a","key_env":"SCHED_TEST_NORTH_KEY"}],"secret":"x"})",
  };
  for (const auto& c : cases) {
    auto r = tryCreate(c);
    BOOST_TEST(!r.has_value(), c);
    if (!r.has_value()) BOOST_TEST(r.error().message.find(kNorthKey) == std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
