// The 8x8 source inside a running engine on 127.0.0.1 with a real SQLite store: the seed's Flow
// submission is committed byte-exact with its metadata, a redelivery adds nothing, a wrong
// Authorization is answered 401 and audited with nothing stored, malformed JSON is kept as
// rejected, an unknown event type is answered 200 and stores nothing.
#define BOOST_TEST_MODULE channel_8x8_intake_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include "channels/8x8/register.h"
#include "engine/store/store.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
using testing::HttpReply;

namespace {

std::string dataFile(const std::string& name) { return testing::readTestData("8x8", name); }

struct Fixture {
  testing::TestEngine test{[] {
    ::setenv("SB_TEST_8X8_INTAKE_AUTH", "Bearer 9QQhlsEb8VY", 1);
    return testing::TestEngineOptions{
        .name = "8x8-intake",
        .channelFile = "8x8.json",
        .channelJson = R"({"id": "wa-8x8",
      "source": {"type": "8x8", "path": "/webhooks/8x8", "authorization": "${env:SB_TEST_8X8_INTAKE_AUTH}"},
      "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})",
        .registerConnectors = channels::registerEightByEightConnectors,
        .serve = true};
  }()};
  runtime::Engine* engine = &test.engine();

  HttpReply post(const std::string& body, const char* authorization) {
    std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
    if (authorization != nullptr) headers.emplace_back("Authorization", authorization);
    return testing::httpPost(engine->port(), "/webhooks/8x8", body, headers);
  }

  std::vector<store::MessageSummary> messages() {
    store::MessageQuery q;
    q.channelId = "wa-8x8";
    q.limit = 100;
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return *list;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(seed_submission_is_committed_once_and_refusals_store_nothing, Fixture) {
  const std::string seed = dataFile("flow_submission_seed.json");

  HttpReply refused = post(seed, "Bearer wrong");
  BOOST_TEST(refused.status == 401);
  HttpReply missing = post(seed, nullptr);
  BOOST_TEST(missing.status == 401);
  BOOST_TEST(messages().empty());
  auto audit = engine->store().listAudit(10);
  BOOST_REQUIRE(audit.has_value());
  BOOST_REQUIRE_EQUAL(audit->size(), 2u);
  for (const auto& a : *audit) {
    BOOST_TEST(a.actor == "source:wa-8x8");
    BOOST_TEST(a.detail.find("9QQ") == std::string::npos);
    BOOST_TEST(a.detail.find("wrong") == std::string::npos);
  }

  HttpReply first = post(seed, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(first.status == 200);
  BOOST_REQUIRE(!first.ids.empty());
  auto detail = engine->store().getMessage(std::stoll(first.ids));
  BOOST_REQUIRE(detail.has_value());
  const core::StoredMessage& m = detail->message;
  BOOST_TEST(m.body == seed);
  BOOST_TEST(m.idempotencyKey == "health-xyz-789");
  BOOST_TEST(m.contentType == "application/json");
  BOOST_TEST(testing::metadataValue(m, "provider") == "8x8");
  BOOST_TEST(testing::metadataValue(m, "kind") == "flow");
  BOOST_TEST(testing::metadataValue(m, "sender") == "+15551234567");
  BOOST_TEST(testing::metadataValue(m, "flow_token") == "<TOKEN>");
  BOOST_TEST(testing::metadataValue(m, "received_at_ms") != "<absent>");

  HttpReply again = post(seed, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.ids == first.ids);
  BOOST_TEST(messages().size() == 1u);

  HttpReply ignored = post(R"({"eventType":"external_app_message","payload":{"umid":"e-1"}})",
                       "Bearer 9QQhlsEb8VY");
  BOOST_TEST(ignored.status == 200);
  BOOST_TEST(ignored.ids.empty());
  BOOST_TEST(messages().size() == 1u);

  const std::string broken = R"({"eventType":"inbound_message_received","payload":{"umid":)";
  HttpReply bad = post(broken, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(bad.status == 400);
  BOOST_REQUIRE(!bad.ids.empty());
  auto rejected = engine->store().getMessage(std::stoll(bad.ids));
  BOOST_REQUIRE(rejected.has_value());
  BOOST_TEST(rejected->message.status == "rejected");
  BOOST_TEST(rejected->message.body == broken);
  BOOST_TEST(messages().size() == 2u);
}
