// Mapping template lint: a clean template passes, and each kind of mistake is named by file,
// JSON pointer and FHIR path.
#include <boost/test/unit_test.hpp>

#include "engine/fhir/fhir_cli.h"
#include "engine/fhir/lint.h"
#include "test_support.h"

using namespace switchboard::fhir;
using namespace switchboard::fhir::test;

namespace {

std::vector<LintFinding> lintData(const std::string& name) {
  return lintMappingFile(validator().definitions(), sourceDir() + "/tests/data/fhir/" + name);
}

std::string describe(const std::vector<LintFinding>& findings) {
  std::string out;
  for (const auto& f : findings) out += "  " + formatFinding(f) + "\n";
  return out;
}

bool has(const std::vector<LintFinding>& findings, const std::string& pointer,
         const std::string& fhirPath, const std::string& text) {
  for (const auto& f : findings)
    if (f.pointer == pointer && f.fhirPath == fhirPath && f.message.find(text) != std::string::npos)
      return true;
  return false;
}

#define EXPECT_FINDING(findings, pointer, path, text)                                     \
  BOOST_TEST(has(findings, pointer, path, text), "expected " << pointer << " (" << path   \
                                                             << "): " << text << " in:\n" \
                                                             << describe(findings))

int runLint(std::vector<std::string> args) {
  setenv("SWITCHBOARD_FHIR_PROFILES", (sourceDir() + "/fhir-profiles").c_str(), 1);
  args.insert(args.begin(), "lint");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return runLintCommand(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(lint)

BOOST_AUTO_TEST_CASE(clean_template_has_no_findings) {
  auto findings = lintData("mapping_clean.json");
  BOOST_TEST(findings.empty(), describe(findings));
}

BOOST_AUTO_TEST_CASE(each_mistake_is_located) {
  auto f = lintData("mapping_bad.json");
  const std::string p = "/resources/0/resource";
  EXPECT_FINDING(f, p + "/nickname", "Patient.nickname", "unknown element");
  EXPECT_FINDING(f, p + "/deceased", "Patient.deceased", "deceasedBoolean, deceasedDateTime");
  EXPECT_FINDING(f, p + "/active", "Patient.active", "JSON boolean");
  EXPECT_FINDING(f, p + "/gender", "Patient.gender", "administrative-gender");
  EXPECT_FINDING(f, p + "/birthDate", "Patient.birthDate", "not an object");
  EXPECT_FINDING(f, p + "/name", "Patient.name", "JSON array");
  EXPECT_FINDING(f, p + "/telecom/0/system", "Patient.telecom.system", "\"whatsapp\"");
  EXPECT_FINDING(f, p + "/telecom/0/rank", "Patient.telecom.rank", "positiveInt");
  const std::string a = "/resources/1/resource";
  EXPECT_FINDING(f, a + "/status", "Appointment.status", "$translate yields a Coding");
  EXPECT_FINDING(f, a + "/start", "Appointment.start", "seconds");
  EXPECT_FINDING(f, a + "/participant/0/status", "Appointment.participant.status", "\"confirmed\"");
  EXPECT_FINDING(f, "/resources/2/resource", "Coverage.payor", "never produced");
  EXPECT_FINDING(f, "/resources/2/resource/beneficiary", "Coverage.beneficiary",
                 "text template cannot produce");
  EXPECT_FINDING(f, "/resources/3/resource/resourceType", "Observation", "no StructureDefinition");
  EXPECT_FINDING(f, "/resources/4", "", "needs a \"resource\"");
  for (const auto& finding : f) BOOST_TEST(finding.file.ends_with("mapping_bad.json"));
  // Findings carry the line of the value in the file.
  for (const auto& finding : f) {
    if (finding.pointer == p + "/gender") BOOST_TEST(finding.line == 11);
    if (finding.pointer == a + "/participant/0/status") BOOST_TEST(finding.line == 23);
    if (finding.pointer == "/resources/4") BOOST_TEST(finding.line == 31);
  }
  BOOST_TEST(f.size() == 15u, describe(f));
}

BOOST_AUTO_TEST_CASE(single_templates_and_malformed_files) {
  rapidjson::Document d;
  d.Parse(R"({"resourceType":"Appointment","status":"booked",
    "participant":[{"status":"accepted","actor":{"reference":"{{ %ref.patient }}"}}],
    "requestedPeriod":[{"start":"{{ a }}","end":"2024-13-01"}]})");
  auto f = lintResourceTemplate(validator().definitions(), d, "inline.json", "");
  EXPECT_FINDING(f, "/requestedPeriod/0/end", "Appointment.requestedPeriod.end", "month");
  BOOST_TEST(f.size() == 1u, describe(f));
  f = lintData("patient.xml");
  BOOST_REQUIRE(f.size() == 1u);
  BOOST_TEST(f[0].message.find("malformed JSON") != std::string::npos);
  d.Parse(R"({"id":"x"})");
  f = lintMapping(validator().definitions(), d, "m.json");
  EXPECT_FINDING(f, "/resources", "", "\"resources\" array");
}

BOOST_AUTO_TEST_CASE(hl7_date_directives_and_hl7_output) {
  rapidjson::Document d;
  d.Parse(R"({"resources":[{"resource":{"resourceType":"Patient",
    "birthDate":{"$fromHl7Date":{"value":"{{ hl7('PID-7.1') }}","as":"date"}},
    "deceasedBoolean":{"$fromHl7Date":{"value":"{{ hl7('PID-29.1') }}"}},
    "maritalStatus":{"$toHl7Date":"{{ birth }}"}}}]})");
  auto f = lintMapping(validator().definitions(), d, "m.json");
  const std::string p = "/resources/0/resource";
  EXPECT_FINDING(f, p + "/deceasedBoolean", "Patient.deceasedBoolean",
                 "$fromHl7Date yields a dateTime");
  EXPECT_FINDING(f, p + "/maritalStatus", "Patient.maritalStatus", "$toHl7Date yields text");
  BOOST_TEST(f.size() == 2u, describe(f));  // the date into birthDate is fine
  // An HL7 v2 output mapping has no FHIR template to check.
  d.Parse(R"({"output":"hl7v2","segments":[{"MSH-9.1":"SIU"}]})");
  f = lintMapping(validator().definitions(), d, "siu.json");
  BOOST_TEST(f.empty(), describe(f));
}

BOOST_AUTO_TEST_CASE(conditional_update_and_its_refusals) {
  rapidjson::Document d;
  d.Parse(R"({"resources":[
    {"key":"a","resource":{"resourceType":"Patient"},"ifNoneExist":"identifier=urn:s|{{ id }}","conditional":"update"},
    {"key":"b","resource":{"resourceType":"Patient"},"ifNoneExist":"identifier=urn:s|{{ id }}","conditional":"create"},
    {"key":"c","resource":{"resourceType":"Patient"},"conditional":"update"},
    {"key":"d","resource":{"resourceType":"Patient"},"ifNoneExist":" ","conditional":"update"},
    {"key":"e","resource":{"resourceType":"Patient"},"ifNoneExist":"identifier=x","conditional":"upsert"},
    {"key":"f","resource":{"resourceType":"Patient"},"ifNoneExist":"identifier=x","conditional":["update"]},
    {"key":"g","resource":{"resourceType":"Patient"},"ifNoneExist":{"identifier":"x"}}]})");
  auto f = lintMapping(validator().definitions(), d, "m.json");
  EXPECT_FINDING(f, "/resources/2/conditional", "", "a conditional update needs the search");
  EXPECT_FINDING(f, "/resources/3/conditional", "", "a conditional update needs the search");
  EXPECT_FINDING(f, "/resources/4/conditional", "", "must be \"create\"");
  EXPECT_FINDING(f, "/resources/5/conditional", "", "must be \"create\"");
  EXPECT_FINDING(f, "/resources/6/ifNoneExist", "", "a search string");
  BOOST_TEST(f.size() == 5u, describe(f));  // entries 0 and 1 are fine
  d.Parse(R"({"output":"resources","resources":[
    {"key":"a","resource":{"resourceType":"Patient"},"ifNoneExist":"identifier=x","conditional":"update"}]})");
  f = lintMapping(validator().definitions(), d, "m.json");
  EXPECT_FINDING(f, "/resources/0/conditional", "", "only for \"output\": \"transaction\"");
  BOOST_TEST(f.size() == 1u, describe(f));
  // The shipped scheduling mapping, which uses it, is clean.
  f = lintMappingFile(validator().definitions(),
                      sourceDir() + "/mappings/scheduling-appointment-event.json");
  BOOST_TEST(f.empty(), describe(f));
}

BOOST_AUTO_TEST_CASE(lint_command_exit_codes) {
  std::string data = sourceDir() + "/tests/data/fhir/";
  BOOST_TEST(runLint({data + "mapping_clean.json"}) == 0);
  BOOST_TEST(runLint({data + "mapping_clean.json", data + "mapping_bad.json"}) == 1);
  BOOST_TEST(runLint({data + "missing.json"}) == 2);
  BOOST_TEST(runLint({"--what"}) == 2);
}

BOOST_AUTO_TEST_SUITE_END()
