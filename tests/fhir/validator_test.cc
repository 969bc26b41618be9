// The validator against the shipped fhir-profiles/: realistic resources pass, and each class of
// error is reported with its severity, issue code and FHIRPath location.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/test/unit_test.hpp>

#include "engine/fhir/fhir_cli.h"
#include "test_support.h"

using namespace switchboard::fhir;
using namespace switchboard::fhir::test;

namespace {

std::vector<Issue> check(const std::string& json, const ValidationOptions& options = {}) {
  return validator().validateText(json, options);
}

ValidationOptions usCore() {
  ValidationOptions o;
  o.profiles.push_back("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient");
  return o;
}

#define EXPECT_ISSUE(issues, severity, code, expression, text)                            \
  BOOST_TEST(hasIssue(issues, severity, code, expression, text),                          \
             "expected " << severity << " " << code << " @" << expression << " (" << text \
                         << ") in:\n"                                                     \
                         << describe(issues))

const char* kBooked = R"({"resourceType":"Appointment","status":"booked",
  "start":"2024-04-02T09:00:00-05:00","end":"2024-04-02T09:30:00-05:00",
  "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})";

}  // namespace

BOOST_AUTO_TEST_SUITE(definitions)

BOOST_AUTO_TEST_CASE(shipped_subset_loads_with_types_value_sets_and_profile) {
  const Definitions& d = validator().definitions();
  for (const char* t : {"Patient", "Appointment", "Coverage", "QuestionnaireResponse", "Slot",
                        "Schedule", "Practitioner", "Organization", "Bundle", "OperationOutcome",
                        "HumanName", "Reference", "Extension", "instant", "positiveInt"}) {
    BOOST_TEST(d.type(t) != nullptr, t);
  }
  BOOST_TEST(d.isPrimitive("instant"));
  BOOST_TEST(!d.isPrimitive("HumanName"));
  BOOST_TEST(d.isResourceType("Appointment"));
  const auto* us = d.byUrl("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|5.0.1");
  BOOST_REQUIRE(us);
  BOOST_TEST(us->isProfile());
  BOOST_TEST(us->element("Patient.identifier")->min == 1u);
  const auto* status = d.valueSet("http://hl7.org/fhir/ValueSet/appointmentstatus|4.0.1");
  BOOST_REQUIRE(status);
  BOOST_TEST(status->complete);
  BOOST_TEST(status->containsCode("booked"));
  BOOST_TEST(!status->containsCode("confirmed"));
  // Nested concepts of issue-type are part of the expansion.
  const auto* issueType = d.valueSet("http://hl7.org/fhir/ValueSet/issue-type");
  BOOST_REQUIRE(issueType);
  BOOST_TEST(issueType->containsCode("code-invalid"));
  // Every invariant of the shipped definitions compiles with the FHIRPath engine.
  for (const char* t : {"Patient", "Appointment", "Coverage", "QuestionnaireResponse", "Bundle",
                        "Slot", "Schedule", "Practitioner", "Organization", "OperationOutcome",
                        "Period", "Reference", "Extension", "Quantity", "Narrative"}) {
    for (const auto& el : d.type(t)->elements)
      for (const auto& c : el.constraints)
        BOOST_TEST((c.expression.has_value() || c.expressionText.empty()),
                   t << " " << c.key << ": " << c.compileError);
  }
}

// The child table compares keys a word at a time (8 or 4 bytes, the last word overlapping):
// every key length from 1 to 40 is found, and a key differing in any one byte, or one byte
// longer or shorter, is not.
BOOST_AUTO_TEST_CASE(child_index_compares_every_byte) {
  ChildIndex index;
  std::vector<std::string> keys;
  for (std::size_t n = 1; n <= 40; ++n) {
    std::string key;
    for (std::size_t i = 0; i < n; ++i) key += static_cast<char>('a' + (i * 7 + n) % 26);
    keys.push_back(key);
    index.add(key, ChildSlot{static_cast<std::uint32_t>(n), nullptr, false});
  }
  for (const std::string& key : keys) {
    BOOST_TEST_CONTEXT(key) {
      const ChildSlot* slot = index.find(key);
      BOOST_REQUIRE(slot);
      BOOST_TEST(slot->index == key.size());
      for (std::size_t i = 0; i < key.size(); ++i) {
        std::string other = key;
        other[i] = static_cast<char>(other[i] ^ 0x20);  // same hash bytes for most positions
        BOOST_TEST(!index.find(other), "differs at " << i);
      }
      BOOST_TEST(!index.find(key + "x"));
    }
  }
}

BOOST_AUTO_TEST_CASE(missing_directory_is_an_error) {
  auto v = Validator::fromDirectory("/nonexistent/fhir-profiles");
  BOOST_TEST(!v);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(valid_resources)

BOOST_AUTO_TEST_CASE(realistic_examples_have_no_errors) {
  for (const char* f : {"patient.json", "appointment.json", "coverage.json",
                        "questionnaire_response.json", "bundle_transaction.json", "patient.xml"}) {
    auto issues = validator().validateText(dataFile(f));
    BOOST_TEST(errors(issues).empty(), f << ":\n" << describe(issues));
  }
}

BOOST_AUTO_TEST_CASE(us_core_patient_passes_the_profile) {
  auto issues = check(dataFile("patient.json"), usCore());
  BOOST_TEST(errors(issues).empty(), describe(issues));
}

BOOST_AUTO_TEST_CASE(value_document_api_matches_text_api) {
  rapidjson::Document d;
  d.Parse(kBooked);
  auto issues = validator().validate(d);
  BOOST_TEST(errors(issues).empty(), describe(issues));
  d["status"].SetString("nope");
  BOOST_TEST(hasErrors(validator().validate(d)));
}

BOOST_AUTO_TEST_CASE(one_validator_serves_many_threads) {
  const std::string good = dataFile("bundle_transaction.json");
  const std::string bad = R"({"resourceType":"Appointment","status":"booked",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})";
  const auto goodIssues = describe(check(good));
  const auto badIssues = describe(check(bad));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        bool even = (i + t) % 2 == 0;
        auto issues = describe(check(even ? good : bad));
        if (issues != (even ? goodIssues : badIssues)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  BOOST_TEST(mismatches.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors_found)

BOOST_AUTO_TEST_CASE(minimum_cardinality) {
  auto issues = check(R"({"resourceType":"Appointment","status":"proposed"})");
  EXPECT_ISSUE(issues, "error", "required", "Appointment.participant", "minimum required = 1");
  issues = check(R"({"resourceType":"Coverage","status":"active"})");
  EXPECT_ISSUE(issues, "error", "required", "Coverage.beneficiary", "minimum required = 1");
  EXPECT_ISSUE(issues, "error", "required", "Coverage.payor", "");
  // Nested: participant.status is 1..1.
  issues = check(R"({"resourceType":"Appointment","status":"proposed",
                     "participant":[{"actor":{"reference":"Patient/1"}}]})");
  EXPECT_ISSUE(issues, "error", "required", "Appointment.participant[0].status", "");
  issues = check(R"({"resourceType":"QuestionnaireResponse","status":"completed",
                     "item":[{"text":"no link id"}]})");
  EXPECT_ISSUE(issues, "error", "required", "QuestionnaireResponse.item[0].linkId", "");
}

BOOST_AUTO_TEST_CASE(maximum_cardinality_and_array_shape) {
  auto issues = check(R"({"resourceType":"Patient","gender":["female","male"]})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.gender", "maximum allowed = 1");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.gender", "must not be a JSON array");
  issues = check(R"({"resourceType":"Patient","name":{"family":"Rivera"}})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.name", "must be a JSON array");
}

BOOST_AUTO_TEST_CASE(unknown_elements) {
  auto issues = check(R"({"resourceType":"Patient","nickname":"Annie",
                          "name":[{"family":"Rivera","middle":"L"}]})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.nickname", "unknown element");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.name[0].middle", "unknown element");
  // A choice element with a type it does not allow.
  issues = check(R"({"resourceType":"Patient","deceasedString":"yes"})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.deceasedString", "unknown element");
  // The bare choice name is not an element either.
  issues = check(R"({"resourceType":"Patient","deceased":true})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.deceased", "unknown element");
}

// An object of more members than the walk resolves in its own frame (24) goes to the heap: the
// same issues, in the same order, for its known and unknown members, in and out of definition
// order.
BOOST_AUTO_TEST_CASE(objects_of_many_members) {
  for (bool reversed : {false, true}) {
    std::vector<std::string> members = {R"("gender":"unknown-code")", R"("birthDate":"1990-13-01")",
                                        R"("active":true)", R"("id":"p1")"};
    for (int i = 0; i < 30; ++i)
      members.push_back("\"x" + std::to_string(i) + "\":" + std::to_string(i));
    if (reversed) std::reverse(members.begin(), members.end());
    std::string json = R"({"resourceType":"Patient")";
    for (const auto& m : members) json += "," + m;
    auto issues = check(json + "}");
    std::vector<std::string> unknown;
    for (const auto& i : issues)
      if (i.diagnostics.starts_with("unknown element")) unknown.push_back(i.expression);
    BOOST_TEST_REQUIRE(unknown.size() == 30u, describe(issues));
    for (int i = 0; i < 30; ++i)
      BOOST_TEST(unknown[reversed ? 29 - i : i] == "Patient.x" + std::to_string(i));
    EXPECT_ISSUE(issues, "error", "code-invalid", "Patient.gender", "unknown-code");
    EXPECT_ISSUE(issues, "error", "value", "Patient.birthDate", "");
  }
}

BOOST_AUTO_TEST_CASE(bad_instants) {
  auto issues = check(R"({"resourceType":"Appointment","status":"booked",
    "start":"2024-04-02T09:00-05:00","end":"2024-04-02T09:30:00",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})");
  EXPECT_ISSUE(issues, "error", "value", "Appointment.start", "seconds");
  EXPECT_ISSUE(issues, "error", "value", "Appointment.end", "time zone");
  // The diagnostics never quote the value itself.
  for (const auto& i : issues) BOOST_TEST(i.diagnostics.find("09:30") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(other_primitive_formats) {
  auto issues = check(R"({"resourceType":"Patient","active":"true","birthDate":"1987-02-30",
    "telecom":[{"system":"phone","value":"+15551234567","rank":0}],
    "multipleBirthInteger":1.5,"id":"bad id"})");
  EXPECT_ISSUE(issues, "error", "value", "Patient.active", "JSON boolean");
  EXPECT_ISSUE(issues, "error", "value", "Patient.birthDate", "day");
  EXPECT_ISSUE(issues, "error", "value", "Patient.telecom[0].rank", "positiveInt");
  EXPECT_ISSUE(issues, "error", "value", "Patient.multipleBirthInteger", "JSON integer");
  EXPECT_ISSUE(issues, "error", "value", "Patient.id", "an id");
}

BOOST_AUTO_TEST_CASE(required_binding) {
  auto issues = check(R"({"resourceType":"Appointment","status":"confirmed",
    "start":"2024-04-02T09:00:00Z","end":"2024-04-02T09:30:00Z",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"yes"}]})");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Appointment.status", "'confirmed'");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Appointment.participant[0].status", "'yes'");
  issues = check(
      R"({"resourceType":"Patient","gender":"F","telecom":[{"system":"whatsapp","value":"1"}]})");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Patient.gender", "administrative-gender");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Patient.telecom[0].system", "'whatsapp'");
  // Codes are case-sensitive.
  issues = check(R"({"resourceType":"Patient","gender":"Female"})");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Patient.gender", "");
}

BOOST_AUTO_TEST_CASE(appointment_invariants) {
  auto issues = check(R"({"resourceType":"Appointment","status":"booked",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Appointment", "app-3");
  // proposed without times is fine.
  issues = check(R"({"resourceType":"Appointment","status":"proposed",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})");
  BOOST_TEST(errors(issues).empty(), describe(issues));
  // app-2: start without end.
  issues =
      check(R"({"resourceType":"Appointment","status":"proposed","start":"2024-04-02T09:00:00Z",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Appointment", "app-2");
  // app-1 sits on each participant.
  issues = check(R"({"resourceType":"Appointment","status":"proposed",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"accepted"},{"status":"accepted"}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Appointment.participant[1]", "app-1");
  BOOST_TEST(!hasIssue(issues, "error", "invariant", "Appointment.participant[0]", "app-1"));
}

BOOST_AUTO_TEST_CASE(invariants_can_be_switched_off) {
  ValidationOptions structural;
  structural.invariants = false;
  auto issues = check(R"({"resourceType":"Appointment","status":"booked",
    "participant":[{"actor":{"reference":"Patient/1"},"status":"maybe"}]})",
                      structural);
  BOOST_TEST(!hasIssue(issues, "error", "invariant", "Appointment", "app-3"));
  EXPECT_ISSUE(issues, "error", "code-invalid", "Appointment.participant[0].status", "'maybe'");
}

BOOST_AUTO_TEST_CASE(questionnaire_response_and_datatype_invariants) {
  auto issues = check(R"({"resourceType":"QuestionnaireResponse","status":"completed",
    "item":[{"linkId":"a","answer":[{"valueString":"x"}],"item":[{"linkId":"b"}]}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "QuestionnaireResponse.item[0]", "qrs-1");
  // per-1 on a Period inside a backbone element.
  issues =
      check(R"({"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/1"},
    "payor":[{"reference":"Organization/1"}],"period":{"start":"2024-12-31","end":"2024-01-01"}})");
  EXPECT_ISSUE(issues, "error", "invariant", "Coverage.period", "per-1");
  // ext-1: an extension with both a value and nested extensions.
  issues = check(R"({"resourceType":"Patient","extension":[{"url":"http://example.org/x",
    "valueString":"a","extension":[{"url":"y","valueBoolean":true}]}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient.extension[0]", "ext-1");
}

BOOST_AUTO_TEST_CASE(contained_resources_and_local_references) {
  const std::string org =
      R"("contained":[{"resourceType":"Organization","id":"org1","name":"Acme"}])";
  auto issues = check(R"({"resourceType":"Patient",)" + org + "}");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient", "dom-3");
  issues = check(R"({"resourceType":"Patient",)" + org +
                 R"(,"managingOrganization":{"reference":"#org1"}})");
  BOOST_TEST(errors(issues).empty(), describe(issues));
  issues = check(R"({"resourceType":"Patient",)" + org +
                 R"(,"managingOrganization":{"reference":"#org2"}})");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient.managingOrganization", "ref-1");
  // The contained resource is validated too.
  issues = check(R"({"resourceType":"Patient","contained":[{"resourceType":"Organization",
    "id":"org1","active":"yes"}],"managingOrganization":{"reference":"#org1"}})");
  EXPECT_ISSUE(issues, "error", "value", "Patient.contained[0].active", "JSON boolean");
}

BOOST_AUTO_TEST_CASE(empty_values_are_forbidden) {
  auto issues = check(R"({"resourceType":"Patient","name":[{"family":"Rivera","given":[""]}],
    "maritalStatus":{},"telecom":[],"address":[{"id":"a1"}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient.name[0].given[0]", "ele-1");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient.maritalStatus", "ele-1");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.telecom", "empty array");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient.address[0]", "ele-1");
  issues = check(R"({"resourceType":"Patient","birthDate":null})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.birthDate", "null");
}

BOOST_AUTO_TEST_CASE(primitive_extensions) {
  // A value-less primitive that carries only an extension is valid.
  auto issues = check(R"({"resourceType":"Patient","_birthDate":{"extension":[{
    "url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}})");
  BOOST_TEST(errors(issues).empty(), describe(issues));
  issues = check(R"({"resourceType":"Patient","_name":{"id":"x"},"name":[{"family":"A"}]})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient._name", "only allowed beside a primitive");
  issues = check(R"({"resourceType":"Patient","_birthDate":{"colour":"red"},"birthDate":"1987"})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient.birthDate.colour", "unknown element");
}

// "_name" without "name" where the element is no primitive: reported and not walked (the walk
// used to count it with no value to look at, and crashed).
BOOST_AUTO_TEST_CASE(lone_extension_part_of_a_complex_element) {
  auto issues = check(R"({"resourceType":"Patient","_name":{"id":"x"},"_contact":[{}],
    "_birthDate":{"id":"b"}})");
  EXPECT_ISSUE(issues, "error", "structure", "Patient._name", "only allowed beside a primitive");
  EXPECT_ISSUE(issues, "error", "structure", "Patient._contact", "only allowed beside a primitive");
  BOOST_TEST(errors(issues).size() == 2u, describe(issues));
  issues = check(R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":
    {"resourceType":"Appointment","_participant":{}}}]})");
  EXPECT_ISSUE(issues, "error", "structure", "Bundle.entry[0].resource._participant",
               "only allowed beside a primitive");
  EXPECT_ISSUE(issues, "error", "required", "Bundle.entry[0].resource.participant", "minimum");
}

BOOST_AUTO_TEST_CASE(us_core_patient_profile) {
  const std::string bare =
      R"({"resourceType":"Patient","gender":"female","birthDate":"1987-02-28"})";
  BOOST_TEST(errors(check(bare)).empty(), "the base definition allows an empty patient");
  auto issues = check(bare, usCore());
  EXPECT_ISSUE(issues, "error", "required", "Patient.identifier", "us-core-patient");
  EXPECT_ISSUE(issues, "error", "required", "Patient.name", "us-core-patient");
  issues = check(R"({"resourceType":"Patient","identifier":[{"value":"123"}],
    "name":[{"text":"Ana Rivera"}],"telecom":[{"value":"+15551234567"}]})",
                 usCore());
  EXPECT_ISSUE(issues, "error", "required", "Patient.identifier[0].system", "");
  EXPECT_ISSUE(issues, "error", "required", "Patient.gender", "");
  EXPECT_ISSUE(issues, "error", "required", "Patient.telecom[0].system", "");
  EXPECT_ISSUE(issues, "error", "invariant", "Patient", "us-core-6");
  // Extension slices count by url: US Core allows one birthsex.
  issues = check(R"({"resourceType":"Patient","identifier":[{"system":"urn:x","value":"1"}],
    "name":[{"family":"Rivera"}],"gender":"female","extension":[
    {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"},
    {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"M"}]})",
                 usCore());
  EXPECT_ISSUE(issues, "error", "structure", "Patient.extension", "birthsex: maximum allowed = 1");
  BOOST_TEST(errors(issues).size() == 1u, describe(issues));
  // The profile is also picked up from meta.profile.
  issues = check(R"({"resourceType":"Patient","meta":{"profile":[
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"gender":"male"})");
  EXPECT_ISSUE(issues, "error", "required", "Patient.identifier", "");
  // An unknown declared profile is information, not an error.
  issues = check(R"({"resourceType":"Patient","meta":{"profile":["http://example.org/p"]}})");
  EXPECT_ISSUE(issues, "information", "not-supported", "Patient.meta.profile", "");
  BOOST_TEST(!hasErrors(issues));
}

BOOST_AUTO_TEST_CASE(bundle_entries_and_references) {
  auto doc = dataFile("bundle_transaction.json");
  rapidjson::Document d;
  d.Parse(doc.c_str());
  d["entry"][1]["resource"]["status"].SetString("confirmed");
  d["entry"][1]["resource"].RemoveMember("end");
  d["entry"][2]["resource"]["subject"]["reference"].SetString(
      "urn:uuid:00000000-0000-4000-8000-000000000000");
  auto issues = validator().validate(d);
  EXPECT_ISSUE(issues, "error", "code-invalid", "Bundle.entry[1].resource.status", "");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle.entry[1].resource", "app-2");
  EXPECT_ISSUE(issues, "error", "not-found", "Bundle.entry[2].resource.subject.reference",
               "no entry");
  // The profile applies to the Patient entry only.
  ValidationOptions o = usCore();
  d.Parse(doc.c_str());
  d["entry"][0]["resource"].RemoveMember("identifier");
  issues = validator().validate(d, o);
  EXPECT_ISSUE(issues, "error", "required", "Bundle.entry[0].resource.identifier", "");
  // bdl-7: duplicate fullUrl.
  d.Parse(doc.c_str());
  d["entry"][2]["fullUrl"].SetString("urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11");
  issues = validator().validate(d);
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle", "bdl-7");
  // A reference to a resource type the element does not allow.
  issues = check(R"({"resourceType":"Coverage","status":"active",
    "beneficiary":{"reference":"Organization/1"},"payor":[{"reference":"Organization/1"}]})");
  EXPECT_ISSUE(issues, "error", "structure", "Coverage.beneficiary.reference", "only Patient");
  // Resources not in fhir-profiles/ are reported, not failed.
  issues = check(R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":
    "urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11","resource":{"resourceType":"Observation"}}]})");
  EXPECT_ISSUE(issues, "warning", "not-supported", "Bundle.entry[0].resource", "Observation");
  BOOST_TEST(!hasErrors(issues), describe(issues));
}

BOOST_AUTO_TEST_CASE(bundle_invariants) {
  // bdl-5: an entry needs a resource, a request or a response.
  auto issues = check(R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":
    "urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11"}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle.entry[0]", "bdl-5");
  // bdl-8: no /_history/ in fullUrl.
  issues = check(R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":
    "http://example.org/fhir/Patient/1/_history/2","resource":{"resourceType":"Patient"}}]})");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle.entry[0]", "bdl-8");
  BOOST_TEST(!hasIssue(issues, "error", "invariant", "Bundle.entry[0]", "bdl-5"));
  // bdl-9 and bdl-10 apply to documents only.
  const std::string entry = R"("entry":[{"fullUrl":"urn:uuid:0b9a1f43-9a7d-4c3e-8f36-2f5c9e0c1a11",
    "resource":{"resourceType":"Patient"}}])";
  issues = check(R"({"resourceType":"Bundle","type":"document",)" + entry + "}");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle", "bdl-9");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle", "bdl-10");
  issues = check(R"({"resourceType":"Bundle","type":"collection",)" + entry + "}");
  BOOST_TEST(errors(issues).empty(), describe(issues));
  // bdl-3: a transaction entry needs a request; a collection entry must not have one.
  issues = check(R"({"resourceType":"Bundle","type":"transaction",)" + entry + "}");
  EXPECT_ISSUE(issues, "error", "invariant", "Bundle", "bdl-3");
}

BOOST_AUTO_TEST_CASE(warnings_do_not_count_as_errors) {
  auto issues = check(kBooked);
  EXPECT_ISSUE(issues, "warning", "invariant", "Appointment", "dom-6");
  BOOST_TEST(!hasErrors(issues));
  // With a narrative there is no dom-6 warning.
  issues = check(R"({"resourceType":"Patient","text":{"status":"generated",
    "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ana Rivera</div>"}})");
  BOOST_TEST(issues.empty(), describe(issues));
  ValidationOptions quiet;
  quiet.bestPractice = false;
  BOOST_TEST(!hasIssue(check(kBooked, quiet), "warning", "invariant", "Appointment", "dom-6"));
}

BOOST_AUTO_TEST_CASE(hostile_nesting_is_bounded) {
  std::string items;
  for (int i = 0; i < 500; ++i) items += R"({"linkId":"x","item":[)";
  items += R"({"linkId":"leaf"})";
  for (int i = 0; i < 500; ++i) items += "]}";
  auto issues = check(R"({"resourceType":"QuestionnaireResponse","status":"completed","item":[)" +
                      items + "]}");
  BOOST_TEST(hasErrors(issues));
  bool tooDeep = false;
  for (const auto& i : issues) tooDeep = tooDeep || i.code == "too-long";
  BOOST_TEST(tooDeep, describe(issues));
}

BOOST_AUTO_TEST_CASE(unparsable_input_is_fatal) {
  auto issues = check("{\"resourceType\": ");
  BOOST_REQUIRE_EQUAL(issues.size(), 1u);
  BOOST_TEST(issues[0].severity == "fatal");
  issues = check("[1,2]");
  BOOST_TEST(hasErrors(issues));
  issues = check(R"({"status":"booked"})");
  EXPECT_ISSUE(issues, "error", "structure", "Resource", "resourceType");
  issues = check("<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"F\"/></Patient>");
  EXPECT_ISSUE(issues, "error", "code-invalid", "Patient.gender", "");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(operation_outcome)

BOOST_AUTO_TEST_CASE(issues_become_an_operation_outcome) {
  auto issues = check(R"({"resourceType":"Patient","gender":"F"})");
  rapidjson::Document oo;
  oo.Parse(toOperationOutcomeJson(issues).c_str());
  BOOST_REQUIRE(!oo.HasParseError());
  BOOST_TEST(std::string(oo["resourceType"].GetString()) == "OperationOutcome");
  bool found = false;
  for (const auto& i : oo["issue"].GetArray()) {
    if (std::string(i["code"].GetString()) == "code-invalid") {
      found = true;
      BOOST_TEST(std::string(i["severity"].GetString()) == "error");
      BOOST_TEST(std::string(i["expression"][0].GetString()) == "Patient.gender");
    }
  }
  BOOST_TEST(found);
  // No issues: one informational issue, as OperationOutcome needs at least one.
  oo.Parse(toOperationOutcomeJson({}).c_str());
  BOOST_TEST(oo["issue"].Size() == 1u);
  BOOST_TEST(std::string(oo["issue"][0]["severity"].GetString()) == "information");
  // The outcome validates against the OperationOutcome definition.
  auto self = check(toOperationOutcomeJson(issues));
  BOOST_TEST(errors(self).empty(), describe(self));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(validate_command)

namespace {

int runValidate(std::vector<std::string> args) {
  setenv("SWITCHBOARD_FHIR_PROFILES", (sourceDir() + "/fhir-profiles").c_str(), 1);
  std::vector<char*> argv;
  args.insert(args.begin(), "validate");
  for (auto& a : args) argv.push_back(a.data());
  return runValidateCommand(static_cast<int>(argv.size()), argv.data());
}

std::string tempFile(const std::string& content) {
  auto path = std::filesystem::temp_directory_path() /
              ("fhir_validate_" + std::to_string(std::rand()) + ".json");
  std::ofstream(path) << content;
  return path.string();
}

}  // namespace

BOOST_AUTO_TEST_CASE(exit_codes) {
  std::string data = sourceDir() + "/tests/data/fhir/";
  BOOST_TEST(runValidate({data + "patient.json"}) == 0);
  BOOST_TEST(runValidate({data + "patient.xml"}) == 0);
  BOOST_TEST(runValidate({data + "patient.json", "--profile",
                          "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}) == 0);
  std::string bad = tempFile(R"({"resourceType":"Patient","gender":"F"})");
  BOOST_TEST(runValidate({bad}) == 1);
  std::string garbage = tempFile("not json");
  BOOST_TEST(runValidate({garbage}) == 1);
  std::string noId = tempFile(R"({"resourceType":"Patient","gender":"female"})");
  BOOST_TEST(runValidate({noId}) == 0);
  BOOST_TEST(runValidate({noId, "--profile", "us-core-patient"}) == 1);
  BOOST_TEST(runValidate({noId, "--profile", "http://example.org/unknown"}) == 2);
  BOOST_TEST(runValidate({"/nonexistent/file.json"}) == 2);
  BOOST_TEST(runValidate({}) == 2);
  BOOST_TEST(runValidate({noId, "--bogus"}) == 2);
  for (const auto& f : {bad, garbage, noId}) std::filesystem::remove(f);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(profile_values)

// A profile of Patient made in the test: gender fixed to "female", maritalStatus must carry the
// v3 "M" coding (pattern), birthDate required.
BOOST_AUTO_TEST_CASE(fixed_and_pattern_values) {
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& e : std::filesystem::directory_iterator(sourceDir() + "/fhir-profiles"))
    if (e.path().extension() == ".json") texts.emplace_back(e.path().string(), readFile(e.path()));
  rapidjson::Document sd;
  sd.Parse(readFile(sourceDir() + "/fhir-profiles/StructureDefinition-Patient.json").c_str());
  auto& a = sd.GetAllocator();
  sd["url"].SetString("http://example.org/StructureDefinition/married-women", a);
  sd["id"].SetString("married-women", a);
  sd["derivation"].SetString("constraint", a);
  for (auto& el : sd["snapshot"]["element"].GetArray()) {
    std::string path = el["path"].GetString();
    if (path == "Patient.gender") el.AddMember("fixedCode", "female", a);
    if (path == "Patient.birthDate") el["min"].SetUint(1);
    if (path == "Patient.maritalStatus") {
      rapidjson::Document p(&a);
      p.Parse(R"({"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                             "code":"M"}]})");
      el.AddMember("patternCodeableConcept", rapidjson::Value(p, a), a);
    }
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  sd.Accept(writer);
  texts.emplace_back("married-women.json", buffer.GetString());
  auto defs = Definitions::loadTexts(texts);
  BOOST_REQUIRE(defs.has_value());
  Validator v(*defs);
  ValidationOptions o;
  o.profiles.push_back("married-women");

  auto issues = v.validateText(R"({"resourceType":"Patient","gender":"female","birthDate":"1980",
    "maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
    "code":"M","display":"Married"}],"text":"married"}})",
                               o);
  BOOST_TEST(errors(issues).empty(), describe(issues));
  issues = v.validateText(R"({"resourceType":"Patient","gender":"male",
    "maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
    "code":"S"}]}})",
                          o);
  EXPECT_ISSUE(issues, "error", "value", "Patient.gender", "fixedCode");
  EXPECT_ISSUE(issues, "error", "value", "Patient.maritalStatus", "patternCodeableConcept");
  EXPECT_ISSUE(issues, "error", "required", "Patient.birthDate", "married-women");
  // Without the profile the same patient is valid.
  BOOST_TEST(errors(v.validateText(R"({"resourceType":"Patient","gender":"male"})")).empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(plain_primitive_fast_path)

// The walk decides a single primitive of a plain element (ChildSlot::plainPrimitive) without
// items(); a "_name" sibling turns that path off, and an extension with only an id adds no issue
// of its own. So for every value, each resource below must yield the same issues with and without
// `"_name":{"id":"x1"}` beside it: the fast path against the full one, for every primitive kind
// the slots cover (code with a required binding, boolean, date, dateTime, instant, id of
// Resource.id, string, markdown, uri, canonical, positiveInt, unsignedInt, decimal) and values of
// every JSON shape, valid and not. (Not null: beside "_name" the element exists for FHIRPath, so
// invariants such as app-2 read it differently; null never takes the fast path anyway.)
BOOST_AUTO_TEST_CASE(same_issues_as_the_full_item_check) {
  struct Slot {
    const char* resource;  // JSON members before the one under test
    const char* key;
  };
  const Slot slots[] = {
      {R"("resourceType":"Patient")", "gender"},
      {R"("resourceType":"Patient")", "active"},
      {R"("resourceType":"Patient")", "birthDate"},
      {R"("resourceType":"Patient")", "id"},
      {R"("resourceType":"Patient")", "implicitRules"},
      {R"("resourceType":"Patient")", "deceasedDateTime"},
      {R"("resourceType":"Patient")", "multipleBirthInteger"},
      {R"("resourceType":"Organization","name":"x")", "alias"},
      {R"("resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/1"},
        "payor":[{"reference":"Organization/1"}])",
       "subscriberId"},
      {R"("resourceType":"Appointment","status":"booked","participant":[{"status":"accepted",
        "actor":{"reference":"Patient/1"}}])",
       "minutesDuration"},
      {R"("resourceType":"Appointment","status":"booked","participant":[{"status":"accepted",
        "actor":{"reference":"Patient/1"}}],"start":"2024-04-02T09:00:00Z")",
       "end"},
      {R"("resourceType":"Appointment","participant":[{"status":"accepted",
        "actor":{"reference":"Patient/1"}}])",
       "status"},
      {R"("resourceType":"QuestionnaireResponse","status":"completed")", "questionnaire"},
      {R"("resourceType":"Bundle")", "type"},
      {R"("resourceType":"Bundle","type":"searchset")", "total"},
      {R"("resourceType":"Practitioner","qualification":[{"code":{"text":"x"}}],
        "communication":[{"text":"x"}],"name":[{"text":"x"}],"telecom":[{"value":"1"}],
        "address":[{"text":"x"}],"photo":[{"contentType":"image/png"}])",
       "language"},
  };
  const char* values[] = {R"("male")",
                          R"("booked")",
                          R"("transaction")",
                          R"("completed")",
                          R"("Female")",
                          R"("")",
                          R"(" x")",
                          R"("x ")",
                          R"("a b")",
                          R"("abc")",
                          R"("ABC-12.x")",
                          R"("urn:uuid:0bbc2234-1273-5dd6-901f-068d437e04e3")",
                          R"("http://example.org/fhir/Questionnaire/1")",
                          R"("1992-08-22")",
                          R"("1992-02-30")",
                          R"("1992")",
                          R"("2026-02-12T10:00:00-05:00")",
                          R"("2026-02-12T10:00:00")",
                          R"("2026-02-12T10:00")",
                          R"("en-US")",
                          R"("\u00e9t\u00e9")",
                          R"("line\nbreak")",
                          "0",
                          "1",
                          "-1",
                          "20",
                          "3.5",
                          "12345678901",
                          "true",
                          "false",
                          "{}",
                          R"({"a":1})",
                          R"({"id":"x"})"};
  ValidationOptions defaults, stage, noInvariants;
  stage.bestPractice = false;
  noInvariants.invariants = false;
  std::size_t compared = 0, withErrors = 0;
  for (const Slot& s : slots) {
    for (const char* v : values) {
      const std::string plain = std::string("{") + s.resource + ",\"" + s.key + "\":" + v + "}";
      const std::string full = std::string("{") + s.resource + ",\"" + s.key + "\":" + v + ",\"_" +
                               s.key + "\":{\"id\":\"x1\"}}";
      for (const ValidationOptions* o : {&defaults, &stage, &noInvariants}) {
        auto a = validator().validateText(plain, *o);
        auto b = validator().validateText(full, *o);
        BOOST_TEST(sameIssues(a, b), plain << "\nfast path:\n"
                                           << describe(a) << "full check:\n"
                                           << describe(b));
        ++compared;
        withErrors += !errors(a).empty();
      }
    }
  }
  // Both outcomes occur: values the fast path passes and values it leaves to items().
  BOOST_TEST(compared == std::size(slots) * std::size(values) * 3);
  BOOST_TEST(withErrors > compared / 4);
  BOOST_TEST(withErrors < compared);
}

// The shortcuts against the general path over the corpus (tests/data/fhir, the FHIRPath
// conformance inputs, the seed Flow's Bundle) and its mutations, shapes included (each member
// removed, null, {}, [], [{}], {"id":"x"}, [null], wrapped in an array, given a "_name" sibling,
// codes swapped): the same issues in the same order under four option sets.
BOOST_AUTO_TEST_CASE(shortcuts_report_what_the_general_path_reports) {
  ValidationOptions defaults, profile, stage, noInvariants;
  profile.profiles.push_back("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient");
  stage.bestPractice = false;
  noInvariants.invariants = false;
  std::size_t inputs = 0, withErrors = 0;
  auto compare = [&](const rapidjson::Value& resource, const std::string& what) {
    ++inputs;
    for (const ValidationOptions* o : {&defaults, &profile, &stage, &noInvariants}) {
      ValidationOptions general = *o;
      general.shortcuts = false;
      auto fast = validator().validate(resource, *o);
      auto full = validator().validate(resource, general);
      BOOST_TEST(sameIssues(fast, full), what << ": with shortcuts\n"
                                              << describe(fast) << "general path\n"
                                              << describe(full) << toText(resource));
      withErrors += o == &defaults && !errors(fast).empty();
    }
  };
  auto corpus = validCorpus();
  BOOST_TEST(corpus.size() >= 15u);
  for (const auto& [name, text] : corpus) {
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    BOOST_REQUIRE_MESSAGE(!doc.HasParseError(), name);
    compare(doc, name);
    std::size_t n = 0;
    mutations(
        doc,
        [&](const rapidjson::Value& variant) {
          compare(variant, name + " (mutation " + std::to_string(++n) + ")");
        },
        true);
  }
  BOOST_TEST_MESSAGE(inputs << " inputs compared, " << withErrors << " with errors");
  BOOST_TEST(inputs > 5000u);
  BOOST_TEST(withErrors > inputs / 4);
}

// The slots the test above relies on are plain, and those that must not be are not.
BOOST_AUTO_TEST_CASE(plain_slots_resolved_at_load) {
  const Definitions& d = validator().definitions();
  auto slot = [&](const char* type, const char* key) {
    const StructureDefinition* sd = d.type(type);
    BOOST_REQUIRE(sd);
    return sd->root()->childIndex->find(key);
  };
  for (auto [type, key] : {std::pair{"Patient", "gender"},
                           {"Patient", "active"},
                           {"Patient", "birthDate"},
                           {"Patient", "id"},
                           {"Appointment", "minutesDuration"},
                           {"Bundle", "type"},
                           {"Coverage", "subscriberId"},
                           {"Patient", "deceasedDateTime"}}) {
    const ChildSlot* s = slot(type, key);
    BOOST_REQUIRE(s);
    BOOST_TEST(s->plainPrimitive, type << "." << key);
  }
  // "_name" keys, repeating, complex and contentReference elements are not.
  for (auto [type, key] : {std::pair{"Patient", "_gender"},
                           {"Organization", "alias"},
                           {"Patient", "name"},
                           {"Patient", "text"}}) {
    const ChildSlot* s = slot(type, key);
    BOOST_REQUIRE(s);
    BOOST_TEST(!s->plainPrimitive, type << "." << key);
  }
  const StructureDefinition* sd = d.type("Patient");
  BOOST_TEST((sd->root()->childIndex->find("id")->kind == PrimitiveKind::kId));
}

BOOST_AUTO_TEST_SUITE_END()
