#include "tests/support/test_engine.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <boost/test/unit_test.hpp>

#include "channels/file/file_destination.h"
#include "engine/runtime/builtin_stages.h"
#include "engine/store/store.h"

namespace switchboard::testing {

namespace fs = std::filesystem;

TestEngine::TestEngine(TestEngineOptions options) {
  static int counter = 0;
  dir_ = fs::temp_directory_path() /
         ("sb-" + options.name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(dir_);
  fs::create_directories(dir_ / "channels");
  std::ofstream(dir_ / "channels" / options.channelFile) << options.channelJson;
  if (options.builtins) {
    runtime::registerBuiltinStages(registry_);
    channels::registerFileConnectors(registry_);
  }
  if (options.registerConnectors) options.registerConnectors(registry_);
  runtime::EngineConfig config;
  config.nodeId = "test-" + options.name;
  config.dataDir = (dir_ / "var").string();
  if (options.serve) {
    config.bind = "127.0.0.1";
    config.port = 0;
    config.httpThreads = 4;
    config.pipelineThreads = 1;
    config.deliveryThreads = 1;
  }
  if (options.configure) options.configure(config);
  core::ConnectorContext ctx{"", config.dataDir, dir_.string()};
  auto channels = runtime::loadChannels((dir_ / "channels").string(), registry_, ctx);
  BOOST_REQUIRE_MESSAGE(channels.has_value(), (channels ? std::string() : channels.error().message));
  auto store = store::openStore("sqlite:" + (dir_ / "var" / "sb.db").string());
  BOOST_REQUIRE_MESSAGE(store.has_value(), (store ? std::string() : store.error().message));
  std::shared_ptr<core::Clock> clock = options.clock;
  if (!clock) clock = std::make_shared<core::SystemClock>();
  engine_ = std::make_unique<runtime::Engine>(config, std::move(*store), std::move(*channels), clock,
                                              std::make_shared<core::SeededRandom>(7));
  if (options.serve) engine_->start();
}

TestEngine::~TestEngine() {
  engine_.reset();  // stops it first (Engine's destructor), before its directory goes
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

HttpReply httpPost(int port, const std::string& path, const std::string& body,
                   const std::vector<std::pair<std::string, std::string>>& headers) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  for (const auto& [name, value] : headers) request.set(name, value);
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  HttpReply r;
  r.status = static_cast<int>(response.getStatus());
  r.contentType = response.getContentType();
  std::ostringstream out;
  out << in.rdbuf();
  r.body = out.str();
  r.ids = response.get("X-Switchboard-Message-Ids", "");
  return r;
}

}  // namespace switchboard::testing
