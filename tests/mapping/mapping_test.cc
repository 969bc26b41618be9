// The mapping language construct by construct: expressions, vanishing, directives, references,
// determinism, output forms and load-time errors.
#include <boost/test/unit_test.hpp>

#include <cstdlib>

#include "engine/mapping/mapping.h"
#include "test_util.h"

namespace switchboard::mapping {
namespace {

std::shared_ptr<const ConceptMapSet> maps() {
  auto set = std::make_shared<ConceptMapSet>();
  auto doc = test::parse(R"({"resourceType":"ConceptMap","id":"colors","status":"active","group":[{
    "source":"urn:src","target":"urn:tgt","element":[
      {"code":"r","display":"Red","target":[{"code":"RED","display":"red","equivalence":"equivalent"}]},
      {"code":"n","display":"None","target":[{"equivalence":"unmatched"}]}]}]})");
  BOOST_REQUIRE(set->add(doc, "colors.json"));
  return set;
}

// Wraps one resource template into a mapping file.
std::string wrap(const std::string& resource, const std::string& extra = "") {
  return R"({"id":"t",)" + extra + R"("resources":[{"key":"r","resource":)" + resource + "}]}";
}

Result<std::string> runText(const std::string& mappingText, const std::string& input,
                            const fhirpath::Environment& env = {}) {
  auto m = Mapping::load(mappingText, "test.json", maps());
  if (!m) return std::unexpected(m.error());
  auto out = (*m)->run(input, env);
  if (!out) return std::unexpected(out.error());
  return out->payload;
}

// The produced resource of a one-resource mapping, as compact JSON.
std::string resourceOf(const std::string& resource, const std::string& input,
                       const fhirpath::Environment& env = {}, const std::string& extra = "") {
  auto out = runText(wrap(resource, extra), input, env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto doc = test::parse(*out);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc["entry"][0]["resource"].Accept(w);
  return sb.GetString();
}

Error errorOf(const std::string& mappingText, const std::string& input,
              const fhirpath::Environment& env = {}) {
  auto out = runText(mappingText, input, env);
  BOOST_REQUIRE(!out);
  return out.error();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mapping_language)

BOOST_AUTO_TEST_CASE(single_expression_keeps_json_type) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","n":"{{ a }}","b":"{{ f }}","s":"{{ s }}","o":"{{ o }}","sum":"{{ a + 1 }}","d":"{{ 1.5 }}"})",
          R"({"a":41,"f":false,"s":"x","o":{"k":"v","e":""}})") ==
      R"({"resourceType":"X","n":41,"b":false,"s":"x","o":{"k":"v"},"sum":42,"d":1.5})");
}

BOOST_AUTO_TEST_CASE(interpolation_and_vanishing_text) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","t":"Hello {{ first }} {{ last }}!","gone":"Dr {{ missing }}","n":"n={{ a }}"})",
          R"({"first":"Ada","last":"Lovelace","a":3})") ==
      R"({"resourceType":"X","t":"Hello Ada Lovelace!","n":"n=3"})");
}

BOOST_AUTO_TEST_CASE(empty_values_vanish_recursively) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","a":"{{ missing }}","b":"{{ blank }}","c":[{"d":"{{ missing }}"}],
                          "e":{"f":{"g":"{{ missing }}"}},"h":[],"i":{},"j":"","k":null,"keep":0})",
          R"({"blank":"   "})") == R"({"resourceType":"X","keep":0})");
}

BOOST_AUTO_TEST_CASE(array_element_expands_to_all_items) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","given":["{{ names }}","{{ extra }}","fixed"],"many":"{{ names }}"})",
          R"({"names":["a","b"],"extra":"c"})") ==
      R"({"resourceType":"X","given":["a","b","c","fixed"],"many":["a","b"]})");
}

BOOST_AUTO_TEST_CASE(if_directive) {
  const char* tmpl =
      R"({"resourceType":"X","a":{"$if":"flag = 'y'","v":"yes"},"b":[{"$if":"flag = 'n'","v":"no"},{"v":"always"}],
                        "c":{"$if":"flag = 'y'","$value":"{{ flag }}"}})";
  BOOST_TEST(resourceOf(tmpl, R"({"flag":"y"})") ==
             R"({"resourceType":"X","a":{"v":"yes"},"b":[{"v":"always"}],"c":"y"})");
  BOOST_TEST(resourceOf(tmpl, R"({"flag":"n"})") ==
             R"({"resourceType":"X","b":[{"v":"no"},{"v":"always"}]})");
  BOOST_TEST(resourceOf(tmpl, R"({})") == R"({"resourceType":"X","b":[{"v":"always"}]})");
}

BOOST_AUTO_TEST_CASE(each_directive_with_as_and_index) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","item":[{"$each":"items","$as":"it","$if":"%it.n > 1","linkId":"{{ %it.id }}","pos":"{{ %itIndex }}"}],
                          "codes":{"$each":"items","$value":"{{ %item.id }}"},"none":[{"$each":"nothing","x":"1"}]})",
          R"({"items":[{"id":"a","n":1},{"id":"b","n":2},{"id":"c","n":3}]})") ==
      R"({"resourceType":"X","item":[{"linkId":"b","pos":1},{"linkId":"c","pos":2}],"codes":["a","b","c"]})");
}

BOOST_AUTO_TEST_CASE(let_directive_scopes_variables) {
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","$let":{"full":"{{ first & ' ' & last }}","obj":{"k":"{{ first }}"},"two":"{{ %full.length() * 2 }}"},
                          "name":"{{ %full }}","k":"{{ %obj.k }}","len":"{{ %two }}",
                          "inner":{"$let":{"full":"shadow"},"v":"{{ %full }}"},"after":"{{ %full }}"})",
          R"({"first":"Ada","last":"L"})") ==
      R"({"resourceType":"X","name":"Ada L","k":"Ada","len":10,"inner":{"v":"shadow"},"after":"Ada L"})");
}

BOOST_AUTO_TEST_CASE(translate_directive) {
  BOOST_TEST(
      resourceOf(R"({"resourceType":"X","coding":[{"$translate":{"map":"colors","code":"{{ c }}"}}],
                          "code":{"$translate":{"map":"colors","code":"{{ c }}","select":"code"}},
                          "text":{"$translate":{"map":"colors","code":"{{ c }}","select":"source-display"}},
                          "unmatched":{"$translate":{"map":"colors","code":"n"}},
                          "optional":{"$translate":{"map":"colors","code":"zzz","required":false}}})",
                 R"({"c":"r"})") ==
      R"({"resourceType":"X","coding":[{"system":"urn:tgt","code":"RED","display":"red"}],"code":"RED","text":"Red"})");
  auto e =
      errorOf(wrap(R"({"resourceType":"X","c":{"$translate":{"map":"colors","code":"{{ c }}"}}})"),
              R"({"c":"blue"})");
  BOOST_TEST(static_cast<int>(e.code) == static_cast<int>(ErrorCode::kCodeInvalid));
  BOOST_TEST(e.location == "c");
  BOOST_TEST(e.message ==
             "mapping t: c = \"blue\" has no translation in ConceptMap \"colors\" "
             "(/resources/0/resource/c/$translate)");
}

BOOST_AUTO_TEST_CASE(local_instant_directive) {
  fhirpath::Environment env;
  env.setVariable("timezone", "America/Chicago");
  BOOST_TEST(
      resourceOf(
          R"({"resourceType":"X","start":{"$localInstant":{"date":"{{ d }}","time":"{{ t }}"}},
                          "end":{"$localInstant":{"date":"{{ d }}","time":"{{ t }}","addMinutes":"{{ 90 }}"}},
                          "tokyo":{"$localInstant":{"date":"{{ d }}","time":"09:00","zone":"Asia/Tokyo"}},
                          "gone":{"$localInstant":{"date":"{{ missing }}","time":"{{ t }}"}}})",
          R"({"d":"2026-06-01","t":"1330"})", env) ==
      R"({"resourceType":"X","start":"2026-06-01T13:30:00-05:00","end":"2026-06-01T15:00:00-05:00","tokyo":"2026-06-01T09:00:00+09:00"})");
  auto e = errorOf(
      wrap(R"({"resourceType":"X","start":{"$localInstant":{"date":"{{ d }}","time":"{{ t }}"}}})"),
      R"({"d":"2026-02-30","t":"1330"})", env);
  BOOST_TEST(e.location == "d");
  BOOST_TEST(e.message.find("date does not exist in the calendar") != std::string::npos);
  auto noZone = errorOf(
      wrap(R"({"resourceType":"X","start":{"$localInstant":{"date":"{{ d }}","time":"{{ t }}"}}})"),
      R"({"d":"2026-02-03","t":"1330"})");
  BOOST_TEST(noZone.location == "%timezone");
}

// Instants the text is written for directly (offsets with minutes, years 0 to 9999) and those
// written as before (a year past 9999 or before 0); zones asked for in turn and a zone folder
// that changes ($TZDIR) between runs.
BOOST_AUTO_TEST_CASE(local_instant_years_offsets_and_zone_folders) {
  auto instant = [](const std::string& zone, const std::string& date, const std::string& minutes) {
    fhirpath::Environment env;
    env.setVariable("timezone", zone);
    return resourceOf(R"({"resourceType":"X","at":{"$localInstant":{"date":")" + date +
                          R"(","time":"1000","addMinutes":"{{ )" + minutes + R"( }}"}}})",
                      "{}", env);
  };
  BOOST_TEST(instant("Asia/Kolkata", "2026-02-12", "0") ==
             R"({"resourceType":"X","at":"2026-02-12T10:00:00+05:30"})");
  BOOST_TEST(instant("America/St_Johns", "2026-02-12", "0") ==
             R"({"resourceType":"X","at":"2026-02-12T10:00:00-03:30"})");
  BOOST_TEST(instant("UTC", "9999-12-31", "840") ==
             R"({"resourceType":"X","at":"10000-01-01T00:00:00+00:00"})");
  BOOST_TEST(instant("UTC", "0001-01-01", "-601") ==
             R"({"resourceType":"X","at":"0000-12-31T23:59:00+00:00"})");
  BOOST_TEST(instant("UTC", "0001-01-01", "-527641") ==
             R"({"resourceType":"X","at":"-001-12-31T23:59:00+00:00"})");
  BOOST_TEST(instant("Asia/Kolkata", "2026-02-12", "0") ==
             R"({"resourceType":"X","at":"2026-02-12T10:00:00+05:30"})");

  const char* was = std::getenv("TZDIR");
  const std::string saved = was ? was : "";
  ::setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  fhirpath::Environment env;
  env.setVariable("timezone", "Asia/Kolkata");
  auto e = errorOf(wrap(R"({"resourceType":"X","at":{"$localInstant":{"date":"2026-02-12",
                            "time":"1000"}}})"),
                   "{}", env);
  BOOST_TEST(e.message.find("/nonexistent-zoneinfo") != std::string::npos, e.message);
  if (was)
    ::setenv("TZDIR", saved.c_str(), 1);
  else
    ::unsetenv("TZDIR");
  BOOST_TEST(instant("Asia/Kolkata", "2026-02-12", "0") ==
             R"({"resourceType":"X","at":"2026-02-12T10:00:00+05:30"})");
}

BOOST_AUTO_TEST_CASE(references_and_transaction_bundle) {
  const char* text = R"({"id":"refs","resources":[
    {"key":"patient","resource":{"resourceType":"Patient","identifier":[{"system":"urn:s","value":"{{ id }}"}]},
     "ifNoneExist":"identifier=urn:s|{{ id }}"},
    {"key":"skipped","$if":"false","resource":{"resourceType":"Coverage","status":"active"}},
    {"key":"enc","resource":{"resourceType":"Encounter","subject":{"reference":"{{ %ref.patient }}"},
     "other":{"reference":"{{ %ref.skipped }}"},"identifier":[{"value":"{{ %id.enc }}"}]}}]})";
  auto out = runText(text, R"({"id":"a b+c|d"})");
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto doc = test::parse(*out);
  BOOST_TEST(doc["resourceType"] == "Bundle");
  BOOST_TEST(doc["type"] == "transaction");
  BOOST_REQUIRE(doc["entry"].Size() == 2u);
  const auto& p = doc["entry"][0];
  const auto& enc = doc["entry"][1];
  const std::string patientUrl = p["fullUrl"].GetString();
  BOOST_TEST(patientUrl.starts_with("urn:uuid:"));
  BOOST_TEST(patientUrl.size() == 45u);
  BOOST_TEST(patientUrl[23] == '5');  // version 5
  BOOST_TEST(enc["resource"]["subject"]["reference"].GetString() == patientUrl);
  BOOST_TEST(
      !enc["resource"].HasMember("other"));  // a reference to a resource not produced vanishes
  BOOST_TEST("urn:uuid:" + std::string(enc["resource"]["identifier"][0]["value"].GetString()) ==
             std::string(enc["fullUrl"].GetString()));
  BOOST_TEST(p["request"]["method"] == "POST");
  BOOST_TEST(p["request"]["url"] == "Patient");
  BOOST_TEST(p["request"]["ifNoneExist"] == "identifier=urn:s|a%20b%2Bc%7Cd");
  BOOST_TEST(!enc["request"].HasMember("ifNoneExist"));
}

BOOST_AUTO_TEST_CASE(conditional_update_puts_to_the_search_and_keeps_references) {
  const char* text = R"({"id":"upd","resources":[
    {"key":"patient","resource":{"resourceType":"Patient","identifier":[{"system":"urn:s","value":"{{ id }}"}]},
     "ifNoneExist":"identifier=urn:s|{{ id }}","conditional":"update"},
    {"key":"appt","resource":{"resourceType":"Appointment","status":"booked",
     "participant":[{"actor":{"reference":"{{ %ref.patient }}"},"status":"accepted"}]},
     "ifNoneExist":"identifier=urn:a|{{ id }}","conditional":"create"},
    {"key":"enc","resource":{"resourceType":"Encounter","subject":{"reference":"{{ %ref.patient }}"}}}]})";
  auto m = Mapping::load(text, "test.json", maps());
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  BOOST_TEST((*m)->planned());
  const std::string input = R"({"id":"a b+c|d"})";
  auto general = (*m)->runGeneral(input, {});
  auto planned = (*m)->runPlanned(input, {});
  BOOST_REQUIRE_MESSAGE(general.has_value(), (general ? std::string() : general.error().message));
  BOOST_REQUIRE_MESSAGE(planned.has_value(), (planned ? std::string() : planned.error().message));
  BOOST_TEST(general->payload == planned->payload);  // both evaluators write the same bytes
  auto doc = test::parse(general->payload);
  BOOST_REQUIRE(doc["entry"].Size() == 3u);
  const auto& patient = doc["entry"][0];
  const std::string patientUrl = patient["fullUrl"].GetString();
  BOOST_TEST(patientUrl.starts_with("urn:uuid:"));
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  patient["request"].Accept(w);
  BOOST_TEST(std::string(sb.GetString()) ==
             R"({"method":"PUT","url":"Patient?identifier=urn:s|a%20b%2Bc%7Cd"})");
  // References to the updated entry are its fullUrl, which the server resolves as for a create.
  BOOST_TEST(doc["entry"][1]["resource"]["participant"][0]["actor"]["reference"].GetString() ==
             patientUrl);
  BOOST_TEST(doc["entry"][2]["resource"]["subject"]["reference"].GetString() == patientUrl);
  // "create" is the default, written out.
  BOOST_TEST(doc["entry"][1]["request"]["method"] == "POST");
  BOOST_TEST(doc["entry"][1]["request"]["url"] == "Appointment");
  BOOST_TEST(doc["entry"][1]["request"]["ifNoneExist"] == "identifier=urn:a|a%20b%2Bc%7Cd");
  BOOST_TEST(doc["entry"][2]["request"]["method"] == "POST");
  BOOST_TEST(!doc["entry"][2]["request"].HasMember("ifNoneExist"));
  // A search that yields nothing fails the mapping instead of creating a Patient each time.
  for (const auto& out :
       {(*m)->runGeneral("{}", {}), (*m)->runPlanned("{}", {}), (*m)->run("{}", {})}) {
    BOOST_REQUIRE(!out.has_value());
    BOOST_TEST(static_cast<int>(out.error().code) == static_cast<int>(ErrorCode::kRequired));
    BOOST_TEST(out.error().message ==
               "mapping upd: /resources/0/ifNoneExist: the search of a conditional update yields "
               "nothing");
    BOOST_TEST(out.error().location == "/resources/0/ifNoneExist");
  }
}

BOOST_AUTO_TEST_CASE(conditional_refuses_nonsense_at_load) {
  auto err = [](const std::string& entryExtra, const std::string& fileExtra = "") {
    auto m = Mapping::load(R"({"id":"t",)" + fileExtra +
                               R"("resources":[{"key":"r","resource":{"resourceType":"X"})" +
                               entryExtra + "}]}",
                           "m.json", maps());
    BOOST_REQUIRE(!m);
    return m.error();
  };
  const auto unknown = err(R"(,"ifNoneExist":"a={{ a }}","conditional":"upsert")");
  BOOST_TEST(unknown.location == "/resources/0/conditional");
  BOOST_TEST(unknown.message ==
             "m.json: /resources/0/conditional: expected \"create\" or \"update\"");
  BOOST_TEST(err(R"(,"ifNoneExist":"a={{ a }}","conditional":true)").location ==
             "/resources/0/conditional");
  const auto noSearch = err(R"(,"conditional":"update")");
  BOOST_TEST(noSearch.location == "/resources/0/conditional");
  BOOST_TEST(noSearch.message.find("needs the search") != std::string::npos);
  BOOST_TEST(err(R"(,"ifNoneExist":"","conditional":"update")").location ==
             "/resources/0/conditional");
  BOOST_TEST(err(R"(,"ifNoneExist":"  ","conditional":"update")").location ==
             "/resources/0/conditional");
  BOOST_TEST(err(R"(,"conditional":"create")").location == "/resources/0/conditional");
  BOOST_TEST(err(R"(,"conditional":"update")", R"("output":"resources",)")
                 .message.find("only for \"output\": \"transaction\"") != std::string::npos);
  BOOST_TEST(err(R"(,"ifNoneExist":"a={{ a }}","Conditional":"update")").location ==
             "/resources/0/Conditional");
}

BOOST_AUTO_TEST_CASE(deterministic_output) {
  const std::string text = wrap(R"({"resourceType":"X","v":"{{ v }}","id2":"{{ %id.r }}"})");
  auto a = runText(text, R"({"v":"1"})");
  auto b = runText(text, R"({"v":"1"})");
  auto c = runText(text, R"({"v":"2"})");
  BOOST_REQUIRE(a);
  BOOST_REQUIRE(b);
  BOOST_REQUIRE(c);
  BOOST_TEST(*a == *b);
  BOOST_TEST(*a != *c);
  // identity: the same key for every input with the same value.
  const std::string withIdentity =
      R"({"id":"t","resources":[{"key":"r","identity":"who","resource":{"resourceType":"X","v":"{{ v }}"}}]})";
  auto d = runText(withIdentity, R"({"who":"w","v":"1"})");
  auto e = runText(withIdentity, R"({"who":"w","v":"2"})");
  BOOST_TEST(std::string(test::parse(*d)["entry"][0]["fullUrl"].GetString()) ==
             test::parse(*e)["entry"][0]["fullUrl"].GetString());
  // The sender is part of the default key.
  fhirpath::Environment s1, s2;
  s1.setVariable("sender", "+15550000001");
  s2.setVariable("sender", "+15550000002");
  BOOST_TEST(*runText(text, R"({"v":"1"})", s1) != *runText(text, R"({"v":"1"})", s2));
}

BOOST_AUTO_TEST_CASE(resources_output_and_variables) {
  fhirpath::Environment env;
  env.setVariable("facility", "Clinic B");
  auto out = runText(
      R"({"id":"t","output":"resources","variables":{"facility":"Clinic A","status":"booked"},
    "resources":[{"key":"a","resource":{"resourceType":"Patient","f":"{{ %facility }}","s":"{{ %status }}"}},
                 {"key":"b","resource":{"resourceType":"Encounter","subject":{"reference":"{{ %ref.a }}"}}}]})",
      "{}", env);
  BOOST_REQUIRE_MESSAGE(out.has_value(), (out ? std::string() : out.error().message));
  auto doc = test::parse(*out);
  BOOST_REQUIRE(doc.IsArray());
  BOOST_TEST(doc[0]["f"] == "Clinic B");  // the channel overrides the file's default
  BOOST_TEST(doc[0]["s"] == "booked");
  BOOST_TEST(doc[0].MemberBegin()->name == "resourceType");
  BOOST_TEST((doc[0].MemberBegin() + 1)->name == "id");
  BOOST_TEST(doc[1]["subject"]["reference"].GetString() ==
             "Patient/" + std::string(doc[0]["id"].GetString()));
}

BOOST_AUTO_TEST_CASE(required_and_assert) {
  const std::string text = wrap(
      R"({"resourceType":"X"})",
      R"j("required":["name"],"assert":[{"that":"slot in ('a' | 'b')","field":"slot","message":"not a slot"}],)j");
  auto missing = errorOf(text, R"({"name":"  ","slot":"a"})");
  BOOST_TEST(static_cast<int>(missing.code) == static_cast<int>(ErrorCode::kRequired));
  BOOST_TEST(missing.message == "mapping t: required answer missing: name");
  BOOST_TEST(missing.location == "name");
  auto bad = errorOf(text, R"({"name":"x","slot":"c"})");
  BOOST_TEST(bad.message == "mapping t: slot: not a slot");
  BOOST_TEST(bad.location == "slot");
  BOOST_TEST(runText(text, R"({"name":"x","slot":"b"})").has_value());
}

BOOST_AUTO_TEST_CASE(runtime_errors_are_precise) {
  auto many =
      errorOf(wrap(R"({"resourceType":"X","t":"a {{ names }}"})"), R"({"names":["a","b"]})");
  BOOST_TEST(many.message ==
             "mapping t: /resources/0/resource/t: \"names\" yields 2 items inside text");
  auto failing =
      errorOf(wrap(R"({"resourceType":"X","t":"{{ a.substring(1) + 1 }}"})"), R"({"a":"xyz"})");
  BOOST_TEST(failing.message.find("/resources/0/resource/t") != std::string::npos);
  auto badUtf8 = errorOf(wrap(R"({"resourceType":"X","t":"{{ a }}"})"), "{\"a\":\"\xff\xfe\"}");
  BOOST_TEST(badUtf8.message == "mapping t: the input holds text that is not valid UTF-8");
}

BOOST_AUTO_TEST_CASE(hostile_strings_stay_data) {
  auto out = runText(wrap(R"({"resourceType":"X","t":"{{ a }}","u":"x {{ a }}"})"),
                     R"({"a":"\"}]}<script>{{ %ref }}\u0000\n"})");
  BOOST_REQUIRE(out);
  auto doc = test::parse(*out);
  BOOST_REQUIRE(!doc.HasParseError());
  const auto& t = doc["entry"][0]["resource"]["t"];
  BOOST_TEST(std::string(t.GetString(), t.GetStringLength()) ==
             std::string("\"}]}<script>{{ %ref }}\0\n", 24));
}

BOOST_AUTO_TEST_CASE(load_errors_name_file_and_pointer) {
  auto err = [](const std::string& text) {
    auto m = Mapping::load(text, "m.json", maps());
    BOOST_REQUIRE(!m);
    return m.error();
  };
  BOOST_TEST(err("{").message.starts_with("m.json: invalid JSON"));
  BOOST_TEST(err(R"({"resources":[]})").message ==
             "m.json: /id: required: the mapping's id (a non-empty string)");
  BOOST_TEST(err(wrap(R"({"resourceType":"X","a":{"$iff":"x"}})")).location ==
             "/resources/0/resource/a/$iff");
  auto syntax = err(wrap(R"({"resourceType":"X","a":["ok","{{ a. }}"]})"));
  BOOST_TEST(syntax.location == "/resources/0/resource/a/1");
  BOOST_TEST(syntax.message.find("FHIRPath \"a.\"") != std::string::npos);
  BOOST_TEST(err(wrap(R"({"resourceType":"X","a":"{{ x"})")).message.find("without") !=
             std::string::npos);
  BOOST_TEST(err(wrap(R"({"resourceType":"X","a":{"$translate":{"map":"shapes","code":"x"}}})"))
                 .location == "/resources/0/resource/a/$translate/map");
  BOOST_TEST(err(wrap(R"({"resourceType":"X","a":{"$value":"x","b":"y"}})")).location ==
             "/resources/0/resource/a");
  BOOST_TEST(err(wrap(R"({"resourceType":"{{ t }}"})")).location ==
             "/resources/0/resource/resourceType");
  BOOST_TEST(err(R"({"id":"t","extra":1,"resources":[]})").location == "/extra");
  BOOST_TEST(
      err(R"({"id":"t","resources":[{"key":"a","resource":{"resourceType":"X"}},{"key":"a","resource":{"resourceType":"X"}}]})")
          .location == "/resources/1/key");
  BOOST_TEST(err(wrap(R"({"resourceType":"X","a":{"$as":"x","v":"1"}})")).location ==
             "/resources/0/resource/a/$as");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
