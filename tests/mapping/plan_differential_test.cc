// The compiled plans against the general FHIRPath engine: expression by expression over untyped
// JSON, and whole mapping files over the Flow submissions and their bad variants. A plan must give
// exactly what the engine gives (outputs byte for byte, errors with the same code, message and
// location) or decline; the seed inputs must not be declined.
#include <boost/test/unit_test.hpp>

#include <map>
#include <memory_resource>

#include "engine/mapping/mapping.h"
#include "engine/mapping/plan_expr.h"
#include "test_util.h"

namespace switchboard::mapping {
namespace {

// Compact JSON of a collection the way the plan sees it; empty optional when an item has no
// JSON form in the plan (a date from toDate()).
std::optional<std::string> planJson(const Vals& items) {
  rapidjson::Document doc;
  doc.SetArray();
  auto& alloc = doc.GetAllocator();
  for (const Val& v : items) {
    rapidjson::Value item;
    switch (v.kind) {
      case Val::Kind::kString:
        item.SetString(v.string.data(), static_cast<rapidjson::SizeType>(v.string.size()), alloc);
        break;
      case Val::Kind::kBoolean:
        item.SetBool(v.boolean);
        break;
      case Val::Kind::kInteger:
        item.SetInt64(v.integer);
        break;
      case Val::Kind::kJson:
        item.CopyFrom(*v.json, alloc);
        break;
      case Val::Kind::kOther:
        if (!v.node) return std::nullopt;
        fhirpath::toJson(*v.node, item, alloc);
        break;
    }
    doc.PushBack(item, alloc);
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

std::string engineJson(const fhirpath::Collection& items) {
  rapidjson::Document doc;
  fhirpath::toJson(items, doc, doc.GetAllocator());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(plan_differential)

BOOST_AUTO_TEST_CASE(expressions_agree_with_the_engine) {
  auto input = fhirpath::parseJsonResource(
      R"({"a":" x ","n":3,"arr":["p","q"],"o":{"k":"v","list":[{"m":"1"},{"m":"2"}]},"nul":null,
          "e":"","b":true,"U":"X","ws":"\u000b y \t","d":"2020-02-29","bad":"2020-02-30",
          "dt":"2020-01-01T10:00:00Z","dec":1.50,"big":18446744073709551615,"uni":"Ünïcödé",
          "nested":[["x"]],"valueString":"c","_ext":"e","_ext2":{"id":"z"},"ext2":"w",
          "email":"emily.chen@example.com","list":["whatsapp","email"],"neg":-4})");
  BOOST_REQUIRE(input.has_value());
  fhirpath::Environment env;
  env.setVariable("s", "+1555");
  auto obj = test::parse(R"({"patient":"urn:uuid:1","n":2,"dur":[{"code":"a","minutes":40},
                            {"code":"b","minutes":20}]})");
  env.setVariable("ref", obj);
  env.setVariable("durations", obj["dur"]);
  env.variables["when"] = {fhirpath::Node::temporal(
      *fhirpath::Temporal::parse("2026-02-10T14:00:00.000Z", fhirpath::TemporalKind::kDateTime))};
  env.variables["empty"] = {};
  env.variables["two"] = {fhirpath::Node::string("a"), fhirpath::Node::integer(1)};
  env.variables["input"] = {*input};

  int decided = 0, declined = 0;
  for (const char* text : {
           "a", "a.trim()", "a.lower()", "a.upper()", "a.exists()", "missing", "missing.exists()",
           "missing.trim()", "n", "arr", "o.k", "o.list.m", "nul", "e", "e.trim() != ''",
           "a = ' x '", "a != 'y'", "missing = 'x'", "b", "%s", "%s.trim()", "%ref.patient",
           "%ref.n", "%s = '+1555'", "o.list.m = '1'", "arr.trim()", "a in (' x ' | 'y')",
           "e in ('a')", "missing in ('a' | 'b')", "arr in ('p' | 'q')", "%s in ('+1555')",
           "n in ('3')", "n.trim()", "%undefined", "U", "o.kk", "ws.trim()", "ws.length()",
           "uni.length()", "uni.substring(2, 3)", "uni.indexOf('c')", "uni.upper()",
           "uni.lower()", "d.toDate().exists()", "bad.toDate().exists()", "dt.toDate().exists()",
           "n.toDate()", "d.toDate()", "dec", "dec + 1", "dec = 1.5", "big", "big = 1",
           "nested", "nested.x", "value", "valueString", "ext", "ext2", "email.trim().select("
           "indexOf('@') > 0 and substring(indexOf('@') + 1).contains('.') and substring("
           "indexOf('@') + 1).contains('@').not() and contains(' ').not())",
           "(list.count() = 0) or list.all($this in ('whatsapp' | 'email' | 'sms'))",
           "list.all($this in ('whatsapp'))", "%durations.where(code = 'b').minutes",
           "%durations.where(code = %input.x).minutes", "%durations.minutes",
           "%durations.select(minutes + 1)", "%durations.where(minutes > 30).code",
           "iif(b, 'yes', 'no')", "iif(a = 'z', 'yes')", "iif(n, 'x', 'y')", "iif(arr, 1, 2)",
           "arr.iif(true, 1, 2)", "a & '|' & %s", "a & missing", "n & 'x'", "arr & 'x'",
           "a.substring(0, 2) & ':' & a.substring(2, 2)", "a.substring(5)", "a.substring(-1)",
           "a.substring(1, -3)", "n + 2", "n - 5", "n + 'x'", "-n", "-neg", "n > 2", "a < 'y'",
           "n < 'x'", "true and missing", "missing and false", "missing or true", "b xor true",
           "b implies missing", "missing implies false", "arr and true", "a.not()", "b.not()",
           "arr.first()", "arr.last()", "arr[1]", "arr[5]", "arr['x']", "arr.single()",
           "a.single()", "arr.count()", "arr.empty()", "missing.empty()",
           "arr.exists($this = 'q')", "arr.where($index = 1)", "arr.select($this & $this)",
           "arr | arr", "arr | ('p' | 'z')", "o | o", "a.startsWith(' ')", "a.endsWith('x')",
           "a.contains('x')", "a.indexOf(missing)", "a.indexOf(n)", "a.toString()",
           "n.toString()", "b.toString()", "o.toString()", "%when", "%when.toString()",
           "%when = %when", "%empty", "%empty.exists()", "%two", "%two.count()", "%two = 'a'",
           "$this.a", "$this", "{}", "'lit'", "42", "true", "a.trim().length() > 0",
           "arr.trim()", "o.trim()", "n.lower()", "resourceType", "Patient.name", "%resource",
           "%ucum", "a.matches('x')", "a is String", "_ext", "ext2.id", "%undefined.x",
           "%ref.missing", "%two.x", "%empty.x", "%durations.code", "%when.x", "%s.x",
           "%input.a.trim()", "valueString.trim()", "ws.trim()", "e.trim()", "uni.trim()"}) {
    auto expr = fhirpath::compile(text);
    BOOST_REQUIRE_MESSAGE(expr.has_value(), text);
    auto slow = fhirpath::evaluate(*expr, *input, env);
    SlotTable table;
    auto plan = Plan::compile(*expr, table);
    if (!plan) continue;  // not covered: the engine runs it
    std::vector<std::vector<Val>> values(table.size());
    std::vector<Slot> slots(table.size());
    for (const auto& [name, slot] : table.names()) {
      const auto i = static_cast<std::size_t>(slot);
      if (auto it = env.variables.find(name); it != env.variables.end()) {
        for (const auto& n : it->second) values[i].push_back(planValue(n));
      } else {
        continue;
      }
      slots[i] = Slot{values[i].data(), values[i].size(), true};
    }
    std::pmr::monotonic_buffer_resource memory;
    Vals focus(&memory);
    focus.push_back(*Val::fromJson(*input->json()));
    PlanScope scope{&memory, &slots, &focus};
    Vals quick(&memory);
    if (!plan->evaluate(scope, quick)) {
      ++declined;
      continue;
    }
    ++decided;
    BOOST_REQUIRE_MESSAGE(slow.has_value(), std::string(text) + ": the plan decided where the "
                                                "engine fails: " +
                                                (slow ? "" : slow.error().message));
    auto mine = planJson(quick);
    if (!mine) {
      BOOST_TEST(quick.size() == slow->size(), text);  // dates from toDate(): counted only
      continue;
    }
    BOOST_TEST(*mine == engineJson(*slow), text);
  }
  BOOST_TEST(decided >= 100);
  BOOST_TEST(declined >= 20);
}

namespace {

std::shared_ptr<const Mapping> shipped(const std::string& name) {
  auto m = Mapping::loadFile(test::sourceDir() + "/mappings/" + name);
  BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
  return *m;
}

std::string seedResponse() {
  return test::readFile(test::sourceDir() + "/tests/data/mapping/seed-flow-response.json");
}

// The seed's Flow response with one answer replaced by raw JSON text (or removed: "").
std::string variant(const std::string& field, const std::string& json) {
  auto doc = test::parse(seedResponse());
  if (doc.HasMember(field.c_str())) doc.RemoveMember(field.c_str());
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  doc.Accept(w);
  std::string text = sb.GetString();
  if (json.empty()) return text;
  return "{\"" + field + "\":" + json + "," + text.substr(1);
}

std::string describe(const Result<MappingOutput>& r) {
  if (r) return "ok " + r->payload;
  return "error " + std::to_string(static_cast<int>(r.error().code)) + " [" + r.error().location +
         "] " + r.error().message;
}

}  // namespace

BOOST_AUTO_TEST_CASE(mappings_agree_with_the_engine) {
  std::vector<std::string> inputs = {
      seedResponse(),
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json"),
      test::readFile(test::sourceDir() + "/tests/data/mapping/meta-flow-submission.json"),
      "not json",
      "[1]",
      "null",
      R"({"resourceType":"Patient","id":"x"})",
      R"({"eventType":"inbound_message_received","payload":{"user":{"msisdn":"+15551234567"},
          "type":"Interactive","content":{"interactive":{"type":"nfmReply","nfmReply":
          {"responseJson":"{not json"}}}}})",
      R"({"eventType":"inbound_message_received","payload":{"user":{"msisdn":"+15551234567"},
          "type":"Interactive","content":{"interactive":{"type":"nfmReply","nfmReply":
          {"responseJson":"[1,2]"}}}}})",
  };
  const std::vector<std::string> values = {
      "",           "\"\"",          "\"  \"",         "null",          "42",
      "1.5",        "true",          "[]",             "[\"a\",\"b\"]", "{}",
      "{\"x\":1}",  "\"\\u0001x\"",  "\"\\u000bx\"",   "\"Ünïcödé\"",   "\"2026-02-30\"",
      "\"1030\"",   "\"massage\"",   "\"telehealth\"", "\"self_pay\"",  "\"x@y\"",
      "\"  Chen \"", "[\"pigeon\"]", "[\"sms\"]",      "\"any\"",       "\"2026-02-12T10:00:00Z\"",
      "\"\\ud800\""};
  for (const char* field :
       {"appointment_type", "provider_preference", "visit_reason_category", "visit_notes",
        "patient_first_name", "patient_last_name", "date_of_birth", "patient_email",
        "insurance_status", "insurance_provider", "member_id", "appointment_date", "time_slot",
        "visit_type", "contact_preferences"}) {
    for (const auto& v : values) inputs.push_back(variant(field, v));
  }
  inputs.push_back(variant("_patient_last_name", "{\"id\":\"x\"}"));
  inputs.push_back(variant("visit_typeCode", "\"x\""));
  inputs.push_back(variant("flow_token", "1e999"));
  inputs.push_back(variant("patient_last_name", "\"First\", \"patient_last_name\": \"Second\""));
  inputs.push_back(variant("_x", "1, \"patient_first_name\": \"Dup\""));
  inputs.push_back(variant("flow_token", "[1.50, -0, 18446744073709551616, {\"a\": null}]"));
  inputs.push_back(variant("visit_notes", "\"tab\\tquote\\\"slash\\\\ctl\\u001f\\u007f end\""));
  // Invalid UTF-8 in an answer that reaches the output.
  {
    std::string bad = seedResponse();
    auto at = bad.find("Chen");
    bad.replace(at, 4, "Ch\xff\xfe");
    inputs.push_back(bad);
  }

  std::vector<fhirpath::Environment> envs(4);
  envs[0].setVariable("sender", "+15551234567");
  envs[1].setVariable("sender", "+15551234567");
  envs[1].setVariable("facility", "HealthCare Clinic");
  envs[1].variables["receivedAt"] = {fhirpath::Node::temporal(
      *fhirpath::Temporal::parse("2026-02-10T14:00:00.000Z", fhirpath::TemporalKind::kDateTime))};
  envs[1].setVariable("appointment_status", "proposed");
  envs[2].setVariable("appointment_status", "cancelled");
  envs[2].setVariable("timezone", "Europe/Paris");
  envs[3].setVariable("sender", "+15551234567");
  envs[3].setVariable("timezone", "Nowhere/Land");

  int decided = 0, total = 0;
  for (const char* file : {"whatsapp-flow-appointment.json", "whatsapp-flow-registration.json"}) {
    auto m = shipped(file);
    BOOST_TEST(m->planned(), file);
    for (const auto& env : envs) {
      for (const auto& input : inputs) {
        ++total;
        auto general = m->runGeneral(input, env);
        auto chosen = m->run(input, env);
        BOOST_TEST(describe(chosen) == describe(general), file << " on " << input);
        auto planned = m->runPlanned(input, env);
        if (planned || planned.error().code != ErrorCode::kNotSupported) {
          ++decided;
          BOOST_TEST(describe(planned) == describe(general), file << " on " << input);
        }
      }
    }
    // The seed submissions never leave the plans.
    fhirpath::Environment env;
    env.setVariable("facility", "HealthCare Clinic");
    for (const char* seed : {"seed-8x8-flow-submission.json", "meta-flow-submission.json"}) {
      auto out =
          m->runPlanned(test::readFile(test::sourceDir() + "/tests/data/mapping/" + seed), env);
      BOOST_TEST(out.has_value(), file << " on " << seed << ": "
                                       << (out ? std::string() : out.error().message));
    }
  }
  BOOST_TEST_MESSAGE("plans decided " << decided << " of " << total << " runs");
  BOOST_TEST(decided * 10 >= total * 8);
}

// What the plans compute once: literal parts written at load (objects, arrays and runs of
// members, with the parts that vanish), unions of literals, results kept for the run (and
// dropped where %ref and %id change, or not kept where $let or $each rebinds a variable).
BOOST_AUTO_TEST_CASE(precomputed_parts_agree_with_the_engine) {
  const std::vector<std::string> mappings = {
      // Literal objects and arrays, vanishing members among them, runs between expressions.
      R"J({"id":"fixed","resources":[{"key":"r","resource":{"resourceType":"Basic",
          "a":{"x":"1","y":null,"z":"  ","w":{},"v":[],"u":[[]],"t":{"s":null},"n":2,"b":false},
          "c":[{"k":"v"},{},null,"",[{"q":[1,"2",true]}]],"d":{"e":{"f":{}}},"g":[[],{}],
          "h":"{{ a }}","i":"lit","j":{"k":"{{ missing }}","l":"x"},"m":[{"n":"{{ a }}"},"o"],
          "p":"{{ missing }}","q":{"r":"s","r":"dup"},"é":"ü","k2":[{"x":"{{ a }}"}, {"y":1}],
          "last":{"only":""}}}]})J",
      // Unions of literals (duplicates, mixed kinds) in templates and tests.
      R"J({"id":"unions","resources":[{"key":"r","resource":{"resourceType":"Basic",
          "a":"{{ ('b' | 'a' | 'b' | 1 | true | 1) }}","b":"{{ a in ('x' | 'x') }}",
          "c":"{{ ('q' | 'r') contains a }}","d":"{{ a in ('p' | 2) }}",
          "e":"{{ (a | 'z' | a) }}"}}]})J",
      // Results kept for the run: a $let and an $each rebinding run-wide names, %ref and %id
      // given by the caller and then set by the run.
      R"J({"id":"memo","assert":[{"that":"%ref.r","message":"m"}],"resources":[{"key":"r",
          "identity":"%id.r","resource":{"resourceType":"Basic","a":"{{ %sender }}",
          "b":"{{ %ref.r }}","c":{"$let":{"sender":"{{ a & '!' }}"},"d":"{{ %sender }}",
          "e":"{{ %sender.length() }}"},"f":"{{ %sender }}","g":[{"$each":"arr","$as":"sender",
          "h":"{{ %sender }}","i":"{{ %senderIndex }}"}],"j":"{{ %sender.length() }}",
          "k":"{{ %id.r }}"}},{"key":"s","resource":{"resourceType":"Basic","a":"{{ %ref.r }}",
          "b":"{{ %sender }}"}}]})J",
      // The writer's program (EmitStep): arrays of fixed, dynamic and vanishing elements side
      // by side, objects with and without directives, $each as an element and as a member,
      // values of several items, text, plans with three kids and names longer than a short
      // string.
      R"J({"id":"program","resources":[{"key":"r","resource":{"resourceType":"Basic",
          "a":["{{ a }}","lit","{{ missing }}",{"x":"{{ missing }}"},["{{ arr }}",[]],
               {"y":"{{ a }}","z":"f"},null,{"$if":"a.exists()","w":"{{ a }}"}],
          "b":{"$if":"a.exists()","c":"{{ arr }}","d":"fixed","e":{"f":"{{ a }}"}},
          "h":[{"$each":"arr","$as":"it","$if":"%it != 'q'","v":"{{ %it }}"}],
          "i":{"$each":"arr","$as":"it","w":"{{ %itIndex }}","fx":"k"},
          "j":{"$let":{"l":"{{ a & '-' }}"},"k":"{{ %l }}","m":{"n":"{{ %l.length() }}"}},
          "a_member_with_a_long_name":"{{ a_member_with_a_long_name.trim() }}",
          "t":"pre {{ a }} post","iff":"{{ iif(a = 'x', 'yes', 'no') }}",
          "o":{"p":{"q":{"r":"{{ missing }}"}},"s":"t"},"n":"{{ n }}","e":"{{ a.exists() }}",
          "two":"{{ arr | a }}","deep":[[["{{ a }}"]],[[]]]}},
          {"key":"s","$if":"arr.exists()","resource":{"resourceType":"Basic","a":"{{ arr }}"}}]})J",
      // The input object's members, each looked for once per run (PlanScope::inputMembers):
      // one answer read by many plans, as a path's first step, inside where() and through
      // %input, answers absent, repeated (the first counts) or beside an extension.
      R"J({"id":"names","assert":[{"that":"a.exists() or a.empty()","message":"m"}],
          "resources":[{"key":"r","identity":"a.trim()","resource":{"resourceType":"Basic",
          "a":"{{ a }}","b":"{{ a.trim() }}","c":"{{ a & '|' & arr.first() }}",
          "d":"{{ missing }}","e":"{{ missing.exists() }}","f":"{{ o.a }}",
          "g":"{{ o.where(a = %input.a).k }}","h":"{{ arr }}","i":"{{ %input.a }}",
          "j":"{{ iif(a.exists(), a, 'none') }}","k":[{"$each":"arr","$as":"x",
          "v":"{{ %x & a }}"}],"l":"{{ a.length() }}"}}]})J",
  };
  const std::vector<std::string> inputs = {
      R"({"a":"x","arr":["p","q"]})", R"({"a":"q"})", R"({"arr":[]})", R"({"a":" "})",
      R"({"a":"\u00fc"})", "{}",
      R"({"a":"x","arr":["q"],"a_member_with_a_long_name":" long ","n":5})",
      R"({"a":"first","arr":["p"],"a":"second","o":{"a":"first","k":"found"}})",
      R"({"o":[{"a":" y ","k":"1"},{"a":"y","k":"2"}],"a":"y","arr":"one"})",
      R"({"_a":{"id":"e"},"a":"x","arr":["p"]})", R"({"aa":"x","A":"y","arr":[1,2]})"};
  // %ref and %id given by the caller: what the assertion and the identity (evaluated before the
  // run sets its own) see, unlike the resources.
  std::vector<fhirpath::Environment> envs(3);
  for (auto& env : envs) {
    env.setVariable("ref", test::parse(R"({"r":"given"})"));
    env.setVariable("id", test::parse(R"({"r":"x"})"));
  }
  envs[1].setVariable("sender", "+15551234567");
  envs[2].setVariable("sender", "+15551234567");
  envs[2].setVariable("id", test::parse(R"({"r":"y"})"));
  int decided = 0, total = 0;
  for (const auto& text : mappings) {
    auto m = Mapping::load(text, "t.json", std::make_shared<ConceptMapSet>());
    BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
    BOOST_TEST((*m)->planned(), text);
    for (const auto& env : envs) {
      for (const auto& input : inputs) {
        ++total;
        auto general = (*m)->runGeneral(input, env);
        BOOST_TEST(describe((*m)->run(input, env)) == describe(general), text << " on " << input);
        auto planned = (*m)->runPlanned(input, env);
        if (planned || planned.error().code != ErrorCode::kNotSupported) {
          ++decided;
          BOOST_TEST(describe(planned) == describe(general), text << " on " << input);
        }
      }
    }
  }
  BOOST_TEST(decided * 10 >= total * 8);
}

// Text outside ASCII, valid or not, in the mapping file's own literals and keys: the output is
// checked for UTF-8 whether or not an answer holds such text.
BOOST_AUTO_TEST_CASE(literal_text_outside_ascii) {
  for (const std::string& literal : {std::string("\xc3\xbc"), std::string("\xff\xfe")}) {
    for (const std::string& where : {"\"k\":\"" + literal + "\"", "\"" + literal + "\":\"v\""}) {
      auto m = Mapping::load(R"({"id":"u","resources":[{"key":"r","resource":{
          "resourceType":"Basic",)" + where + R"(,"a":"{{ a }}"}}]})",
                             "u.json", std::make_shared<ConceptMapSet>());
      BOOST_REQUIRE(m.has_value());
      for (const char* input : {R"({"a":"x"})", R"({"a":"\u00fc"})"}) {
        auto general = (*m)->runGeneral(input, {});
        BOOST_TEST(describe((*m)->runPlanned(input, {})) == describe(general), where);
      }
    }
  }
}

// Strings and whitespace read in place by the plans' parser (runs of plain bytes or blanks taken
// sixteen at a time): a plain run of every length around the scan's width, then an escape, a raw
// control byte, bytes outside ASCII, a bad escape, a NUL or the end of the text, in an answer of
// the string-encoded response and in the 8x8 envelope itself. Values, errors and error offsets
// as the engine's reader gives them.
BOOST_AUTO_TEST_CASE(strings_read_in_place_agree_with_the_engine) {
  const std::vector<std::string> tails = {
      "\\\"q\\\\e\\n", "\\u00e9\\ud83d\\ude00z", "\x01", "\x1f", "\x7f\x80 ok",
      "\xc3\xa9", "\xff", "\\x", "\\u12", std::string("a\0b", 3), ""};
  std::vector<std::string> inputs;
  const std::string envelope =
      test::readFile(test::sourceDir() + "/tests/data/mapping/seed-8x8-flow-submission.json");
  for (std::size_t run : {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 70}) {
    std::string plain;
    for (std::size_t i = 0; i < run; ++i) plain.push_back(static_cast<char>('a' + i % 26));
    for (const auto& tail : tails) {
      const std::string text = plain + tail;
      // An answer ending the string after the tail, and one left open there.
      inputs.push_back(variant("visit_notes", "\"" + text + " end\""));
      inputs.push_back(variant("visit_notes", "\"" + text));
      inputs.push_back(variant("visit_notes", "\"" + text).substr(0, 20 + text.size()));
      // The same text as the envelope's own string.
      std::string outer = envelope;
      outer.replace(outer.find("health-xyz-789"), 14, text);
      inputs.push_back(outer);
      inputs.push_back(outer.substr(0, outer.find(text) + text.size()));
    }
  }
  // Whitespace runs of every length around the width between the envelope's tokens (and the
  // text cut inside one), spaces, tabs, carriage returns and newlines mixed.
  for (std::size_t run : {1, 2, 15, 16, 17, 31, 33, 64}) {
    std::string blank;
    for (std::size_t i = 0; i < run; ++i) blank.push_back(" \t\r\n"[(i * 7) % 4]);
    std::string spaced;
    for (char ch : envelope) {
      spaced.push_back(ch);
      if (ch == ',' || ch == ':' || ch == '{') spaced += blank;
    }
    inputs.push_back(spaced);
    inputs.push_back(spaced.substr(0, spaced.find("\"umid\"") - run / 2));
    inputs.push_back(spaced + blank);
    inputs.push_back(spaced + blank + "x");
  }
  fhirpath::Environment env;
  env.setVariable("sender", "+15551234567");
  auto m = shipped("whatsapp-flow-appointment.json");
  int decided = 0, failed = 0;
  for (const auto& input : inputs) {
    auto general = m->runGeneral(input, env);
    if (!general) ++failed;
    BOOST_TEST(describe(m->run(input, env)) == describe(general), input);
    auto planned = m->runPlanned(input, env);
    if (planned || planned.error().code != ErrorCode::kNotSupported) {
      ++decided;
      BOOST_TEST(describe(planned) == describe(general), input);
    }
  }
  BOOST_TEST_MESSAGE("strings: plans decided " << decided << " of " << inputs.size() << ", "
                                              << failed << " errors");
  BOOST_TEST(decided * 10 >= static_cast<int>(inputs.size()) * 8);
  BOOST_TEST(failed * 4 >= static_cast<int>(inputs.size()));  // errors are compared too
}

// Strings the plans write (one answer, alone, trimmed and inside text): every length up to past
// two of the writer's sixteen-byte blocks, with a byte that must be escaped or marks text outside
// ASCII at each position (the writer checks short strings as two overlapping words or half-words,
// longer ones by blocks and an overlapping last block), or none.
BOOST_AUTO_TEST_CASE(written_strings_agree_with_the_engine) {
  auto m = Mapping::load(R"({"id":"w","resources":[{"key":"r","resource":{"resourceType":"Basic",
      "a":"{{ a }}","b":["{{ a.trim() }}"],"c":"<{{ a }}>","d":{"e":"{{ a }}"}}}]})",
                         "w.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST((*m)->planned());
  const std::vector<std::string> specials = {"\\\"", "\\\\", "\\u0001", "\\u001f", "\\n",
                                             "\u007f", "\u00e9", "\\ud83d\\ude00"};
  int runs = 0, decided = 0;
  for (std::size_t len = 0; len <= 40; ++len) {
    if (len > 20 && len != 23 && len != 24 && len != 31 && len != 32 && len != 33 && len != 40)
      continue;
    std::string plain;
    for (std::size_t i = 0; i < len; ++i) plain.push_back(static_cast<char>('a' + i % 26));
    std::vector<std::string> texts = {plain};
    for (std::size_t at = 0; at < len; ++at) {
      for (const auto& special : specials) {
        std::string text = plain;
        text.replace(at, 1, special);
        texts.push_back(text);
      }
    }
    for (const auto& text : texts) {
      const std::string input = R"({"a":")" + text + "\"}";
      ++runs;
      auto general = (*m)->runGeneral(input, {});
      auto planned = (*m)->runPlanned(input, {});
      BOOST_TEST(describe((*m)->run(input, {})) == describe(general), input);
      if (planned || planned.error().code != ErrorCode::kNotSupported) {
        ++decided;
        BOOST_TEST(describe(planned) == describe(general), input);
      }
    }
  }
  BOOST_TEST(decided == runs);
}

// $translate in the plans: every select, Codings with and without system and display, unmatched
// elements, "provided" and "fixed" unmapped groups (a "provided" answer views the code's own
// text), optional and required codes, several translations in one array, text outside ASCII and
// text that needs escaping.
BOOST_AUTO_TEST_CASE(translations_agree_with_the_engine) {
  auto maps = std::make_shared<ConceptMapSet>();
  for (const char* text : {
           R"({"resourceType":"ConceptMap","id":"full","status":"active","group":[{
           "source":"urn:s","target":"urn:t","element":[
           {"code":"a","display":"Ay","target":[{"code":"A","display":"Big \"A\"\\ é",
            "equivalence":"equivalent"}]},
           {"code":"b","target":[{"code":"B","equivalence":"equivalent"}]},
           {"code":"n","display":"None","target":[{"equivalence":"unmatched"}]}]}]})",
           R"({"resourceType":"ConceptMap","id":"bare","status":"active","group":[{
           "element":[{"code":"a","target":[{"code":"A1","display":"one",
            "equivalence":"equal"}]}]}]})",
           R"({"resourceType":"ConceptMap","id":"prov","status":"active","group":[{
           "target":"urn:p","element":[{"code":"a","target":[{"code":"PA","equivalence":"equal"}]}],
           "unmapped":{"mode":"provided"}}]})",
           R"({"resourceType":"ConceptMap","id":"fix","status":"active","group":[{"target":"urn:f",
           "element":[],"unmapped":{"mode":"fixed","code":"UNK","display":"unknown"}}]})"}) {
    BOOST_REQUIRE(maps->add(test::parse(text), "m.json"));
  }
  int decided = 0, total = 0, failed = 0;
  for (const char* map : {"full", "bare", "prov", "fix"}) {
    std::string resource = R"({"resourceType":"Basic")";
    int k = 0;
    for (const char* select : {"", "code", "system", "display", "source-display"}) {
      for (const char* required : {"", ",\"required\":false"}) {
        std::string directive = std::string(R"({"$translate":{"map":")") + map +
                                R"(","code":"{{ c }}")" + required;
        if (*select) directive += std::string(R"(,"select":")") + select + "\"";
        directive += "}}";
        resource += ",\"f" + std::to_string(k++) + "\":" + directive;
        resource += ",\"g" + std::to_string(k++) + "\":[" + directive + ",\"x\"," + directive +
                    "," + directive + "]";
      }
    }
    resource += std::string(R"(,"h":{"$translate":{"map":")") + map +
                R"(","code":"{{ c }}","system":"{{ s }}","required":false}})";
    // With a directive beside it, the object is walked as one (not as a $translate alone).
    resource += std::string(R"J(,"i":{"$if":"c.exists()","$translate":{"map":")J") + map +
                R"(","code":"{{ c }}","required":false}})";
    resource += std::string(R"(,"j":[{"$let":{"d":"{{ c }}"},"$translate":{"map":")") + map +
                R"(","code":"{{ %d }}","select":"display","required":false}},"y"]})";
    auto m = Mapping::load(R"({"id":"tr","resources":[{"key":"r","resource":)" + resource + "}]}",
                           "tr.json", maps);
    BOOST_REQUIRE_MESSAGE(m.has_value(), (m ? std::string() : m.error().message));
    BOOST_TEST((*m)->planned());
    for (const char* input :
         {R"({"c":"a"})", R"({"c":"b"})", R"({"c":"n"})", R"({"c":"zzz"})",
          R"({"c":"a","s":"urn:s"})", R"({"c":"a","s":"urn:other"})", R"({})",
          R"({"c":"\u00e9\"q"})", R"({"c":""})"}) {
      ++total;
      auto general = (*m)->runGeneral(input, {});
      if (!general) ++failed;
      BOOST_TEST(describe((*m)->run(input, {})) == describe(general), map << " on " << input);
      auto planned = (*m)->runPlanned(input, {});
      if (planned || planned.error().code != ErrorCode::kNotSupported) {
        ++decided;
        BOOST_TEST(describe(planned) == describe(general), map << " on " << input);
      }
    }
  }
  BOOST_TEST(decided == total);
  BOOST_TEST(failed > 0);
  BOOST_TEST(failed < total);
}

// Objects whose members are one lookup: no key with "_" first, no "resourceType", no capital
// letter anywhere in a key (found eight bytes at a time): each position of keys up to twenty
// bytes, the bytes either side of 'A' to 'Z', and bytes outside ASCII whose low seven bits are
// capitals.
BOOST_AUTO_TEST_CASE(plain_objects_by_their_keys) {
  for (std::size_t len = 1; len <= 20; ++len) {
    for (std::size_t pos = 0; pos < len; ++pos) {
      for (char ch : {'A', 'M', 'Z', '@', '[', 'a', 'z', '\xc1', '\xda'}) {
        std::string key(len, 'a');
        key[pos] = ch;
        rapidjson::Document doc;
        doc.SetObject();
        rapidjson::Value name(key.data(), static_cast<rapidjson::SizeType>(key.size()),
                              doc.GetAllocator());
        rapidjson::Value one(1);
        doc.AddMember(name, one, doc.GetAllocator());
        PlanScope scope;
        const bool capital = ch >= 'A' && ch <= 'Z';
        BOOST_TEST(scope.isPlain(doc) == !capital, "key of " << len << " with " << ch << " at "
                                                                << pos);
        BOOST_TEST(scope.isPlain(doc) == !capital);  // remembered
      }
    }
  }
  for (const char* key : {"_given", "resourceType", "valueString", "plain_key"}) {
    rapidjson::Document doc;
    doc.SetObject();
    rapidjson::Value one(1);
    doc.AddMember(rapidjson::StringRef(key), one, doc.GetAllocator());
    PlanScope scope;
    BOOST_TEST(scope.isPlain(doc) == (std::string(key) == "plain_key"), key);
  }
}

BOOST_AUTO_TEST_CASE(uncovered_expressions_run_on_the_engine) {
  auto m = Mapping::load(
      R"({"id":"t","resources":[{"key":"r","resource":{"resourceType":"Basic",
          "id":"{{ a.matches('x') }}","text":"{{ n * 2 }}"}}]})",
      "t.json", std::make_shared<ConceptMapSet>());
  BOOST_REQUIRE(m.has_value());
  BOOST_TEST(!(*m)->planned());
  auto out = (*m)->run(R"({"a":"x","n":2})", {});
  BOOST_REQUIRE(out.has_value());
  BOOST_TEST(out->payload.find("\"text\":4") != std::string::npos);
  BOOST_TEST(static_cast<int>((*m)->runPlanned(R"({"a":"x"})", {}).error().code) ==
             static_cast<int>(ErrorCode::kNotSupported));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
