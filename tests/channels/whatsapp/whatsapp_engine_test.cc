// The whatsapp source inside the engine on a temporary SQLite store: secrets resolved from the
// environment by the config loader, commit of one stored message per item with the contract's
// metadata, redelivery deduplicated by wamid, refusals audited with nothing stored, malformed
// signed bodies kept as rejected messages, and the GET handshake.
#define BOOST_TEST_MODULE channel_whatsapp_engine
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <set>

#include "channels/whatsapp/meta_signature.h"
#include "channels/whatsapp/register.h"
#include "engine/core/clock.h"
#include "engine/store/store.h"
#include "tests/support/test_engine.h"

using namespace switchboard;

namespace {

const char* kSecret = "engine_test_app_secret";

std::string readData(const std::string& name) { return testing::readTestData("whatsapp", name); }

struct Fixture {
  testing::TestEngine test{[] {
    ::setenv("SB_WA_TEST_APP_SECRET", kSecret, 1);
    ::setenv("SB_WA_TEST_VERIFY_TOKEN", "meatyhamhock", 1);
    return testing::TestEngineOptions{
        .name = "whatsapp",
        .channelFile = "wa.json",
        .channelJson = R"({
      "id": "whatsapp",
      "source": { "type": "whatsapp", "path": "/webhooks/whatsapp",
                  "app_secrets": ["old-secret-being-rotated-out", "${env:SB_WA_TEST_APP_SECRET}"],
                  "verify_token": "${env:SB_WA_TEST_VERIFY_TOKEN}" },
      "destinations": [ { "name": "outbox", "type": "file", "directory": "outbox" } ]
    })",
        .registerConnectors = channels::registerWhatsappConnectors,
        .clock = std::make_shared<core::FakeClock>()};
  }()};
  runtime::Engine* engine = &test.engine();

  core::HttpResponse post(const std::string& body, const std::string& secret = kSecret) {
    core::HttpRequest r;
    r.method = "POST";
    r.path = "/webhooks/whatsapp";
    r.body = body;
    r.headers.push_back({"Content-Type", "application/json"});
    r.headers.push_back({"X-Hub-Signature-256", channels::whatsapp::hubSignature256(secret, body)});
    return engine->handle(r);
  }

  std::vector<store::MessageSummary> messages() {
    store::MessageQuery q;
    q.limit = 100;
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return *list;
  }
};

std::string header(const core::HttpResponse& r, const std::string& name) {
  for (const auto& h : r.headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(signed_webhook_commits_one_message_per_item_and_redelivery_adds_nothing) {
  Fixture f;
  const std::string body = readData("multi_messages.json");
  auto first = f.post(body);
  BOOST_TEST(first.status == 200);
  BOOST_TEST(first.body == "EVENT_RECEIVED");
  auto list = f.messages();
  BOOST_REQUIRE(list.size() == 6u);
  std::set<std::string> keys;
  for (const auto& s : list) {
    keys.insert(s.idempotencyKey);
    BOOST_TEST(s.status != "rejected");
  }
  BOOST_TEST((keys == std::set<std::string>{"wamid.A1", "wamid.A2", "wamid.A3", "wamid.A4",
                                            "wamid.A5", "wamid.B1"}));

  auto again = f.post(body);  // Meta redelivers the same webhook
  BOOST_TEST(again.status == 200);
  BOOST_TEST(f.messages().size() == 6u);
  BOOST_TEST(header(again, "X-Switchboard-Message-Ids") ==
             header(first, "X-Switchboard-Message-Ids"));
}

BOOST_AUTO_TEST_CASE(stored_flow_message_carries_the_contract_metadata) {
  Fixture f;
  auto reply = f.post(readData("flow_nfm_reply.json"));
  BOOST_TEST(reply.status == 200);
  std::int64_t id = std::stoll(header(reply, "X-Switchboard-Message-Ids"));
  auto detail = f.engine->store().getMessage(id);
  BOOST_REQUIRE(detail.has_value());
  const auto& m = detail->message;
  BOOST_TEST(m.idempotencyKey == "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzRUIwRkxPV1NFRUQwMDAxAA==");
  BOOST_TEST(m.contentType == "application/json");
  BOOST_TEST(testing::metadataValue(m, "provider") == "meta");
  BOOST_TEST(testing::metadataValue(m, "kind") == "flow");
  BOOST_TEST(testing::metadataValue(m, "sender") == "+15551234567");
  BOOST_TEST(testing::metadataValue(m, "reply_to") == "15551234567");
  BOOST_TEST(testing::metadataValue(m, "reply_from") == "106540352242922");
  BOOST_TEST(testing::metadataValue(m, "flow_token") == "<TOKEN>");
  BOOST_TEST(testing::metadataValue(m, "received_at_ms") != "<absent>");
  BOOST_TEST(m.body.find("\"nfm_reply\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_signature_is_401_audited_and_stores_nothing) {
  Fixture f;
  auto reply = f.post(readData("text_message.json"), "an-attacker-guess");
  BOOST_TEST(reply.status == 401);
  BOOST_TEST(f.messages().empty());
  auto audit = f.engine->store().listAudit(10);
  BOOST_REQUIRE(audit.has_value());
  BOOST_REQUIRE(audit->size() == 1u);
  BOOST_TEST((*audit)[0].action == "authentication-refused");
  BOOST_TEST((*audit)[0].detail.find("X-Hub-Signature-256") != std::string::npos);
  BOOST_TEST((*audit)[0].detail.find(kSecret) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(malformed_signed_body_is_kept_as_a_rejected_message) {
  Fixture f;
  auto reply = f.post("{\"object\":\"whatsapp_business_account\",\"entry\":[");
  BOOST_TEST(reply.status == 400);
  auto list = f.messages();
  BOOST_REQUIRE(list.size() == 1u);
  BOOST_TEST(list[0].status == "rejected");
  BOOST_TEST(list[0].error.find("malformed JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(handshake_through_the_engine) {
  Fixture f;
  core::HttpRequest r;
  r.method = "GET";
  r.path = "/webhooks/whatsapp";
  r.query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
  auto ok = f.engine->handle(r);
  BOOST_TEST(ok.status == 200);
  BOOST_TEST(ok.body == "1158201444");
  r.query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess";
  auto refused = f.engine->handle(r);
  BOOST_TEST(refused.status == 403);
  BOOST_TEST(f.messages().empty());
}
