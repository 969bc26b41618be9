// The Twilio source inside a running engine on 127.0.0.1 with a real SQLite store: a signed
// sandbox webhook is committed byte-exact and answered with TwiML, a redelivery adds nothing, a
// bad signature is answered 401 and audited with nothing stored. The URL signed is the one the
// client used (Host with the listener's port).
#define BOOST_TEST_MODULE channel_twilio_intake_tests
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include "channels/file/file_destination.h"
#include "channels/twilio/register.h"
#include "channels/twilio/twilio_signature.h"
#include "engine/core/clock.h"
#include "engine/runtime/builtin_stages.h"
#include "engine/runtime/engine.h"
#include "engine/store/store.h"

using namespace switchboard;
namespace fs = std::filesystem;

namespace {

std::string dataFile(const std::string& name) {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  fs::path path =
      fs::path(root != nullptr ? std::string(root) + "/tests/data/twilio" : SB_TEST_DATA_DIR) /
      name;
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Reply {
  int status = 0;
  std::string contentType;
  std::string body;
  std::string ids;
};

struct Fixture {
  fs::path dir;
  std::unique_ptr<runtime::Engine> engine;

  Fixture() {
    dir = fs::temp_directory_path() / ("sb-twilio-intake-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "channels");
    ::setenv("SB_TEST_TWILIO_TOKEN", "test_auth_token_1", 1);
    std::ofstream(dir / "channels" / "twilio.json") << R"({"id": "wa-twilio",
      "source": {"type": "twilio", "path": "/webhooks/twilio", "auth_tokens": ["${env:SB_TEST_TWILIO_TOKEN}"]},
      "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})";
    core::ConnectorRegistry registry;
    runtime::registerBuiltinStages(registry);
    channels::registerFileConnectors(registry);
    channels::registerTwilioConnectors(registry);
    runtime::EngineConfig config;
    config.nodeId = "test-twilio";
    config.dataDir = (dir / "var").string();
    config.bind = "127.0.0.1";
    config.port = 0;
    config.httpThreads = 4;
    config.pipelineThreads = 1;
    config.deliveryThreads = 1;
    core::ConnectorContext ctx{"", config.dataDir, dir.string()};
    auto channels = runtime::loadChannels((dir / "channels").string(), registry, ctx);
    BOOST_REQUIRE_MESSAGE(channels.has_value(),
                          (channels ? std::string() : channels.error().message));
    auto store = store::openStore("sqlite:" + (dir / "var" / "sb.db").string());
    BOOST_REQUIRE_MESSAGE(store.has_value(), (store ? std::string() : store.error().message));
    engine = std::make_unique<runtime::Engine>(config, std::move(*store), std::move(*channels),
                                               std::make_shared<core::SystemClock>(),
                                               std::make_shared<core::SeededRandom>(7));
    engine->start();
  }
  ~Fixture() {
    engine->stop();
    engine.reset();
    fs::remove_all(dir);
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(engine->port()) + "/webhooks/twilio";
  }

  Reply post(const std::string& body, const std::string& signature) {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(engine->port()));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/webhooks/twilio",
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentType("application/x-www-form-urlencoded");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    request.set("X-Twilio-Signature", signature);
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    Reply r;
    r.status = static_cast<int>(response.getStatus());
    r.contentType = response.getContentType();
    std::ostringstream out;
    out << in.rdbuf();
    r.body = out.str();
    r.ids = response.get("X-Switchboard-Message-Ids", "");
    return r;
  }

  std::size_t stored() {
    store::MessageQuery q;
    q.channelId = "wa-twilio";
    auto list = engine->store().listMessages(q);
    BOOST_REQUIRE(list.has_value());
    return list->size();
  }
};

std::string meta(const core::StoredMessage& m, const char* key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(signed_webhook_committed_once_and_bad_signature_refused, Fixture) {
  const std::string body = dataFile("sandbox_inbound.form");
  const std::string signature =
      channels::twilio::computeSignature("test_auth_token_1", url(), core::parseForm(body));

  Reply bad =
      post(body, channels::twilio::computeSignature("another_token", url(), core::parseForm(body)));
  BOOST_TEST(bad.status == 401);
  BOOST_TEST(stored() == 0u);
  auto audit = engine->store().listAudit(10);
  BOOST_REQUIRE(audit.has_value());
  BOOST_REQUIRE_EQUAL(audit->size(), 1u);
  BOOST_TEST(audit->front().actor == "source:wa-twilio");

  Reply first = post(body, signature);
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
  BOOST_TEST(meta(m, "sender") == "+558282136275");
  BOOST_TEST(meta(m, "reply_to") == "whatsapp:+558282136275");
  BOOST_TEST(meta(m, "reply_from") == "whatsapp:+14155238886");

  Reply again = post(body, signature);
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.ids == first.ids);
  BOOST_TEST(stored() == 1u);
}
