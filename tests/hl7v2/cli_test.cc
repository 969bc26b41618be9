// `switchboard hl7 parse|check` as implemented in hl7v2/hl7_cli.cc, run in-process with
// stdout and stderr captured.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "hl7v2/hl7_cli.h"
#include "tests/hl7v2/test_util.h"

namespace switchboard::hl7v2 {
namespace {

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run run(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  auto* oldOut = std::cout.rdbuf(out.rdbuf());
  auto* oldErr = std::cerr.rdbuf(err.rdbuf());
  int code = runHl7Command(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(oldOut);
  std::cerr.rdbuf(oldErr);
  return {code, out.str(), err.str()};
}

std::string sample(const std::string& prefix) {
  for (const auto& p : test::corpusFiles()) {
    if (p.filename().string().rfind(prefix, 0) == 0) return p.string();
  }
  BOOST_FAIL("corpus file " << prefix << " missing");
  return {};
}

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(parse_json_nests_repetitions_components_subcomponents) {
  Run r = run({"hl7", "parse", sample("041")});
  BOOST_CHECK_EQUAL(r.code, 0);
  BOOST_CHECK(r.out.starts_with(
      "{\"type\":\"ORU\",\"trigger\":\"R01\",\"structure\":\"\",\"controlId\":\"CNTRL-3456\","
      "\"version\":\"2.4\",\"delimiters\":\"|^~\\\\&\",\"segments\":[{\"id\":\"MSH\",\"fields\":"
      "[\"|\",\"^~\\\\&\",\"GHH LAB\","));
  BOOST_CHECK(r.out.ends_with(
      "{\"id\":\"PID\",\"fields\":[\"Field1\",[[\"Component1\",\"Component2\"]],[[\"Component1\","
      "[\"Sub-Component1\",\"Sub-Component2\"],\"Component3\"]],[\"Repeat1\",\"Repeat2\"]]}]}\n"));
}

BOOST_AUTO_TEST_CASE(parse_json_decodes_escapes) {
  Run r = run({"hl7", "parse", sample("031"), "--json"});
  BOOST_CHECK_EQUAL(r.code, 0);
  BOOST_CHECK(r.out.find("[[\"Smith|^~\\\\&\",\"John\"]]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(parse_er7_prints_segments_on_lines) {
  const std::string file = sample("040");
  std::string expected = test::readBytes(file);
  for (char& c : expected) {
    if (c == '\r') c = '\n';
  }
  Run r = run({"hl7", "parse", file, "--er7"});
  BOOST_CHECK_EQUAL(r.code, 0);
  BOOST_CHECK_EQUAL(r.out, expected);
}

BOOST_AUTO_TEST_CASE(check_good_bad_and_usage) {
  Run ok = run({"hl7", "check", sample("022")});
  BOOST_CHECK_EQUAL(ok.code, 0);
  BOOST_CHECK(ok.out.find(": ADT^A40 (ADT_A40), control id '8919-40', version '2.8', 4 segments") !=
              std::string::npos);
  BOOST_CHECK(ok.out.ends_with(", ok\n"));
  Run noType = run({"hl7", "check", sample("071")});
  BOOST_CHECK_EQUAL(noType.code, 1);
  BOOST_CHECK(noType.err.find("MSH-9 is empty") != std::string::npos);
  BOOST_CHECK(noType.out.find(": no message type, control id '', version '', 2 segments\n") !=
              std::string::npos);

  const auto bad = std::filesystem::temp_directory_path() / "hl7v2_cli_test_bad.hl7";
  {
    std::ofstream f(bad, std::ios::binary);
    f << "MSH|^~\\&|A\rpid|1\r";
  }
  Run broken = run({"hl7", "check", bad.string()});
  std::filesystem::remove(bad);
  BOOST_CHECK_EQUAL(broken.code, 1);
  BOOST_CHECK(broken.err.find("segment 2") != std::string::npos);
  BOOST_CHECK(broken.err.find("(byte 11)") != std::string::npos);

  BOOST_CHECK_EQUAL(run({"hl7"}).code, 2);
  BOOST_CHECK_EQUAL(run({"hl7", "parse", sample("022"), "--xml"}).code, 2);
  BOOST_CHECK_EQUAL(run({"hl7", "frob", sample("022")}).code, 2);
  BOOST_CHECK_EQUAL(run({"hl7", "parse", "/nonexistent/x.hl7"}).code, 1);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace switchboard::hl7v2
