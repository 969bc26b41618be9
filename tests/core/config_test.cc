// Config loading: reference expansion, typed reads, unknown keys, precise error messages.
#define BOOST_TEST_MODULE core
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/core/config.h"
#include "engine/core/connector.h"

using namespace switchboard;

namespace {
std::string writeTemp(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("sb-core-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}
}  // namespace

BOOST_AUTO_TEST_CASE(expands_env_and_file_references) {
  ::setenv("SB_TEST_SECRET", "s3cret", 1);
  std::string secretFile = writeTemp("secret.txt", "from-file\n");
  auto r = core::expandReferences("a=${env:SB_TEST_SECRET};b=${file:" + secretFile + "};c=${env:SB_UNSET_VAR:-dflt}", "x");
  BOOST_REQUIRE(r.has_value());
  BOOST_TEST(*r == "a=s3cret;b=from-file;c=dflt");
}

BOOST_AUTO_TEST_CASE(missing_variable_names_field_and_variable) {
  ::unsetenv("SB_DEFINITELY_UNSET");
  std::string path = writeTemp("c1.json", R"({"source":{"secret":"${env:SB_DEFINITELY_UNSET}"}})");
  auto r = core::loadConfigFile(path);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().message.find(path) != std::string::npos);
  BOOST_TEST(r.error().message.find("/source/secret") != std::string::npos);
  BOOST_TEST(r.error().message.find("SB_DEFINITELY_UNSET") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(unreadable_file_reference_is_an_error) {
  auto r = core::expandReferences("${file:/nonexistent/sb/secret}", "f: /x");
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().message.find("/nonexistent/sb/secret") != std::string::npos);
  auto u = core::expandReferences("${vault:x}", "f: /x");
  BOOST_REQUIRE(!u.has_value());
  auto t = core::expandReferences("${env:X", "f: /x");
  BOOST_REQUIRE(!t.has_value());
}

BOOST_AUTO_TEST_CASE(invalid_json_reports_offset) {
  std::string path = writeTemp("bad.json", "{\"id\": ");
  auto r = core::loadConfigFile(path);
  BOOST_REQUIRE(!r.has_value());
  BOOST_TEST(r.error().message.find("invalid JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reader_checks_types_ranges_and_unknown_keys) {
  rapidjson::Document doc;
  doc.Parse(R"({"port": "eighty", "name": "x"})");
  core::ConfigReader r(doc, "f.json", "/http");
  r.integer("port", 80, 0, 65535, "listen port");
  r.string("name", "", "name");
  auto e = r.finish();
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST(e.error().message == "f.json: /http/port: expected an integer, found a string");

  doc.Parse(R"({"port": 70000})");
  core::ConfigReader r2(doc, "f.json", "");
  r2.integer("port", 80, 0, 65535, "listen port");
  auto e2 = r2.finish();
  BOOST_REQUIRE(!e2.has_value());
  BOOST_TEST(e2.error().message.find("from 0 to 65535, found 70000") != std::string::npos);

  doc.Parse(R"({"port": 81, "prot": 1})");
  core::ConfigReader r3(doc, "f.json", "");
  BOOST_TEST(r3.integer("port", 80, 0, 65535, "listen port") == 81);
  auto e3 = r3.finish();
  BOOST_REQUIRE(!e3.has_value());
  BOOST_TEST(e3.error().message.find("/prot: unknown key \"prot\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reader_required_and_optional_values) {
  rapidjson::Document doc;
  doc.Parse(R"({"flag": true, "list": ["a", "b"]})");
  core::ConfigReader r(doc, "f.json", "");
  BOOST_TEST(r.optionalBoolean("flag", "").value() == true);
  BOOST_TEST(!r.optionalBoolean("other", "").has_value());
  BOOST_TEST(r.strings("list", "").size() == 2u);
  r.requiredString("path", "a URL path");
  auto e = r.finish();
  BOOST_REQUIRE(!e.has_value());
  BOOST_TEST(e.error().message.find("/path: required string is missing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(operation_outcome_carries_code_and_location) {
  std::string oo = core::operationOutcomeJson(Error(ErrorCode::kTooLong, "body \"too\" big", "/x"));
  BOOST_TEST(oo == R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-long","diagnostics":"body \"too\" big","expression":["/x"]}]})");
}
