// Native invariants (engine/fhir/invariants.h) against the FHIRPath engine: over a corpus of
// valid resources (tests/data/fhir, the FHIRPath conformance inputs, the seed Flow's Bundle),
// hand-made invalid ones that break each natively checked invariant, and thousands of mutations
// of all of them (a member removed, set to null, moved to its "_name" primitive-extension form,
// codes swapped), the validator must report exactly the same issues whether invariants are
// decided natively or by FHIRPath alone, and the cross-check mode must find no disagreement.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/test/unit_test.hpp>

#include "engine/fhir/invariants.h"
#include "test_support.h"

using namespace switchboard::fhir;
using namespace switchboard::fhir::test;

namespace {

using rapidjson::Value;

// Resources made to break (or nearly break) each natively checked invariant.
const char* const kHandMade[] = {
    // ext-1: value and extensions, neither, a value type Extension does not allow, a null value
    R"({"resourceType":"Patient","extension":[{"url":"http://x/a","valueString":"v",
       "extension":[{"url":"b","valueCode":"c"}]},{"url":"http://x/b"},
       {"url":"http://x/c","valueFoo":"1"},{"url":"http://x/d","valueString":null},
       {"url":"http://x/e","_valueString":{"id":"q"}},{"url":"http://x/f","value":"1"}]})",
    // ref-1: local references resolved and not, no reference, a non-string one
    R"({"resourceType":"Patient","id":"p","contained":[{"resourceType":"Organization","id":"o",
       "name":"Acme"}],"managingOrganization":{"reference":"#o"},
       "generalPractitioner":[{"reference":"#missing"},{"display":"Dr No"},{"reference":7},
       {"reference":""},{"_reference":{"id":"r"}}]})",
    // cpt-2 and org-3: a value without a system, a home telecom; org-2; org-1
    R"({"resourceType":"Organization","telecom":[{"value":"555"},{"system":"phone",
       "value":"1","use":"home"},{"system":"email","_value":{"id":"x"}}],
       "address":[{"use":"home","city":"X"},{"city":"Y"},{"use":7}]})",
    R"({"resourceType":"Organization","active":true})",
    R"({"resourceType":"Organization","name":null,"identifier":[null]})",
    // att-1 and per-1
    R"({"resourceType":"Patient","photo":[{"data":"AAAA"},{"data":"AAAA","contentType":"image/png"}],
       "name":[{"family":"A","period":{"start":"2020-01-01","end":"2019-01-01"}},
       {"family":"B","period":{"start":"2020-01-01"}},{"family":"C","period":{"end":"2020"}},
       {"family":"D","period":{"start":"2020-01-01T10:00:00Z","end":"2020-01-01"}}]})",
    // pat-1, dom-2, dom-4, dom-5, dom-6 (narrative without div)
    R"({"resourceType":"Patient","text":{"status":"generated"},"contact":[{"gender":"male"},
       {"name":{"family":"X"}}],"contained":[{"resourceType":"Patient","id":"c1",
       "meta":{"versionId":"1","security":[{"code":"R"}]},
       "contained":[{"resourceType":"Patient","id":"c2"}]}],"link":[{"other":{"reference":"#c1"},
       "type":"seealso"}]})",
    R"({"resourceType":"Patient","text":{"status":"generated","div":"<div>x</div>"}})",
    R"({"resourceType":"Patient","text":{"status":"generated","_div":{"id":"d"}}})",
    R"({"resourceType":"Patient","text":[{"status":"generated"}]})",
    // app-1 .. app-4
    R"({"resourceType":"Appointment","status":"booked","start":"2024-04-02T09:00:00Z",
       "cancelationReason":{"text":"x"},"participant":[{"status":"accepted"},
       {"required":"required","status":"accepted"}]})",
    R"({"resourceType":"Appointment","status":"proposed","end":"2024-04-02T09:00:00Z",
       "participant":[{"actor":{"display":"A"},"status":"accepted"}]})",
    R"({"resourceType":"Appointment","participant":[{"actor":{"display":"A"},
       "status":"accepted"}]})",
    R"({"resourceType":"Appointment","status":"cancelled","cancelationReason":{"text":"x"},
       "participant":[{"actor":{"display":"A"},"status":"accepted"}]})",
    R"({"resourceType":"Appointment","_status":{"id":"s"},"participant":[{"type":[{"text":"t"}],
       "status":"accepted"}]})",
    // qrs-1
    R"({"resourceType":"QuestionnaireResponse","status":"completed","item":[{"linkId":"1",
       "answer":[{"valueString":"a"}],"item":[{"linkId":"1.1"}]},{"linkId":"2",
       "item":[{"linkId":"2.1","answer":[{"valueBoolean":true}]}]}]})",
    // qty-3 (Coverage.costToBeneficiary.valueQuantity)
    R"({"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/1"},
       "payor":[{"display":"P"}],"costToBeneficiary":[{"valueQuantity":{"value":1,"code":"mg"}},
       {"valueQuantity":{"value":1,"code":"mg","system":"http://unitsofmeasure.org"}}]})",
    // Bundles: bdl-1 .. bdl-12
    R"({"resourceType":"Bundle","type":"transaction","total":3,"entry":[{"fullUrl":"urn:uuid:1",
       "resource":{"resourceType":"Patient"},"search":{"mode":"match"}},
       {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},
       "request":{"method":"POST","url":"Patient"}},{"fullUrl":"http://x/Patient/1/_history/2"},
       {"response":{"status":"200"}}]})",
    R"({"resourceType":"Bundle","type":"document","entry":[{"fullUrl":"http://x/Patient/1",
       "resource":{"resourceType":"Patient","meta":{"versionId":"1"}}},
       {"fullUrl":"http://x/Patient/1","resource":{"resourceType":"Patient",
       "meta":{"versionId":"2"}}}]})",
    R"({"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"Patient"}}]})",
    R"({"resourceType":"Bundle","type":"history","total":1,"entry":[{"fullUrl":"urn:uuid:2",
       "resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/2"},
       "response":{"status":"200"}},{"fullUrl":"urn:uuid:2","resource":{"resourceType":"Patient"}}]})",
    // bdl-7 compares fullUrl & versionId as one text: "http://x/P/12" & "" = "http://x/P/1" & "2"
    R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://x/P/12",
       "resource":{"resourceType":"Patient"}},{"fullUrl":"http://x/P/1",
       "resource":{"resourceType":"Patient","meta":{"versionId":"2"}}},{"fullUrl":"http://x/P/1",
       "resource":{"resourceType":"Patient","meta":{"versionId":"23"}}}]})",
    R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://x/P/1",
       "resource":{"resourceType":"Patient","meta":{"versionId":"2"}}},{"fullUrl":"http://x/P/1",
       "resource":{"resourceType":"Patient","meta":{"versionId":"3"}}},{"fullUrl":"http://x/P/13",
       "resource":{"resourceType":"Patient","meta":{}}}]})",
    R"({"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"fullUrl":"urn:uuid:3",
       "resource":{"resourceType":"Patient"},"search":{"mode":"match"}}]})",
    R"({"resourceType":"Bundle","type":"batch-response","entry":[{"fullUrl":"urn:uuid:4",
       "response":{"status":"201"}},{"fullUrl":"urn:uuid:5","resource":{"resourceType":"Patient"}}]})",
    R"({"resourceType":"Bundle","entry":[{"fullUrl":"urn:uuid:6","resource":{"resourceType":"Patient"}},
       {"fullUrl":"urn:uuid:6","resource":{"resourceType":"Patient"}}]})",
    R"({"resourceType":"Bundle","type":"collection","entry":[null,{"fullUrl":"urn:uuid:7"},
       {"fullUrl":"urn:uuid:7","resource":{"resourceType":"Patient","meta":{"versionId":""}}},
       {"fullUrl":"urn:uuid:8","resource":{"resourceType":"Patient","meta":{"_versionId":{}}}}]})",
};

ValidationOptions engine(InvariantEngine e) {
  ValidationOptions o;
  o.invariantEngine = e;
  return o;
}

struct Tally {
  std::size_t inputs = 0;
  std::map<std::string, std::size_t> failures;  // invariant key -> issues reported
};

// Validates `resource` both ways and in cross-check mode; records which invariants failed.
void compare(const Value& resource, const std::string& what, Tally& tally) {
  ++tally.inputs;
  auto native = validator().validate(resource, engine(InvariantEngine::kNative));
  auto reference = validator().validate(resource, engine(InvariantEngine::kFhirPath));
  auto crossed = validator().validate(resource, engine(InvariantEngine::kCrossCheck));
  BOOST_TEST(sameIssues(native, reference), what << ": native\n"
                                                 << describe(native) << "FHIRPath\n"
                                                 << describe(reference) << toText(resource));
  for (const auto& i : crossed) {
    BOOST_TEST(i.code != "exception", what << ": " << i.expression << ": " << i.diagnostics << "\n"
                                           << toText(resource));
  }
  for (const auto& i : native) {
    if (i.code != "invariant") continue;
    auto colon = i.diagnostics.find(':');
    if (colon != std::string::npos) ++tally.failures[i.diagnostics.substr(0, colon)];
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(native_invariants)

BOOST_AUTO_TEST_CASE(the_universal_invariants_of_the_shipped_definitions_are_native) {
  const Definitions& d = validator().definitions();
  auto nativeOf = [&](const char* type, const char* key) -> const Constraint* {
    for (const auto& c : d.type(type)->root()->constraints)
      if (c.key == key) return &c;
    return nullptr;
  };
  for (auto [type, key] : std::vector<std::pair<const char*, const char*>>{
           {"Extension", "ext-1"},   {"Reference", "ref-1"},   {"ContactPoint", "cpt-2"},
           {"Quantity", "qty-3"},    {"Period", "per-1"},      {"Attachment", "att-1"},
           {"Patient", "dom-2"},     {"Patient", "dom-4"},     {"Patient", "dom-5"},
           {"Patient", "dom-6"},     {"Bundle", "bdl-1"},      {"Bundle", "bdl-2"},
           {"Bundle", "bdl-3"},      {"Bundle", "bdl-4"},      {"Bundle", "bdl-7"},
           {"Bundle", "bdl-9"},      {"Bundle", "bdl-10"},     {"Bundle", "bdl-11"},
           {"Bundle", "bdl-12"},     {"Appointment", "app-2"}, {"Appointment", "app-3"},
           {"Appointment", "app-4"}, {"Organization", "org-1"}}) {
    const Constraint* c = nativeOf(type, key);
    BOOST_REQUIRE_MESSAGE(c, type << " " << key);
    BOOST_TEST(c->native != nullptr, type << " " << key);
  }
  const Constraint* dom3 = nativeOf("Patient", "dom-3");
  BOOST_REQUIRE(dom3);
  BOOST_TEST(dom3->nativeOnly);
  // A different expression under a known key gets no native implementation.
  BOOST_TEST(nativeInvariant("extension.exists() or value.exists()") == nullptr);
  BOOST_TEST(nativeInvariant("text.`div`.exists() ") == nullptr);
}

BOOST_AUTO_TEST_CASE(native_and_fhirpath_invariants_report_the_same_issues) {
  Tally tally;
  std::vector<std::pair<std::string, std::string>> inputs = validCorpus();
  BOOST_TEST(inputs.size() >= 15u);
  for (const char* text : kHandMade) inputs.emplace_back("hand-made", text);
  // A Bundle with more entries than bdl-7 keeps on the stack, the last repeating the first.
  std::string large = R"({"resourceType":"Bundle","type":"collection","entry":[)";
  for (int i = 0; i <= 40; ++i) {
    large += (i ? "," : "") + std::string(R"({"fullUrl":"urn:uuid:)") +
             std::to_string(i == 40 ? 0 : i) +
             R"(","resource":{"resourceType":"Organization","name":"O"}})";
  }
  inputs.emplace_back("large Bundle", large + "]}");
  for (const auto& [name, text] : inputs) {
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    BOOST_REQUIRE_MESSAGE(!doc.HasParseError(), name);
    compare(doc, name, tally);
    std::size_t n = 0;
    mutations(doc, [&](const Value& variant) {
      compare(variant, name + " (mutation " + std::to_string(++n) + ")", tally);
    });
  }
  BOOST_TEST_MESSAGE(tally.inputs << " inputs compared");
  BOOST_TEST(tally.inputs > 5000u);
  // Every natively decided invariant failed somewhere, so both of its outcomes were compared.
  for (const char* key : {"ext-1", "ref-1", "cpt-2", "qty-3",  "att-1",  "per-1",  "dom-2", "dom-3",
                          "dom-4", "dom-5", "dom-6", "bdl-1",  "bdl-2",  "bdl-3",  "bdl-4", "bdl-5",
                          "bdl-7", "bdl-8", "bdl-9", "bdl-10", "bdl-11", "bdl-12", "app-1", "app-2",
                          "app-3", "app-4", "qrs-1", "pat-1",  "org-1",  "org-2",  "org-3"}) {
    BOOST_TEST(tally.failures[key] > 0u, key << " never failed in the corpus");
  }
}

BOOST_AUTO_TEST_SUITE_END()
