// Helpers for tests of one connector outside the engine: the test data of the source tree, and a
// source made by its registered factory from config JSON, as the channel loader makes it.
// Thread-safety: plain functions; Boost.Test assertions, so call them from the test thread.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <boost/test/unit_test.hpp>
#include <rapidjson/document.h>

#include "engine/core/config.h"
#include "engine/core/connector.h"

namespace switchboard::testing {

// The whole file (fails the test when it cannot be read).
inline std::string readTestFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// tests/data/<folder>/<name> of the source tree named by SWITCHBOARD_SOURCE_DIR (ctest sets it).
inline std::string readTestData(const std::string& folder, const std::string& name) {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(root != nullptr, "SWITCHBOARD_SOURCE_DIR is not set (run the test through ctest)");
  return readTestFile(std::filesystem::path(root) / "tests" / "data" / folder / name);
}

// The source of `type` that `registerConnectors` registers, made from the source object `json`
// as if read from conf/channels/<type>.json of channel `channelId`.
inline Result<std::unique_ptr<core::HttpSource>> createSource(void (*registerConnectors)(core::ConnectorRegistry&),
                                                              const std::string& type, const std::string& channelId,
                                                              const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  BOOST_REQUIRE(!doc.HasParseError());
  core::ConnectorRegistry registry;
  registerConnectors(registry);
  const auto* factory = registry.source(type);
  BOOST_REQUIRE(factory != nullptr);
  core::ConfigReader reader(doc, "conf/channels/" + type + ".json", "/source");
  return (*factory)(reader, core::ConnectorContext{channelId, "/tmp", "/tmp"});
}

}  // namespace switchboard::testing
