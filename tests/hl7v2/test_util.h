// Helpers shared by the hl7v2 tests: locating and reading the sample corpus.
// Thread-safety: plain functions.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace switchboard::hl7v2::test {

inline std::filesystem::path corpusDir() {
  const char* root = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return std::filesystem::path(root ? root : ".") / "tests" / "data" / "hl7v2-samples";
}

inline std::string readBytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The corpus files (*.hl7), sorted by name.
inline std::vector<std::filesystem::path> corpusFiles() {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(corpusDir(), ec)) {
    if (e.path().extension() == ".hl7") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The corpus file whose name starts with `prefix` (e.g. "004"), read whole.
inline std::string corpusMessage(const std::string& prefix) {
  for (const auto& p : corpusFiles()) {
    if (p.filename().string().rfind(prefix, 0) == 0) return readBytes(p);
  }
  return {};
}

}  // namespace switchboard::hl7v2::test
