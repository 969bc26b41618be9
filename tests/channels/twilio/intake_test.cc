// The Twilio source inside a running engine on 127.0.0.1 with a real SQLite store: a signed
// sandbox webhook is committed byte-exact and answered with TwiML, a redelivery adds nothing, a
// bad signature is answered 401 and audited with nothing stored. The URL signed is the one the
// client used (Host with the listener's port).
#define BOOST_TEST_MODULE channel_twilio_intake_tests
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include "channels/twilio/register.h"
#include "channels/twilio/twilio_signature.h"
#include "engine/store/store.h"
#include "tests/support/test_engine.h"

using namespace switchboard;
using testing::HttpReply;

namespace {

std::string dataFile(const std::string& name) { return testing::readTestData("twilio", name); }

struct Fixture {
  testing::TestEngine test{[] {
    ::setenv("SB_TEST_TWILIO_TOKEN", "test_auth_token_1", 1);
    return testing::TestEngineOptions{
        .name = "twilio-intake",
        .channelFile = "twilio.json",
        .channelJson = R"({"id": "wa-twilio",
      "source": {"type": "twilio", "path": "/webhooks/twilio", "auth_tokens": ["${env:SB_TEST_TWILIO_TOKEN}"]},
      "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})",
        .registerConnectors = channels::registerTwilioConnectors,
        .serve = true};
  }()};
  runtime::Engine* engine = &test.engine();

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(engine->port()) + "/webhooks/twilio";
  }

  HttpReply post(const std::string& body, const std::string& signature) {
    return testing::httpPost(engine->port(), "/webhooks/twilio", body,
                             {{"Content-Type", "application/x-www-form-urlencoded"},
                              {"X-Twilio-Signature", signature}});
  }

  std::size_t stored() {
    store::MessageQuery q;
    q.channelId = "wa-twilio";
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return list->size();
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(signed_webhook_committed_once_and_bad_signature_refused, Fixture) {
  const std::string body = dataFile("sandbox_inbound.form");
  const std::string signature =
      channels::twilio::computeSignature("test_auth_token_1", url(), core::parseForm(body));

  HttpReply bad =
      post(body, channels::twilio::computeSignature("another_token", url(), core::parseForm(body)));
  BOOST_TEST(bad.status == 401);
  BOOST_TEST(stored() == 0u);
  auto audit = engine->store().listAudit(10);
  BOOST_REQUIRE(audit.has_value());
  BOOST_REQUIRE_EQUAL(audit->size(), 1u);
  BOOST_TEST(audit->front().actor == "source:wa-twilio");

  HttpReply first = post(body, signature);
  BOOST_TEST(first.status == 200);
  BOOST_TEST(first.contentType == "text/xml");
  BOOST_TEST(first.body == R"(<?xml version="1.0" encoding="UTF-8"?><Response></Response>)");
  BOOST_REQUIRE(!first.ids.empty());
  auto detail = engine->store().getMessage(std::stoll(first.ids));
  BOOST_REQUIRE(detail.has_value());
  const core::StoredMessage& m = detail->message;
  BOOST_TEST(m.body == body);
  BOOST_TEST(m.idempotencyKey == "SM01cd3925943ee3504f8a5c42d88efdf6");
  BOOST_TEST(m.contentType == "application/x-www-form-urlencoded");
  BOOST_TEST(testing::metadataValue(m, "sender") == "+558282136275");
  BOOST_TEST(testing::metadataValue(m, "reply_to") == "whatsapp:+558282136275");
  BOOST_TEST(testing::metadataValue(m, "reply_from") == "whatsapp:+14155238886");

  HttpReply again = post(body, signature);
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.ids == first.ids);
  BOOST_TEST(stored() == 1u);
}
