// Helpers shared by the mapping tests: shipped files and small JSON checks.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/mapping/map_cli.h"

// Lets BOOST_TEST print JSON values on failure.
namespace rapidjson {
inline std::ostream& operator<<(std::ostream& os, const Value& v) {
  StringBuffer sb;
  Writer<StringBuffer> w(sb);
  v.Accept(w);
  return os << sb.GetString();
}
}  // namespace rapidjson

namespace switchboard::mapping::test {

// `switchboard map ARGS...` run in this process: its exit code and what it printed.
struct Captured {
  int code = 0;
  std::string out, err;
};

inline Captured runMap(std::vector<std::string> args) {
  args.insert(args.begin(), "map");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  auto* oldOut = std::cout.rdbuf(out.rdbuf());
  auto* oldErr = std::cerr.rdbuf(err.rdbuf());
  Captured c;
  c.code = runMapCommand(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(oldOut);
  std::cerr.rdbuf(oldErr);
  c.out = out.str();
  c.err = err.str();
  return c;
}

inline std::string sourceDir() {
  const char* dir = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return dir ? dir : ".";
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  return d;
}

// The resource of the Bundle entry whose resourceType is `type` (nullptr when none).
inline const rapidjson::Value* entryOf(const rapidjson::Document& bundle, const char* type) {
  if (!bundle.IsObject() || !bundle.HasMember("entry")) return nullptr;
  for (const auto& e : bundle["entry"].GetArray()) {
    if (e["resource"]["resourceType"] == type) return &e;
  }
  return nullptr;
}

}  // namespace switchboard::mapping::test
