// Unit tests of the FHIRPath engine's tricky parts: partial-precision dates, empty propagation,
// exact decimals, quantities with unit conversion, error positions, XML input, environment
// hooks, concurrent evaluation and the `fhirpath` command.
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "engine/fhirpath/fhirpath.h"
#include "engine/fhirpath/fhirpath_cli.h"

using namespace switchboard::fhirpath;

namespace {

const char* kPatientJson = R"({
  "resourceType": "Patient",
  "id": "p1",
  "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinic"}],
  "managingOrganization": {"reference": "#org"},
  "name": [{"use": "official", "family": "Doe", "given": ["Jane", "Q"]},
           {"use": "nickname", "given": ["JJ"]}],
  "birthDate": "1980-05-17",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1980-05-17T14:35:45-05:00"}]},
  "multipleBirthInteger": 2,
  "active": true
})";

Node patient() {
  auto p = parseJsonResource(kPatientJson);
  BOOST_REQUIRE(p);
  return *p;
}

// Evaluates over no input and renders the result as JSON.
std::string run(const std::string& expr, const Node& focus = Node(),
                const Environment& env = Environment()) {
  auto r = evaluate(expr, focus, env);
  if (!r) return "error: " + r.error().message;
  return toJsonString(*r);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dates)

BOOST_AUTO_TEST_CASE(partial_precision_equality_is_empty) {
  BOOST_CHECK_EQUAL(run("@2012-01 = @2012-01-01"), "[]");
  BOOST_CHECK_EQUAL(run("@2012-01-01T10:30 = @2012-01-01T10:30:00"), "[]");
  BOOST_CHECK_EQUAL(run("@2012-01 != @2012-01-01"), "[]");
  // Different at a precision both have: decided.
  BOOST_CHECK_EQUAL(run("@2012-01 = @2013-01-01"), "[false]");
  BOOST_CHECK_EQUAL(run("@2012 < @2013-06-01"), "[true]");
  // Seconds and milliseconds are one precision.
  BOOST_CHECK_EQUAL(run("@2012-01-01T10:30:00.000 = @2012-01-01T10:30:00"), "[true]");
}

BOOST_AUTO_TEST_CASE(equivalence_with_different_precision_is_false) {
  BOOST_CHECK_EQUAL(run("@2012-01 ~ @2012-01-01"), "[false]");
  BOOST_CHECK_EQUAL(run("@2012-01-01 ~ @2012-01-01"), "[true]");
}

BOOST_AUTO_TEST_CASE(timezones_normalize) {
  BOOST_CHECK_EQUAL(run("@2017-11-05T01:30:00.0-04:00 = @2017-11-05T00:30:00.0-05:00"), "[true]");
  BOOST_CHECK_EQUAL(run("@2017-11-05T01:30:00Z > @2017-11-05T01:30:00+01:00"), "[true]");
  // One side without an offset cannot be compared.
  BOOST_CHECK_EQUAL(run("@2012-04-15T15:00:00Z = @2012-04-15T15:00:00"), "[]");
}

BOOST_AUTO_TEST_CASE(calendar_arithmetic) {
  BOOST_CHECK_EQUAL(run("@2020-01-31 + 1 month"), R"(["2020-02-29"])");
  BOOST_CHECK_EQUAL(run("@2019-02-28 + 1 day"), R"(["2019-03-01"])");
  BOOST_CHECK_EQUAL(run("@2020-03-01T00:30:00Z - 1 hour"), R"(["2020-02-29T23:30:00Z"])");
  BOOST_CHECK_EQUAL(run("@T23:30 + 90 minutes"), R"(["01:00"])");
  BOOST_CHECK(run("@2020-01-01 + 1 'mo'").starts_with("error"));
}

BOOST_AUTO_TEST_CASE(fhir_date_elements_compare_with_literals) {
  Node p = patient();
  BOOST_CHECK_EQUAL(run("birthDate = @1980-05-17", p), "[true]");
  BOOST_CHECK_EQUAL(run("birthDate < @1980-06", p), "[true]");
  BOOST_CHECK_EQUAL(run("birthDate.extension.value > @1980-05-17T19:00:00Z", p), "[true]");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(empty_propagation)

BOOST_AUTO_TEST_CASE(operators_on_empty) {
  BOOST_CHECK_EQUAL(run("{} = 1"), "[]");
  BOOST_CHECK_EQUAL(run("{} + 1"), "[]");
  BOOST_CHECK_EQUAL(run("1 < {}"), "[]");
  BOOST_CHECK_EQUAL(run("{} ~ {}"), "[true]");
  BOOST_CHECK_EQUAL(run("{}.count()"), "[0]");
  BOOST_CHECK_EQUAL(run("'a' & {}"), R"(["a"])");
  BOOST_CHECK_EQUAL(run("'a' + {}"), "[]");
}

BOOST_AUTO_TEST_CASE(three_valued_logic) {
  BOOST_CHECK_EQUAL(run("{} and true"), "[]");
  BOOST_CHECK_EQUAL(run("{} and false"), "[false]");
  BOOST_CHECK_EQUAL(run("{} or true"), "[true]");
  BOOST_CHECK_EQUAL(run("{} or false"), "[]");
  BOOST_CHECK_EQUAL(run("{} xor true"), "[]");
  BOOST_CHECK_EQUAL(run("false implies {}"), "[true]");
  BOOST_CHECK_EQUAL(run("{} implies true"), "[true]");
  BOOST_CHECK_EQUAL(run("true implies {}"), "[]");
  BOOST_CHECK_EQUAL(run("{}.not()"), "[]");
  // A decided left side guards the right one.
  BOOST_CHECK_EQUAL(run("false and (1 | 2).single() = 1"), "[false]");
  BOOST_CHECK_EQUAL(run("true or (1 | 2).single() = 1"), "[true]");
  BOOST_CHECK_EQUAL(run("false implies (1 | 2).single() = 1"), "[true]");
  BOOST_CHECK(run("true and (1 | 2).single() = 1").starts_with("error"));
}

BOOST_AUTO_TEST_CASE(missing_elements_are_empty_not_errors) {
  Node p = patient();
  BOOST_CHECK_EQUAL(run("Patient.deceased", p), "[]");
  BOOST_CHECK_EQUAL(run("Patient.deceased.exists()", p), "[false]");
  BOOST_CHECK_EQUAL(run("name.where(use = 'maiden').family = 'X'", p), "[]");
}

BOOST_AUTO_TEST_CASE(collections_where_singletons_are_needed_fail) {
  BOOST_CHECK(run("(1 | 2) + 1").starts_with("error"));
  BOOST_CHECK(run("(1 | 2) < 3").starts_with("error"));
  BOOST_CHECK_EQUAL(run("(1 | 2) = 1"), "[false]");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(decimals)

BOOST_AUTO_TEST_CASE(no_binary_float_surprises) {
  BOOST_CHECK_EQUAL(run("0.1 + 0.2 = 0.3"), "[true]");
  BOOST_CHECK_EQUAL(run("(0.1 + 0.2).toString()"), R"(["0.3"])");
  BOOST_CHECK_EQUAL(run("(1.1 * 3).toString()"), R"(["3.3"])");
  BOOST_CHECK_EQUAL(run("(1.50).toString()"), R"(["1.50"])");
  BOOST_CHECK_EQUAL(run("(10 / 4).toString()"), R"(["2.5"])");
  BOOST_CHECK_EQUAL(run("(1 / 3).toString()"), R"(["0.33333333"])");
  BOOST_CHECK_EQUAL(run("(2 / 3).toString()"), R"(["0.66666667"])");
  BOOST_CHECK_EQUAL(run("(1000000000000.01 - 1000000000000).toString()"), R"(["0.01"])");
}

BOOST_AUTO_TEST_CASE(decimals_from_json_and_xml_keep_their_digits) {
  auto obs = parseJsonResource(
      R"({"resourceType": "Observation", "valueQuantity": {"value": 1.50, "unit": "mg"},
          "component": [{"valueQuantity": {"value": 12345678901234567.25}},
                        {"valueInteger": 7}, {"valueDecimal": 1e2}]})");
  BOOST_REQUIRE(obs);
  BOOST_CHECK_EQUAL(run("value.value.toString()", *obs), R"(["1.50"])");
  BOOST_CHECK_EQUAL(run("value.value.precision()", *obs), "[2]");
  BOOST_CHECK_EQUAL(run("value", *obs), R"([{"value":1.50,"unit":"mg"}])");
  BOOST_CHECK_EQUAL(run("value.value | 2.50", *obs), "[1.50,2.50]");
  BOOST_CHECK_EQUAL(
      run("2.50 'mg'"),
      R"([{"value":2.50,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}])");
  BOOST_CHECK_EQUAL(run("value.toString()", *obs), R"(["1.50 'mg'"])");
  BOOST_CHECK_EQUAL(run("(component[0].value.value + 0.75).toString()", *obs),
                    R"(["12345678901234568.00"])");
  BOOST_CHECK_EQUAL(run("component[1].value + 1", *obs), "[8]");
  BOOST_CHECK_EQUAL(run("component[2].value = 100", *obs), "[true]");
  auto odd = parseJsonResource(R"({"a": "\u00012.5"})");  // a control character stays a string
  BOOST_REQUIRE(odd);
  BOOST_CHECK_EQUAL(run("a.length()", *odd), "[4]");
  auto xml = parseResource(R"(<Observation xmlns="http://hl7.org/fhir">
      <valueQuantity><value value="0.10"/><unit value="g"/></valueQuantity></Observation>)");
  BOOST_REQUIRE(xml);
  BOOST_CHECK_EQUAL(run("value.value.toString()", *xml), R"(["0.10"])");
  BOOST_CHECK_EQUAL(run("value.value * 3 = 0.3", *xml), "[true]");
}

BOOST_AUTO_TEST_CASE(integer_and_decimal_division) {
  BOOST_CHECK_EQUAL(run("7 mod 3"), "[1]");
  BOOST_CHECK_EQUAL(run("-7 div 2"), "[-3]");
  BOOST_CHECK_EQUAL(run("(5.5 mod 2).toString()"), R"(["1.5"])");
  BOOST_CHECK_EQUAL(run("1 / 0"), "[]");
  BOOST_CHECK_EQUAL(run("1 div 0"), "[]");
  BOOST_CHECK_EQUAL(run("9223372036854775807 + 1"), "[]");
}

BOOST_AUTO_TEST_CASE(rounding) {
  BOOST_CHECK_EQUAL(run("(2.5).round().toString()"), R"(["3"])");
  BOOST_CHECK_EQUAL(run("(-2.5).round().toString()"), R"(["-3"])");
  BOOST_CHECK_EQUAL(run("(1.005).round(2).toString()"), R"(["1.01"])");
  BOOST_CHECK_EQUAL(run("1.5 ~ 1.54"), "[true]");
  BOOST_CHECK_EQUAL(run("1.5 = 1.54"), "[false]");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(quantities)

BOOST_AUTO_TEST_CASE(ucum_conversion_in_comparisons) {
  BOOST_CHECK_EQUAL(run("1 'kg' = 1000 'g'"), "[true]");
  BOOST_CHECK_EQUAL(run("1 'm' > 99 'cm'"), "[true]");
  BOOST_CHECK_EQUAL(run("500 'mg' < 1 'g'"), "[true]");
  BOOST_CHECK_EQUAL(run("1 'L' = 1000 'mL'"), "[true]");
  BOOST_CHECK_EQUAL(run("1 'h' = 60 'min'"), "[true]");
  BOOST_CHECK_EQUAL(run("1 '[lb_av]' < 1 'kg'"), "[true]");
}

BOOST_AUTO_TEST_CASE(calendar_durations) {
  BOOST_CHECK_EQUAL(run("1 week = 7 days"), "[true]");
  BOOST_CHECK_EQUAL(run("1 'wk' = 7 'd'"), "[true]");
  BOOST_CHECK_EQUAL(run("1 day = 1 'd'"), "[true]");
  // Years and months have no fixed length: not equal to UCUM 'a' or to each other.
  BOOST_CHECK_EQUAL(run("1 year = 1 'a'"), "[]");
  BOOST_CHECK_EQUAL(run("1 year = 12 months"), "[]");
}

BOOST_AUTO_TEST_CASE(incompatible_units) {
  BOOST_CHECK_EQUAL(run("1 'mg' = 1 'mL'"), "[]");
  BOOST_CHECK_EQUAL(run("1 'mg' < 1 'mL'"), "[]");
  BOOST_CHECK_EQUAL(run("1 'mg' ~ 1 'mL'"), "[false]");
}

BOOST_AUTO_TEST_CASE(arithmetic_and_json) {
  BOOST_CHECK_EQUAL(run("(1 'kg' + 500 'g').toString()"), R"(["1.5 'kg'"])");
  BOOST_CHECK_EQUAL(
      run("2 'mg' * 3"),
      R"([{"value":6,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}])");
  BOOST_CHECK_EQUAL(
      run("3 days"),
      R"([{"value":3,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}])");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(syntax_errors_carry_line_and_column) {
  auto e = compile("name.where(use = 'x'");
  BOOST_REQUIRE(!e);
  BOOST_CHECK_EQUAL(e.error().location, "1:21");
  BOOST_CHECK(e.error().code == switchboard::ErrorCode::kInvalid);

  auto e2 = compile("name\n  .given +");
  BOOST_REQUIRE(!e2);
  BOOST_CHECK_EQUAL(e2.error().location, "2:11");  // the end of the expression
  BOOST_CHECK_NE(e2.error().message.find("2:11"), std::string::npos);

  auto e3 = compile("'unterminated");
  BOOST_REQUIRE(!e3);
  BOOST_CHECK_EQUAL(e3.error().location, "1:1");

  auto e4 = compile("1 + /* open comment");
  BOOST_REQUIRE(!e4);
  BOOST_CHECK_EQUAL(e4.error().location, "1:5");
}

BOOST_AUTO_TEST_CASE(pathological_expressions_are_rejected_not_crashing) {
  BOOST_CHECK(!compile(std::string(100000, '(') + "1" + std::string(100000, ')')));
  BOOST_CHECK(!compile(std::string(100000, '-') + "1"));
  std::string chain = "a";
  for (int i = 0; i < 50000; ++i) chain += ".a";
  BOOST_CHECK(!compile(chain));
  // Long but reasonable expressions still work.
  std::string sum = "1";
  for (int i = 0; i < 200; ++i) sum += " + 1";
  BOOST_CHECK_EQUAL(run(sum), "[201]");
  for (int i = 0; i < 100; ++i) sum += " + 1";
  BOOST_CHECK(!compile(sum));
}

BOOST_AUTO_TEST_CASE(unknown_functions_and_arity_fail_at_compile_time) {
  auto e = compile("name.frobnicate()");
  BOOST_REQUIRE(!e);
  BOOST_CHECK_NE(e.error().message.find("unknown function 'frobnicate'"), std::string::npos);
  BOOST_CHECK_EQUAL(e.error().location, "1:6");
  auto e2 = compile("name.where()");
  BOOST_REQUIRE(!e2);
  BOOST_CHECK_NE(e2.error().message.find("takes 1 argument"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(ordered_functions_on_unordered_collections_when_asked) {
  CompileOptions strict;
  strict.checkOrderedFunctions = true;
  auto e = compile("Patient.children().where(true).skip(1)", strict);
  BOOST_REQUIRE(!e);
  BOOST_CHECK_EQUAL(e.error().location, "1:32");  // at skip
  BOOST_CHECK(!compile("descendants()[0]", strict));
  BOOST_CHECK(compile("name.first()", strict));
  BOOST_CHECK(compile("descendants().count()", strict));
  BOOST_CHECK(compile("Patient.children().skip(1)"));  // off by default
}

BOOST_AUTO_TEST_CASE(execution_errors_name_the_position) {
  auto e = compile("true and\n  (-true)");
  BOOST_REQUIRE(e);
  auto r = evaluate(*e, Node(), Environment());
  BOOST_REQUIRE(!r);
  BOOST_CHECK_EQUAL(r.error().location, "2:4");
}

BOOST_AUTO_TEST_CASE(unknown_elements_of_known_types) {
  Node p = patient();
  BOOST_CHECK(run("Patient.name.given1", p).starts_with("error"));
  BOOST_CHECK(run("Encounter.status", p).starts_with("error"));
  BOOST_CHECK(run("%undefined", p).starts_with("error"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(model_and_input)

BOOST_AUTO_TEST_CASE(choice_types_and_primitive_extensions) {
  Node p = patient();
  BOOST_CHECK_EQUAL(run("multipleBirth", p), "[2]");
  BOOST_CHECK_EQUAL(run("multipleBirth is Integer", p), "[false]");
  BOOST_CHECK_EQUAL(run("multipleBirth is integer", p), "[true]");
  BOOST_CHECK_EQUAL(run("birthDate.extension('http://hl7.org/fhir/StructureDefinition/"
                        "patient-birthTime').value.ofType(dateTime).exists()",
                        p),
                    "[true]");
  BOOST_CHECK_EQUAL(run("name.given", p), R"(["Jane","Q","JJ"])");
  BOOST_CHECK_EQUAL(run("name[1].given[0]", p), R"(["JJ"])");
  BOOST_CHECK_EQUAL(run("managingOrganization.resolve().name", p), R"(["Clinic"])");
}

BOOST_AUTO_TEST_CASE(xml_converts_to_the_json_model) {
  const char* xml = R"(<?xml version="1.0"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="x1"/>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div></text>
  <active value="true"/>
  <name><family value="Doe"/><given value="Jane"/></name>
  <birthDate value="1980-05-17">
    <extension url="http://example.org/ext"><valueInteger value="3"/></extension>
  </birthDate>
  <multipleBirthBoolean value="false"/>
</Patient>)";
  auto doc = xmlToJson(xml);
  BOOST_REQUIRE(doc);
  const auto& d = **doc;
  BOOST_CHECK_EQUAL(std::string(d["resourceType"].GetString()), "Patient");
  BOOST_CHECK(d["active"].IsBool() && d["active"].GetBool());
  BOOST_CHECK(d["name"].IsArray());  // repeating element per the model
  BOOST_CHECK(d["name"][0]["given"].IsArray());
  BOOST_CHECK_EQUAL(std::string(d["birthDate"].GetString()), "1980-05-17");
  BOOST_CHECK_EQUAL(d["_birthDate"]["extension"][0]["valueInteger"].GetInt(), 3);
  BOOST_CHECK_EQUAL(std::string(d["text"]["div"].GetString()).find("<div"), 0u);
  BOOST_CHECK(d["multipleBirthBoolean"].IsBool());

  auto p = parseResource(xml);
  BOOST_REQUIRE(p);
  BOOST_CHECK_EQUAL(run("Patient.birthDate.extension.value + 1", *p), "[4]");
  BOOST_CHECK_EQUAL(run("name.given", *p), R"(["Jane"])");
  BOOST_CHECK_EQUAL(run("multipleBirth", *p), "[false]");
}

BOOST_AUTO_TEST_CASE(xml_bundles_contained_and_primitive_arrays) {
  const char* xml = R"(<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="urn:uuid:p1"/>
    <resource>
      <Patient>
        <contained><Organization><id value="o1"/><name value="Inner"/></Organization></contained>
        <name>
          <given value="Ann"/>
          <given id="g2"><extension url="http://example.org/x"><valueCode value="c"/></extension></given>
        </name>
        <managingOrganization><reference value="#o1"/></managingOrganization>
      </Patient>
    </resource>
    <request><method value="POST"/><url value="Patient"/></request>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:a1"/>
    <resource><Appointment><status value="booked"/>
      <participant><actor><reference value="urn:uuid:p1"/></actor><status value="accepted"/></participant>
    </Appointment></resource>
  </entry>
</Bundle>)";
  auto doc = xmlToJson(xml);
  BOOST_REQUIRE(doc);
  const auto& given = (**doc)["entry"][0]["resource"]["name"][0]["given"];
  BOOST_REQUIRE(given.IsArray());
  BOOST_CHECK_EQUAL(given.Size(), 2u);
  BOOST_CHECK(given[1].IsNull());
  const auto& ext = (**doc)["entry"][0]["resource"]["name"][0]["_given"];
  BOOST_REQUIRE(ext.IsArray());
  BOOST_CHECK(ext[0].IsNull());
  BOOST_CHECK_EQUAL(std::string(ext[1]["id"].GetString()), "g2");

  auto b = parseResource(xml);
  BOOST_REQUIRE(b);
  // The second given has no value, only an extension: it is in the collection, as null in JSON.
  BOOST_CHECK_EQUAL(run("entry.resource.ofType(Patient).name.given", *b), R"(["Ann",null])");
  BOOST_CHECK_EQUAL(run("entry[0].resource.name.given[0].hasValue()", *b), "[true]");
  BOOST_CHECK_EQUAL(run("entry[0].resource.name.given[1].hasValue()", *b), "[false]");
  BOOST_CHECK_EQUAL(run("entry[0].resource.name.given[1].extension.value", *b), R"(["c"])");
  BOOST_CHECK_EQUAL(
      run("entry.resource.ofType(Appointment).participant.actor.resolve().name.given.first()", *b),
      R"(["Ann"])");
  BOOST_CHECK_EQUAL(run("entry.request.method", *b), R"(["POST"])");
  // resolve() of a contained reference needs %resource to be the Patient.
  Environment env;
  auto patientNode = evaluate("entry[0].resource", *b, env);
  BOOST_REQUIRE(patientNode && patientNode->size() == 1);
  env.resource = (*patientNode)[0];
  BOOST_CHECK_EQUAL(run("managingOrganization.resolve().name", (*patientNode)[0], env),
                    R"(["Inner"])");
}

BOOST_AUTO_TEST_CASE(malformed_inputs_are_errors) {
  BOOST_CHECK(!parseResource("{\"resourceType\": "));
  BOOST_CHECK(!parseResource("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"1\"></Patient>"));
  BOOST_CHECK(!parseResource("<Patient><id value=\"1\"/></Patient>"));  // no FHIR namespace
}

BOOST_AUTO_TEST_CASE(json_output_of_values) {
  BOOST_CHECK_EQUAL(run("@2014-01-25T14:30:14.559+01:00 | @T10:00 | 1.5 | 'x' | true"),
                    R"(["2014-01-25T14:30:14.559+01:00","10:00",1.5,"x",true])");
  Node p = patient();
  BOOST_CHECK_EQUAL(run("name.first()", p),
                    R"([{"use":"official","family":"Doe","given":["Jane","Q"]}])");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(environment)

BOOST_AUTO_TEST_CASE(named_variables) {
  Environment env;
  env.setVariable("sender", std::string("+15551234567"));
  rapidjson::Document facility;
  facility.Parse(R"({"id": "fac-1", "timezone": "America/Chicago"})");
  env.setVariable("facility", facility);
  BOOST_CHECK_EQUAL(run("%sender", Node(), env), R"(["+15551234567"])");
  BOOST_CHECK_EQUAL(run("%facility.timezone", Node(), env), R"(["America/Chicago"])");
  BOOST_CHECK_EQUAL(run("%sender.startsWith('+1')", Node(), env), "[true]");
}

BOOST_AUTO_TEST_CASE(plain_json_input_for_mappings) {
  auto flow =
      parseJsonResource(R"({"patient_last_name": "  Doe ", "visit": {"date": "2024-03-01"}})");
  BOOST_REQUIRE(flow);
  BOOST_CHECK_EQUAL(run("patient_last_name.trim()", *flow), R"(["Doe"])");
  BOOST_CHECK_EQUAL(run("visit.date.toDate() + 2 days", *flow), R"(["2024-03-03"])");
}

BOOST_AUTO_TEST_CASE(resolve_and_member_of_hooks) {
  Environment env;
  auto org = parseJsonResource(R"({"resourceType": "Organization", "name": "Remote"})");
  BOOST_REQUIRE(org);
  env.resolve = [&](const std::string& ref, const Node&) -> switchboard::Result<Collection> {
    if (ref == "Organization/9") return Collection{*org};
    return Collection{};
  };
  env.memberOf = [](const Node& coded, const std::string& vs) -> switchboard::Result<bool> {
    auto v = coded.toSystemValue();
    return vs == "http://example.org/vs" && v && v->stringValue() == "a";
  };
  auto p = parseJsonResource(
      R"({"resourceType": "Patient", "managingOrganization": {"reference": "Organization/9"},
          "gender": "a"})");
  BOOST_REQUIRE(p);
  BOOST_CHECK_EQUAL(run("managingOrganization.resolve().name", *p, env), R"(["Remote"])");
  BOOST_CHECK_EQUAL(run("gender.memberOf('http://example.org/vs')", *p, env), "[true]");
  BOOST_CHECK_EQUAL(run("gender.memberOf('http://example.org/other')", *p, env), "[false]");
}

BOOST_AUTO_TEST_CASE(trace_hook_and_defaults) {
  Environment env;
  std::vector<std::string> seen;
  env.trace = [&](const std::string& name, const Collection& items) {
    seen.push_back(name + ":" + toJsonString(items));
  };
  Node p = patient();
  BOOST_CHECK_EQUAL(run("name.trace('names', given.first()).count()", p, env), "[2]");
  BOOST_REQUIRE_EQUAL(seen.size(), 1u);
  BOOST_CHECK_EQUAL(seen[0], R"(names:["Jane","JJ"])");
  // Without a hook memberOf() is empty; conformsTo() knows the base profiles.
  BOOST_CHECK_EQUAL(run("active.memberOf('http://example.org/vs')", p), "[]");
  BOOST_CHECK_EQUAL(run("conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')", p),
                    "[true]");
  BOOST_CHECK_EQUAL(run("conformsTo('http://hl7.org/fhir/StructureDefinition/Observation')", p),
                    "[false]");
}

BOOST_AUTO_TEST_CASE(functions_beyond_the_suite) {
  Node p = patient();
  BOOST_CHECK_EQUAL(run("'a-b-a'.lastIndexOf('a')"), "[4]");
  BOOST_CHECK_EQUAL(run("'abc'.matchesFull('b')"), "[false]");
  BOOST_CHECK_EQUAL(run("'abc'.matches('b')"), "[true]");
  BOOST_CHECK_EQUAL(run("'héllo'.length()"), "[5]");
  BOOST_CHECK_EQUAL(run("'héllo'.substring(1, 2)"), R"(["él"])");
  // Strings order by code point: "JJ" < "Jane".
  BOOST_CHECK_EQUAL(run("name.sort(given.first()).use", p), R"(["nickname","official"])");
  BOOST_CHECK_EQUAL(run("name.sort(-given.first()).use", p), R"(["official","nickname"])");
  BOOST_CHECK_EQUAL(run("birthDate.type().name", p), R"(["date"])");
  BOOST_CHECK_EQUAL(run("'2024-03-01T10:00:00+02:00'.toDate()"), R"(["2024-03-01"])");
  BOOST_CHECK_EQUAL(run("'5 mg'.toQuantity()"), "[]");  // UCUM units need quotes
  BOOST_CHECK_EQUAL(run("'5 \\'mg\\''.toQuantity('g').toString()"), R"(["0.005 'g'"])");
}

BOOST_AUTO_TEST_CASE(fixed_clock) {
  Environment env;
  env.now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  BOOST_CHECK_EQUAL(run("today()", Node(), env), R"(["2023-11-14"])");
  BOOST_CHECK_EQUAL(run("now()", Node(), env), R"(["2023-11-14T22:13:20.000Z"])");
  env.utcOffsetMinutes = 120;  // the local day has already turned
  BOOST_CHECK_EQUAL(run("today()", Node(), env), R"(["2023-11-15"])");
  BOOST_CHECK_EQUAL(run("now()", Node(), env), R"(["2023-11-15T00:13:20.000+02:00"])");
  BOOST_CHECK_EQUAL(run("timeOfDay()", Node(), env), R"(["00:13:20.000"])");
  BOOST_CHECK_EQUAL(run("now() = @2023-11-14T22:13:20.000Z", Node(), env), "[true]");
}

BOOST_AUTO_TEST_CASE(compiled_expression_is_shared_across_threads) {
  auto expr = compile(
      "name.where(use = 'official').given.join(' ') & ' ' & "
      "name.family.first() & ' ' & (birthDate + 1 year).toString()");
  BOOST_REQUIRE(expr);
  Node p = patient();
  Environment env;
  std::vector<std::string> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::string last;
      for (int i = 0; i < 200; ++i) {
        auto r = evaluate(*expr, p, env);
        last = r ? toJsonString(*r) : "error";
      }
      results[static_cast<std::size_t>(t)] = last;
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : results) BOOST_CHECK_EQUAL(r, R"(["Jane Q Doe 1981-05-17"])");
}

BOOST_AUTO_TEST_CASE(invariant_style_boolean_evaluation) {
  auto e = compile(
      "(start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))");
  BOOST_REQUIRE(e);
  auto booked = parseJsonResource(R"({"resourceType": "Appointment", "status": "booked"})");
  auto proposed = parseJsonResource(R"({"resourceType": "Appointment", "status": "proposed"})");
  BOOST_REQUIRE(booked && proposed);
  auto r1 = evaluateBoolean(*e, *booked, Environment());
  auto r2 = evaluateBoolean(*e, *proposed, Environment());
  BOOST_REQUIRE(r1 && r2);
  BOOST_CHECK(r1->has_value() && !**r1);
  BOOST_CHECK(r2->has_value() && **r2);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(command)

namespace {

struct Captured {
  int code;
  std::string out, err;
};

Captured runCommand(const std::string& expr, const std::string& file) {
  std::ostringstream out, err;
  auto* oldOut = std::cout.rdbuf(out.rdbuf());
  auto* oldErr = std::cerr.rdbuf(err.rdbuf());
  std::string a0 = "fhirpath", a1 = expr, a2 = file;
  char* argv[] = {a0.data(), a1.data(), a2.data()};
  int code = runFhirpathCommand(3, argv);
  std::cout.rdbuf(oldOut);
  std::cerr.rdbuf(oldErr);
  return {code, out.str(), err.str()};
}

std::string writeTemp(const std::string& name, const std::string& content) {
  auto dir =
      std::filesystem::temp_directory_path() / ("fhirpath-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::ofstream(path) << content;
  return path.string();
}

}  // namespace

BOOST_AUTO_TEST_CASE(prints_json_array_for_json_and_xml) {
  auto json = writeTemp("p.json", kPatientJson);
  auto c = runCommand("name.given", json);
  BOOST_CHECK_EQUAL(c.code, 0);
  BOOST_CHECK_EQUAL(c.out, "[\"Jane\",\"Q\",\"JJ\"]\n");

  std::string src =
      std::getenv("SWITCHBOARD_SOURCE_DIR") ? std::getenv("SWITCHBOARD_SOURCE_DIR") : ".";
  auto x =
      runCommand("Patient.birthDate", src + "/tests/data/fhirpath-r4/input/patient-example.xml");
  BOOST_CHECK_EQUAL(x.code, 0);
  BOOST_CHECK_EQUAL(x.out, "[\"1974-12-25\"]\n");
}

BOOST_AUTO_TEST_CASE(exit_codes) {
  auto json = writeTemp("p2.json", kPatientJson);
  auto syntax = runCommand("name.where(", json);
  BOOST_CHECK_EQUAL(syntax.code, 2);
  BOOST_CHECK_NE(syntax.err.find("1:12"), std::string::npos);
  auto exec = runCommand("name.given + 1", json);
  BOOST_CHECK_EQUAL(exec.code, 2);
  auto missing = runCommand("name", "/nonexistent/file.json");
  BOOST_CHECK_EQUAL(missing.code, 1);
  auto bad = writeTemp("bad.json", "{not json");
  auto unreadable = runCommand("name", bad);
  BOOST_CHECK_EQUAL(unreadable.code, 1);
  BOOST_CHECK_NE(unreadable.err.find("invalid JSON"), std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
