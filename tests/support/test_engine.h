// An engine for tests of connectors inside it: a fresh directory under the system temp dir with
// channels/<file> holding the given channel JSON, a real SQLite store under var/, the builtin
// stages, the file destination and whatever connectors the test registers, and (when serving)
// HTTP on 127.0.0.1 with the pipeline and delivery workers running. Plus the small HTTP client
// those tests share (the file helpers are in source_tests.h).
// Thread-safety: a TestEngine belongs to the test thread that made it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/connector.h"
#include "engine/core/message.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/engine_config.h"
#include "tests/support/source_tests.h"  // readTestFile, readTestData

namespace switchboard::testing {

// A stored message's metadata value `key`, or "<absent>".
inline std::string metadataValue(const core::StoredMessage& m, std::string_view key) {
  const std::string* v = core::findMetadata(m.metadata, key);
  return v != nullptr ? *v : std::string("<absent>");
}

struct TestEngineOptions {
  std::string name;         // temp dir prefix and node id, e.g. "8x8-intake"
  std::string channelFile;  // e.g. "8x8.json"
  std::string channelJson;
  std::function<void(core::ConnectorRegistry&)> registerConnectors;  // the test's connectors
  std::function<void(runtime::EngineConfig&)> configure;             // after the defaults
  std::shared_ptr<core::Clock> clock;  // SystemClock when empty
  bool serve = false;     // start(): HTTP on 127.0.0.1 (port 0), workers running
  bool builtins = true;   // the builtin stages and the file destination, before the test's own
};

class TestEngine {
 public:
  explicit TestEngine(TestEngineOptions options);
  ~TestEngine();
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  runtime::Engine& engine() { return *engine_; }
  const std::filesystem::path& dir() const { return dir_; }
  core::ConnectorRegistry& registry() { return registry_; }

 private:
  std::filesystem::path dir_;
  core::ConnectorRegistry registry_;
  std::unique_ptr<runtime::Engine> engine_;
};

// One POST over a fresh connection to 127.0.0.1:port, with the given headers.
struct HttpReply {
  int status = 0;
  std::string contentType;
  std::string body;
  std::string ids;  // X-Switchboard-Message-Ids
};
HttpReply httpPost(int port, const std::string& path, const std::string& body,
                   const std::vector<std::pair<std::string, std::string>>& headers);

}  // namespace switchboard::testing
