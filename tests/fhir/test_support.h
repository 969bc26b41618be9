// Shared helpers of the engine/fhir tests: the shipped definitions (loaded once) and small
// JSON/issue utilities. Thread-safety: tests run on one thread.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "engine/fhir/validator.h"

namespace switchboard::fhir::test {

inline std::string sourceDir() {
  const char* dir = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return dir ? dir : ".";
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string dataFile(const std::string& name) {
  return readFile(sourceDir() + "/tests/data/fhir/" + name);
}

// The files of tests/data/fhir and of the FHIRPath conformance inputs: (file name, path).
inline std::vector<std::pair<std::string, std::string>> corpusFiles() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* dir : {"/tests/data/fhir", "/../shared/conformance/fhirpath-r4/input"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(sourceDir() + dir, ec))
      out.emplace_back(e.path().filename().string(), e.path().string());
  }
  return out;
}

inline const Validator& validator() {
  static const std::shared_ptr<const Validator> v = [] {
    auto loaded = Validator::fromDirectory(sourceDir() + "/fhir-profiles");
    BOOST_REQUIRE_MESSAGE(loaded.has_value(), (loaded ? std::string() : loaded.error().message));
    return std::make_shared<const Validator>(std::move(*loaded));
  }();
  return *v;
}

inline std::string describe(const std::vector<Issue>& issues) {
  std::string out;
  for (const auto& i : issues)
    out += "  " + i.severity + " " + i.code + " @" + i.expression + ": " + i.diagnostics + "\n";
  return out;
}

inline std::vector<Issue> errors(const std::vector<Issue>& issues) {
  std::vector<Issue> out;
  for (const auto& i : issues)
    if (i.severity == "error" || i.severity == "fatal") out.push_back(i);
  return out;
}

// The same issues in the same order.
inline bool sameIssues(const std::vector<Issue>& a, const std::vector<Issue>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].severity != b[i].severity || a[i].code != b[i].code ||
        a[i].diagnostics != b[i].diagnostics || a[i].expression != b[i].expression)
      return false;
  }
  return true;
}

// The issue with this severity, code and location whose diagnostics contain `text`.
inline bool hasIssue(const std::vector<Issue>& issues, const std::string& severity,
                     const std::string& code, const std::string& expression,
                     const std::string& text = "") {
  for (const auto& i : issues) {
    if (i.severity == severity && i.code == code && i.expression == expression &&
        i.diagnostics.find(text) != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace switchboard::fhir::test
