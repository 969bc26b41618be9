// A delivery pass with several deliveries to one FHIR destination over plain http: the engine
// hands them to the destination at once (Destination::sendMany), the destination's exchanges
// overlap, and each delivery's attempt is recorded from its own answer (ok, 503 retry with
// Retry-After, 400 permanent failure), with a real SQLite store and a fake clock.
#define BOOST_TEST_MODULE delivery_batch
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "engine/app/builtin_connectors.h"
#include "engine/runtime/engine.h"
#include "tests/channels/http/raw_server.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
using namespace std::chrono_literals;

namespace {

// The EHR: holds every answer until `expected` requests wait at once (a runner sending one at a
// time would never get there, and its answers say so with a 500), then answers by the resource id
// in the body: "busy" 503 with Retry-After, "bad" 400 with an OperationOutcome, else 201.
struct Ehr {
  explicit Ehr(int expected) : expected(expected) {}
  const int expected;
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  testing::RawServer server{[this](int fd, testing::RawServer& s) {
    std::string pending;
    while (auto request = testing::readRequest(fd, pending)) {
      s.record(*request);
      bool together;
      {
        std::unique_lock<std::mutex> lock(mutex);
        ++arrived;
        changed.notify_all();
        together = changed.wait_for(lock, 5s, [&] { return arrived >= expected; });
      }
      const std::string body = testing::bodyOf(*request);
      std::string response;
      if (!together) {
        response = "HTTP/1.1 500 Alone\r\nContent-Length: 0\r\n\r\n";
      } else if (body.find("\"busy\"") != std::string::npos) {
        response = "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n";
      } else if (body.find("\"bad\"") != std::string::npos) {
        const std::string outcome =
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"no name"}]})";
        response =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/fhir+json\r\nContent-Length: " +
            std::to_string(outcome.size()) + "\r\n\r\n" + outcome;
      } else {
        response =
            "HTTP/1.1 201 Created\r\nLocation: Patient/1/_history/1\r\nContent-Length: 0\r\n\r\n";
      }
      testing::writeAll(fd, response);
    }
  }};
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_pass_sends_its_deliveries_to_one_destination_at_once_and_records_each) {
  Ehr ehr(4);
  auto clock = std::make_shared<core::FakeClock>();
  testing::TestEngine test(
      {.name = "delivery-batch",
       .channelFile = "b.json",
       .channelJson =
           R"({"id": "b", "source": {"type": "http", "path": "/in/b", "idempotency_pointer": "/id"},
      "destinations": [{"name": "ehr", "type": "fhir", "base_url": ")" +
           ehr.server.url("") + R"(", "timeout_ms": 10000}],
      "retry": {"max_attempts": 3, "initial_backoff_ms": 1000, "max_backoff_ms": 60000, "jitter": 0}})",
       .registerConnectors = [](core::ConnectorRegistry& r) { app::registerBuiltinConnectors(r); },
       .configure = [](runtime::EngineConfig& c) { c.nodeId = "test"; },
       .clock = clock,
       .builtins = false});
  runtime::Engine& engine = test.engine();
  std::map<std::string, std::int64_t> ids;
  for (const char* id : {"ok1", "busy", "ok2", "bad"}) {
    core::HttpRequest r;
    r.method = "POST";
    r.path = "/in/b";
    r.body = std::string(R"({"resourceType": "Patient", "id": ")") + id + "\"}";
    r.headers.push_back({"Content-Type", "application/json"});
    const core::HttpResponse response = engine.handle(r);
    BOOST_REQUIRE(response.status == 200);
    for (const auto& h : response.headers) {
      if (h.name == "X-Switchboard-Message-Ids") ids[id] = std::stoll(h.value);
    }
  }
  BOOST_REQUIRE(engine.runPipelineOnce("w") == 4);
  const core::Millis before = clock->nowMs();
  BOOST_TEST(engine.runDeliveriesOnce("w") == 4);
  BOOST_TEST(ehr.server.requests().size() == 4u);
  for (const auto& request : ehr.server.requests())
    BOOST_TEST(request.starts_with("POST /Patient HTTP/1.1\r\n"));

  auto delivery = [&](const char* id) {
    auto detail = engine.store().getMessage(ids.at(id));
    BOOST_REQUIRE(detail.has_value());
    BOOST_REQUIRE(detail->deliveries.size() == 1u);
    return detail->deliveries[0];
  };
  for (const char* id : {"ok1", "ok2"}) {
    const auto d = delivery(id);
    BOOST_TEST(d.delivery.status == "succeeded", id);
    BOOST_REQUIRE(d.attempts.size() == 1u);
    BOOST_TEST(d.attempts[0].statusCode == 201);
    BOOST_TEST(d.attempts[0].outcome == "ok");
    BOOST_TEST(d.attempts[0].response.find("Patient/1/_history/1") != std::string::npos);
  }
  const auto busy = delivery("busy");
  BOOST_TEST(busy.delivery.status == "pending");
  BOOST_TEST(busy.delivery.nextAttemptAtMs == before + 7000);  // Retry-After, not the 1 s backoff
  BOOST_REQUIRE(busy.attempts.size() == 1u);
  BOOST_TEST(busy.attempts[0].statusCode == 503);
  BOOST_TEST(busy.attempts[0].outcome == "retry");
  const auto bad = delivery("bad");
  BOOST_TEST(bad.delivery.status == "dead");
  BOOST_TEST(bad.delivery.deadReason == "permanent");
  BOOST_REQUIRE(bad.attempts.size() == 1u);
  BOOST_TEST(bad.attempts[0].statusCode == 400);
  BOOST_TEST(bad.attempts[0].response.find("no name") != std::string::npos);

  // The retried one alone goes again once due (the barrier no longer holds anything back).
  BOOST_TEST(engine.runDeliveriesOnce("w") == 0);
  clock->advance(7000);
  BOOST_TEST(engine.runDeliveriesOnce("w") == 1);
  BOOST_TEST(ehr.server.requests().size() == 5u);
  BOOST_TEST(delivery("busy").delivery.status == "pending");  // still 503
  BOOST_TEST(delivery("busy").attempts.size() == 2u);
}
