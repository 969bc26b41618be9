// What the FHIR destination reads from the payload (routePayload) and keeps of the EHR's answer
// (summariseSuccess, summariseFailure, and send()/sendMany() results against a byte-exact
// loopback EHR): the exact texts, for JSON the thread's arena reader takes and for JSON it
// leaves to RapidJSON (escapes, decimals, a BOM, blanks), and with the arena held elsewhere.
#include <boost/test/unit_test.hpp>

#include <optional>
#include <string>
#include <vector>

#include "channels/fhir/fhir_destination.h"
#include "channels/fhir/json_read.h"
#include "engine/fhir/json_arena.h"
#include "tests/channels/http/raw_server.h"

using namespace switchboard;
using namespace switchboard::channels::fhir;
using switchboard::testing::RawServer;

namespace {

// The transaction-response bench/e2e's sink gives (Medplum's for new resources), cut to two
// entries: each entry's resource with an id and meta, then its response.
const std::string kSinkResponse =
    R"({"resourceType":"Bundle","type":"transaction-response","entry":[)"
    R"({"resource":{"resourceType":"Patient","name":[{"family":"Chen","given":["Emily"]}],)"
    R"("id":"0b6f3c2e-0001","meta":{"versionId":"1","lastUpdated":"2026-12-02T17:00:00.000Z"}},)"
    R"("response":{"status":"201 Created","location":"Patient/0b6f3c2e-0001/_history/1",)"
    R"("etag":"W/\"1\"","lastModified":"2026-12-02T17:00:00.000Z"}},)"
    R"({"resource":{"resourceType":"Appointment","status":"booked","minutesDuration":30,)"
    R"("id":"0b6f3c2e-0002","meta":{"versionId":"1","lastUpdated":"2026-12-02T17:00:00.000Z"}},)"
    R"("response":{"status":"201 Created","location":"Appointment/0b6f3c2e-0002/_history/1",)"
    R"("etag":"W/\"1\"","lastModified":"2026-12-02T17:00:00.000Z"}}]})";
const std::string kSinkSummary =
    R"({"entry":[{"status":"201 Created","location":"Patient/0b6f3c2e-0001/_history/1",)"
    R"("etag":"W/\"1\""},{"status":"201 Created","location":)"
    R"("Appointment/0b6f3c2e-0002/_history/1","etag":"W/\"1\""}]})";

const std::string kOutcome =
    R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)"
    R"("details":{"text":"Missing required property"},"expression":["Bundle.entry[1].resource.end"]},)"
    R"({"severity":"error","code":"invariant","diagnostics":"app-3: Only proposed or cancelled )"
    R"(appointments can be missing start/end dates","location":["Bundle.entry[1].resource"]}]})";
const std::string kOutcomeSummary =
    R"({"status":400,"issues":[{"severity":"error","code":"invalid","details":)"
    R"("Missing required property","expression":["Bundle.entry[1].resource.end"]},)"
    R"({"severity":"error","code":"invariant","diagnostics":"app-3: Only proposed or cancelled )"
    R"(appointments can be missing start/end dates","expression":["Bundle.entry[1].resource"]}]})";

const std::string kTransaction =
    R"({"resourceType":"Bundle","type":"transaction","entry":[)"
    R"({"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},)"
    R"("request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}},)"
    R"({"resource":{"resourceType":"Appointment","id":"9"},"request":{"method":"PUT","url":"Appointment/9"}}]})";

// Runs `check` as is (the arena reader where it applies) and with the thread's arena held, so
// that every text goes through RapidJSON: both must give the same answers.
template <typename F>
void bothWays(F&& check) {
  check();
  auto held = fhir::ArenaDocument::read("{}");
  BOOST_REQUIRE(held.has_value());
  check();
}

std::string route(std::string_view payload) {
  const auto r = routePayload(payload);
  if (!r) return "none";
  return r->type + (r->toBase ? " base" : " type") + (r->repeatable ? " repeatable" : "");
}

}  // namespace

BOOST_AUTO_TEST_CASE(payload_route_type_base_and_repeatability) {
  bothWays([] {
    BOOST_TEST(route(kTransaction) == "Bundle base repeatable");
    std::string batch = kTransaction;
    batch.replace(batch.find("transaction"), 11, "batch");
    BOOST_TEST(route(batch) == "Bundle base repeatable");
    std::string plainPost = kTransaction;
    const std::string conditional = R"(,"ifNoneExist":"identifier=a|b")";
    plainPost.erase(plainPost.find(conditional), conditional.size());
    BOOST_TEST(route(plainPost) == "Bundle base");
    BOOST_TEST(route(R"({"resourceType":"Bundle","type":"collection","entry":[]})") ==
               "Bundle type");
    BOOST_TEST(route(R"({"resourceType":"Patient","id":"1","active":true})") == "Patient type");
    // The first of two resourceType members counts, and escapes are read.
    BOOST_TEST(route(R"({"resourceType":"Patient","resourceType":"Bundle"})") == "Patient type");
    BOOST_TEST(route(R"({"resourceType":"Bundl\u0065","type":"b\u0061tch","entry":[)"
                     R"({"request":{"method":"GET","url":"Patient/1"}}]})") ==
               "Bundle base repeatable");
    BOOST_TEST(route(R"({"resourceType":"Observation","valueQuantity":{"value":1.5e0}})") ==
               "Observation type");
    // Blanks and a byte order mark before the object are skipped as RapidJSON skips them ...
    BOOST_TEST(route(" \r\n\t" + kTransaction) == "Bundle base repeatable");
    BOOST_TEST(route("\xEF\xBB\xBF" + kTransaction) == "Bundle base repeatable");
    BOOST_TEST(route(kTransaction + "\n ") == "Bundle base repeatable");
    // ... and nothing else is a resource.
    BOOST_TEST(route("\f" + kTransaction) == "none");
    BOOST_TEST(route("\v" + kTransaction) == "none");
    BOOST_TEST(route(kTransaction + "x") == "none");
    BOOST_TEST(route(R"({"resourceType":"Patient",})") == "none");
    BOOST_TEST(route(R"({"resourceType":"Patient","n":01})") == "none");
    BOOST_TEST(route(R"({"resourceType":"Pati)"
                     "\x01"
                     R"(ent"})") == "none");
    BOOST_TEST(route(R"([{"resourceType":"Patient"}])") == "none");
    BOOST_TEST(route(R"({"resourceType":7})") == "none");
    BOOST_TEST(route("") == "none");
    BOOST_TEST(route("<Patient/>") == "none");
  });
}

BOOST_AUTO_TEST_CASE(success_summaries_keep_each_entrys_status_location_and_etag) {
  bothWays([] {
    BOOST_TEST(summariseSuccess(200, kSinkResponse, "") == kSinkSummary);
    BOOST_TEST(summariseSuccess(200, "\xEF\xBB\xBF " + kSinkResponse, "") == kSinkSummary);
    // Only the first of repeated members counts, and only when it is a string; entries that are
    // not objects, or have no response object, keep their place as {}.
    BOOST_TEST(summariseSuccess(200,
                                R"({"entry":[{"response":{"status":201,"status":"201 Created",)"
                                R"("location":"Patient/1","location":"Patient/2"}},7,{},)"
                                R"({"response":[]}],"resourceType":"Bundle","entry":[]})",
                                "") == R"({"entry":[{"location":"Patient/1"},{},{},{}]})");
    BOOST_TEST(
        summariseSuccess(200,
                         R"({"resourceType":"Bundle","entry":[{"response":{"location":)"
                         R"("Patient/\u00e9\"1\"","status":"200 OK","lastModified":1.25}}]})",
                         "") ==
        "{\"entry\":[{\"status\":\"200 OK\",\"location\":\"Patient/"
        "\xC3\xA9\\\"1\\\"\"}]}");
    // Another resource, no entries, or no JSON: the status and the Location header.
    BOOST_TEST(summariseSuccess(201, R"({"resourceType":"Patient","id":"5"})",
                                "https://ehr/fhir/Patient/5/_history/1") ==
               R"({"status":201,"location":"https://ehr/fhir/Patient/5/_history/1"})");
    BOOST_TEST(summariseSuccess(200, R"({"resourceType":"Bundle","type":"batch-response"})", "") ==
               R"({"status":200})");
    BOOST_TEST(summariseSuccess(200, "\f" + kSinkResponse, "") == R"({"status":200})");
    BOOST_TEST(summariseSuccess(204, "", "") == R"({"status":204})");
    BOOST_TEST(summariseSuccess(200, kSinkResponse.substr(0, 300), "") == R"({"status":200})");
  });
}

BOOST_AUTO_TEST_CASE(failure_summaries_keep_the_servers_issues) {
  bothWays([] {
    BOOST_TEST(summariseFailure(400, kOutcome) == kOutcomeSummary);
    BOOST_TEST(
        summariseFailure(422, R"({"resourceType":"OperationOutcome","issue":[7,)"
                              R"({"severity":"fatal","code":"processing","expression":[1,"A.b"],)"
                              R"("details":{"text":7},"location":["x"]}]})") ==
        R"({"status":422,"issues":[{"severity":"fatal","code":"processing","expression":["A.b"]}]})");
    std::string many = R"({"issue":[)";
    for (int i = 0; i < 60; ++i)
      many += std::string(i ? "," : "") + R"({"code":"c)" + std::to_string(i) + R"("})";
    many += "]}";
    const std::string summary = summariseFailure(400, many);
    BOOST_TEST(summary.find(R"({"code":"c49"}]})") != std::string::npos);
    BOOST_TEST(summary.find("c50") == std::string::npos);
    BOOST_TEST(summariseFailure(503, "<html><body>Service Unavailable</body></html>") ==
               R"({"status":503,"body":"<html><body>Service Unavailable</body></html>"})");
    BOOST_TEST(summariseFailure(503, "") == R"({"status":503})");
    BOOST_TEST(summariseFailure(500, R"({"resourceType":"OperationOutcome"})") ==
               R"({"status":500,"body":"{\"resourceType\":\"OperationOutcome\"}"})");
    BOOST_TEST(summariseFailure(400, std::string(600, 'x')) ==
               R"({"status":400,"body":")" + std::string(512, 'x') + R"("})");
  });
}

// The results send() and sendMany() keep, from a loopback EHR answering each POST in turn with a
// transaction-response, a 400 OperationOutcome and a 503 with Retry-After.
BOOST_AUTO_TEST_CASE(results_of_send_and_send_many_from_a_byte_exact_ehr) {
  const std::vector<std::string> answers = {
      testing::okResponse(kSinkResponse, "Content-Type: application/fhir+json\r\n"),
      "HTTP/1.1 400 Bad Request\r\nContent-Type: application/fhir+json\r\nContent-Length: " +
          std::to_string(kOutcome.size()) + "\r\n\r\n" + kOutcome,
      "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 11\r\n\r\nbusy, later",
  };
  auto pick = [&](const std::string& request) {
    // The body names which answer it wants (the payload's Patient id), so order does not matter.
    for (std::size_t i = 0; i < answers.size(); ++i) {
      if (request.find("\"id\":\"answer-" + std::to_string(i) + "\"") != std::string::npos)
        return answers[i];
    }
    return std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  };
  RawServer ehr(testing::answering(pick));
  FhirDestinationConfig c;
  c.baseUrl = ehr.url("/fhir");
  c.timeout = std::chrono::milliseconds(5000);
  static core::SystemClock clock;
  FhirDestination destination(std::move(c), clock);

  std::vector<std::string> payloads;
  for (int i = 0; i < 3; ++i) {
    std::string p = kTransaction;
    p.replace(p.find(R"({"resourceType":"Patient"})"), 26,
              R"({"resourceType":"Patient","id":"answer-)" + std::to_string(i) + R"("})");
    payloads.push_back(p);
  }
  payloads.push_back("not json");
  core::Metadata none;
  std::vector<core::DeliveryRequest> requests(payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    requests[i].deliveryId = static_cast<std::int64_t>(i + 1);
    requests[i].channelId = "test";
    requests[i].payload = payloads[i];
    requests[i].metadata = &none;
  }
  auto check = [&](const core::DeliveryResult& r, std::size_t i) {
    BOOST_TEST_CONTEXT("request " << i) {
      BOOST_TEST(r.repeatable == (i < 3));
      switch (i) {
        case 0:
          BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
          BOOST_TEST(r.responseCode == 200);
          BOOST_TEST(r.response == kSinkSummary);
          break;
        case 1:
          BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kFail));
          BOOST_TEST(r.responseCode == 400);
          BOOST_TEST(r.response == kOutcomeSummary);
          break;
        case 2:
          BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kRetry));
          BOOST_TEST(r.responseCode == 503);
          BOOST_TEST(r.response == R"({"status":503,"body":"busy, later"})");
          BOOST_TEST(r.retryAfter.has_value());
          if (r.retryAfter) BOOST_TEST(r.retryAfter->count() == 7000);
          break;
        default:
          BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kFail));
          BOOST_TEST(r.response ==
                     R"({"status":0,"issues":[{"severity":"error","code":"structure",)"
                     R"("diagnostics":"payload is not a FHIR JSON resource"}]})");
      }
    }
  };
  for (std::size_t i = 0; i < requests.size(); ++i) check(destination.send(requests[i]), i);
  std::vector<const core::DeliveryRequest*> pointers;
  for (const auto& r : requests) pointers.push_back(&r);
  std::vector<core::SentDelivery> sent(requests.size());
  destination.sendMany(pointers, sent);
  for (std::size_t i = 0; i < sent.size(); ++i) check(sent[i].result, i);
  // Every request went to the base URL (a transaction Bundle), none to [base]/[type].
  for (const std::string& request : ehr.requests()) {
    BOOST_TEST(request.starts_with("POST /fhir HTTP/1.1\r\n"));
  }
  BOOST_TEST(ehr.requests().size() == 6u);
}

// Which reader takes which text: the thread's arena for plain JSON objects written from their
// first byte, RapidJSON for the rest, both giving the document's root (null when not JSON).
BOOST_AUTO_TEST_CASE(json_read_uses_the_arena_for_plain_objects_only) {
  {
    const JsonRead plain(kSinkResponse);
    BOOST_TEST(plain.inArena());
    BOOST_REQUIRE(plain.root() != nullptr);
    BOOST_TEST((*plain.root())["entry"].Size() == 2u);
    const JsonRead nested(kTransaction);  // the arena is taken by `plain`
    BOOST_TEST(!nested.inArena());
    BOOST_REQUIRE(nested.root() != nullptr);
    BOOST_TEST(std::string((*nested.root())["type"].GetString()) == "transaction");
  }
  // The arena is free again: text before the '{' (which the two readers skip differently) and
  // what the arena reader declines go to RapidJSON.
  for (const std::string& text :
       {std::string("\xEF\xBB\xBF{}"), std::string(" {}"), std::string(R"({"a":"\u0041"})"),
        std::string(R"({"a":1.5})"), std::string("[1]")}) {
    BOOST_TEST_CONTEXT(text) {
      const JsonRead r(text);
      BOOST_TEST(!r.inArena());
      BOOST_TEST(r.root() != nullptr);
    }
  }
  const JsonRead again(R"({"b":{}})");
  BOOST_TEST(again.inArena());
  BOOST_REQUIRE(again.root() != nullptr);
  BOOST_TEST(again.root()->HasMember("b"));
  BOOST_TEST(!again.root()->HasMember("entry"));
}

BOOST_AUTO_TEST_CASE(json_read_of_text_that_is_no_json) {
  BOOST_TEST(JsonRead("{not json").root() == nullptr);
  BOOST_TEST(JsonRead(R"({"a":1,})").root() == nullptr);
  BOOST_TEST(JsonRead("\f{}").root() == nullptr);
  BOOST_TEST(JsonRead("").root() == nullptr);
}
