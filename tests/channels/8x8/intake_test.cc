// The 8x8 source inside a running engine on 127.0.0.1 with a real SQLite store: the seed's Flow
// submission is committed byte-exact with its metadata, a redelivery adds nothing, a wrong
// Authorization is answered 401 and audited with nothing stored, malformed JSON is kept as
// rejected, an unknown event type is answered 200 and stores nothing.
#define BOOST_TEST_MODULE channel_8x8_intake_tests
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include "channels/8x8/register.h"
#include "channels/file/file_destination.h"
#include "engine/core/clock.h"
#include "engine/runtime/builtin_stages.h"
#include "engine/runtime/engine.h"
#include "engine/store/store.h"

using namespace switchboard;
namespace fs = std::filesystem;

namespace {

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string dataFile(const std::string& name) {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return readFile(
      fs::path(root != nullptr ? std::string(root) + "/tests/data/8x8" : SB_TEST_DATA_DIR) / name);
}

struct Reply {
  int status = 0;
  std::string body;
  std::string ids;
};

struct Fixture {
  fs::path dir;
  std::unique_ptr<runtime::Engine> engine;

  Fixture() {
    dir = fs::temp_directory_path() / ("sb-8x8-intake-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "channels");
    ::setenv("SB_TEST_8X8_INTAKE_AUTH", "Bearer 9QQhlsEb8VY", 1);
    std::ofstream(dir / "channels" / "8x8.json") << R"({"id": "wa-8x8",
      "source": {"type": "8x8", "path": "/webhooks/8x8", "authorization": "${env:SB_TEST_8X8_INTAKE_AUTH}"},
      "destinations": [{"name": "out", "type": "file", "directory": "outbox"}]})";
    core::ConnectorRegistry registry;
    runtime::registerBuiltinStages(registry);
    channels::registerFileConnectors(registry);
    channels::registerEightByEightConnectors(registry);
    runtime::EngineConfig config;
    config.nodeId = "test-8x8";
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

  Reply post(const std::string& body, const char* authorization) {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(engine->port()));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/webhooks/8x8",
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    if (authorization != nullptr) request.set("Authorization", authorization);
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    Reply r;
    r.status = static_cast<int>(response.getStatus());
    std::ostringstream out;
    out << in.rdbuf();
    r.body = out.str();
    r.ids = response.get("X-Switchboard-Message-Ids", "");
    return r;
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

std::string meta(const core::StoredMessage& m, const char* key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(seed_submission_is_committed_once_and_refusals_store_nothing, Fixture) {
  const std::string seed = dataFile("flow_submission_seed.json");

  Reply refused = post(seed, "Bearer wrong");
  BOOST_TEST(refused.status == 401);
  Reply missing = post(seed, nullptr);
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

  Reply first = post(seed, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(first.status == 200);
  BOOST_REQUIRE(!first.ids.empty());
  auto detail = engine->store().getMessage(std::stoll(first.ids));
  BOOST_REQUIRE(detail.has_value());
  const core::StoredMessage& m = detail->message;
  BOOST_TEST(m.body == seed);
  BOOST_TEST(m.idempotencyKey == "health-xyz-789");
  BOOST_TEST(m.contentType == "application/json");
  BOOST_TEST(meta(m, "provider") == "8x8");
  BOOST_TEST(meta(m, "kind") == "flow");
  BOOST_TEST(meta(m, "sender") == "+15551234567");
  BOOST_TEST(meta(m, "flow_token") == "<TOKEN>");
  BOOST_TEST(meta(m, "received_at_ms") != "<absent>");

  Reply again = post(seed, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(again.status == 200);
  BOOST_TEST(again.ids == first.ids);
  BOOST_TEST(messages().size() == 1u);

  Reply ignored = post(R"({"eventType":"external_app_message","payload":{"umid":"e-1"}})",
                       "Bearer 9QQhlsEb8VY");
  BOOST_TEST(ignored.status == 200);
  BOOST_TEST(ignored.ids.empty());
  BOOST_TEST(messages().size() == 1u);

  const std::string broken = R"({"eventType":"inbound_message_received","payload":{"umid":)";
  Reply bad = post(broken, "Bearer 9QQhlsEb8VY");
  BOOST_TEST(bad.status == 400);
  BOOST_REQUIRE(!bad.ids.empty());
  auto rejected = engine->store().getMessage(std::stoll(bad.ids));
  BOOST_REQUIRE(rejected.has_value());
  BOOST_TEST(rejected->message.status == "rejected");
  BOOST_TEST(rejected->message.body == broken);
  BOOST_TEST(messages().size() == 2u);
}
