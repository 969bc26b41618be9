// The scheduling source inside a running engine on 127.0.0.1 with a real SQLite store: wrong and
// missing keys are answered 401 and audited (without the key) with nothing stored; an event is
// committed byte-exact with its facility; a redelivery adds nothing; a bad body is kept as a
// rejected message.
#define BOOST_TEST_MODULE channel_scheduling_intake_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include "channels/scheduling/register.h"
#include "engine/store/store.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
using testing::HttpReply;

namespace {

constexpr const char* kKey = "east-wing-key-5b0c8e2f7a91";

struct Fixture {
  testing::TestEngine test{[] {
    ::setenv("SB_TEST_SCHEDULING_INTAKE_KEY", kKey, 1);
    return testing::TestEngineOptions{.name = "scheduling-intake",
                                      .channelFile = "scheduling.json",
                                      .channelJson = R"({"id": "sched",
      "source": {"type": "scheduling", "path": "/webhooks/scheduling",
                 "keys": [{"facility": "east-wing", "key_env": "SB_TEST_SCHEDULING_INTAKE_KEY"}]},
      "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})",
                                      .registerConnectors = channels::registerSchedulingConnectors,
                                      .serve = true};
  }()};
  runtime::Engine* engine = &test.engine();

  HttpReply post(const std::string& body, const char* key) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"}};
    if (key != nullptr) headers.emplace_back("X-API-Key", key);
    return testing::httpPost(engine->port(), "/webhooks/scheduling", body, headers);
  }

  std::size_t messageCount() {
    store::MessageQuery q;
    q.channelId = "sched";
    q.limit = 100;
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return list->size();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(events_are_committed_with_their_facility_and_refusals_store_nothing,
                        Fixture) {
  const std::string body =
      R"({"event":"appointmentCreated","appointmentId":"E-1","patientId":"P-1","phone":"(+63) 917.555.0101"})";
  BOOST_TEST(post(body, "east-wing-key-wrong-000000").status == 401);
  BOOST_TEST(post(body, nullptr).status == 401);
  BOOST_TEST(messageCount() == 0u);
  auto audit = engine->store().listAudit(10);
  BOOST_REQUIRE(audit.has_value());
  BOOST_REQUIRE_EQUAL(audit->size(), 2u);
  for (const auto& a : *audit) {
    BOOST_TEST(a.actor == "source:sched");
    BOOST_TEST(a.detail.find("east-wing-key") == std::string::npos);
  }

  HttpReply first = post(body, kKey);
  BOOST_TEST(first.status == 200);
  BOOST_REQUIRE(!first.ids.empty());
  auto detail = engine->store().getMessage(std::stoll(first.ids));
  BOOST_REQUIRE(detail.has_value());
  const core::StoredMessage& m = detail->message;
  BOOST_TEST(m.body == body);
  BOOST_TEST(testing::metadataValue(m, "facility") == "east-wing");
  BOOST_TEST(testing::metadataValue(m, "kind") == "appointment");
  BOOST_TEST(testing::metadataValue(m, "sender") == "+639175550101");
  BOOST_TEST(m.idempotencyKey.starts_with(
      "scheduling:east-wing:appointmentCreated:E-1:SCHEDULED:sha256="));

  HttpReply again = post(body, kKey);
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.ids == first.ids);
  BOOST_TEST(messageCount() == 1u);

  const std::string missingId = R"({"event":"appointmentCanceled","patientId":"P-1"})";
  HttpReply bad = post(missingId, kKey);
  BOOST_TEST(bad.status == 422);
  BOOST_TEST(bad.body.find("/appointmentId") != std::string::npos);
  BOOST_REQUIRE(!bad.ids.empty());
  auto rejected = engine->store().getMessage(std::stoll(bad.ids));
  BOOST_REQUIRE(rejected.has_value());
  BOOST_TEST(rejected->message.status == "rejected");
  BOOST_TEST(rejected->message.body == missingId);
  BOOST_TEST(messageCount() == 2u);
}
