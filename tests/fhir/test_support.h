// Shared helpers of the engine/fhir tests: the shipped definitions (loaded once) and small
// JSON/issue utilities. Thread-safety: tests run on one thread.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
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

inline std::string toText(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The valid resources of corpusFiles(), as JSON text.
inline std::vector<std::pair<std::string, std::string>> validCorpus() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, path] : corpusFiles()) {
    if (name.starts_with("mapping_")) continue;  // mapping templates, not resources
    if (!name.ends_with(".json") && !name.ends_with(".xml")) continue;
    auto parsed = switchboard::fhirpath::parseResource(readFile(path));
    if (!parsed) continue;
    out.emplace_back(name, toText(*parsed->document()));
  }
  return out;
}

// Codes the mutations put into code-valued members, chosen to flip the natively checked
// invariants (tests/fhir/invariants_test.cc).
inline const char* const kMutationCodes[] = {
    "history", "searchset", "document",  "message",  "batch",  "transaction-response",
    "home",    "noshow",    "cancelled", "proposed", "booked", "#c1"};

// Variants of `doc`: each member removed, set to null, turned into its "_name" form, wrapped in an
// array, and each string member of a code-like name set to the codes above; with `shapes`, each
// member also replaced by {}, [], [{}], {"id":"x"} and [null].
inline void mutations(const rapidjson::Value& doc,
                      const std::function<void(const rapidjson::Value&)>& visit,
                      bool shapes = false) {
  using rapidjson::Value;
  // Paths to every object member, as (object pointer path, member index).
  std::vector<std::vector<std::variant<std::string, rapidjson::SizeType>>> paths;
  std::function<void(const Value&, std::vector<std::variant<std::string, rapidjson::SizeType>>&)>
      collect = [&](const Value& v, auto& path) {
        if (v.IsObject()) {
          for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            path.emplace_back(std::string(it->name.GetString(), it->name.GetStringLength()));
            paths.push_back(path);
            collect(it->value, path);
            path.pop_back();
          }
        } else if (v.IsArray()) {
          for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
            path.emplace_back(i);
            collect(v[i], path);
            path.pop_back();
          }
        }
      };
  std::vector<std::variant<std::string, rapidjson::SizeType>> path;
  collect(doc, path);
  const int codeKinds = static_cast<int>(std::size(kMutationCodes));
  const int kinds = 4 + codeKinds + (shapes ? 5 : 0);
  for (const auto& p : paths) {
    for (int kind = 0; kind < kinds; ++kind) {
      rapidjson::Document copy;
      copy.CopyFrom(doc, copy.GetAllocator());
      auto& a = copy.GetAllocator();
      Value* owner = &copy;
      for (std::size_t i = 0; i + 1 < p.size(); ++i) {
        owner = std::holds_alternative<std::string>(p[i])
                    ? &(*owner)[Value(std::get<std::string>(p[i]).c_str(), a)]
                    : &(*owner)[std::get<rapidjson::SizeType>(p[i])];
      }
      const std::string& key = std::get<std::string>(p.back());
      if (key == "resourceType" && kind != 0) continue;
      auto it = owner->FindMember(key.c_str());
      if (kind == 0) {
        owner->RemoveMember(it);
      } else if (kind == 1) {
        it->value.SetNull();
      } else if (kind == 2) {
        if (key.starts_with("_")) continue;
        Value ext(rapidjson::kObjectType);
        ext.AddMember("id", "x", a);
        owner->AddMember(Value(("_" + key).c_str(), a), ext, a);
      } else if (kind == 3) {
        if (it->value.IsArray() || it->value.IsNull()) continue;
        Value wrapped(rapidjson::kArrayType);
        wrapped.PushBack(Value(it->value, a), a);
        it->value = wrapped;
      } else if (kind < 4 + codeKinds) {
        if (!it->value.IsString()) continue;
        if (key != "type" && key != "status" && key != "use" && key != "reference" &&
            key != "fullUrl")
          continue;
        it->value.SetString(kMutationCodes[kind - 4], a);
      } else {
        const int shape = kind - 4 - codeKinds;
        Value v(shape == 0 || shape == 3 ? rapidjson::kObjectType : rapidjson::kArrayType);
        if (shape == 2) v.PushBack(Value(rapidjson::kObjectType), a);
        if (shape == 3) v.AddMember("id", "x", a);
        if (shape == 4) v.PushBack(Value(), a);
        it->value = v;
      }
      visit(copy);
    }
  }
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
