// Reply template plans against the general FHIRPath engine: the shipped templates and hand-written
// ones (expressions plans do not cover, missing elements, several Appointments, choice elements,
// primitive extensions, odd JSON, non-ASCII text, engine errors) over the test Bundles and variants
// made here must render byte for byte as renderWithEngine() renders them, errors included.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "channels/reply/reply_template.h"
#include "engine/fhirpath/fhirpath.h"
#include "tests/support/source_tests.h"

using namespace switchboard;
using namespace switchboard::channels::reply;

namespace {

std::string sourceDir() {
  const char* env = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return env && *env ? env : SB_SOURCE_DIR;
}

std::string readSource(const std::string& relative) {
  return switchboard::testing::readTestFile(sourceDir() + "/" + relative);
}

// The variables the reply destination sets as text (empty: an empty collection), with and
// without the optional ones.
PlanVariables textVariables(bool withAppointmentNumber) {
  return {{"sender", "+15551234567"},
          {"channel", "whatsapp-appointments"},
          {"provider", "meta"},
          {"upstreamStatus", "succeeded"},
          {"clinicPhone", "+1 (555) 010-0200"},
          {"timezone", "America/New_York"},
          {"appointmentNumber", withAppointmentNumber ? "12" : ""},
          {"localDate", "Monday, March 9, 2026"},
          {"localTime", "10:30 AM"},
          {"localDateIso", "2026-03-09"},
          {"clinicName", "Riverside Family Clinic"},
          {"clinicAddress", "123 Medical Center Dr, San José, CA 95110"},
          {"telehealthInstructions", "We will send you the video link one hour before."}};
}

// The same as the engine's Environment, plus two variables that are not text.
fhirpath::Environment environment(bool withAppointmentNumber) {
  fhirpath::Environment env;
  for (const auto& [name, value] : textVariables(withAppointmentNumber)) {
    if (value.empty()) {
      env.setVariable(std::string(name), fhirpath::Collection{});
    } else {
      env.setVariable(std::string(name), std::string(value));
    }
  }
  env.setVariable("count", fhirpath::Collection{fhirpath::Node::integer(3)});
  env.setVariable("flag", fhirpath::Collection{fhirpath::Node::boolean(true)});
  return env;
}

std::string write(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// Variants of the appointment Bundle: each edit is applied to a fresh copy.
std::vector<std::pair<std::string, std::string>> bundles() {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string base = readSource("tests/data/reply/appointment-bundle.json");
  out.emplace_back("appointment-bundle.json", base);
  out.emplace_back("telehealth-bundle.json", readSource("tests/data/reply/telehealth-bundle.json"));

  auto variant = [&](const std::string& name, auto&& edit) {
    rapidjson::Document d;
    d.Parse(base.c_str(), base.size());
    BOOST_REQUIRE(!d.HasParseError());
    auto& a = d.GetAllocator();
    rapidjson::Value* patient = nullptr;
    rapidjson::Value* appointment = nullptr;
    rapidjson::Value* response = nullptr;
    for (auto& e : d["entry"].GetArray()) {
      std::string type = e["resource"]["resourceType"].GetString();
      if (type == "Patient") patient = &e["resource"];
      if (type == "Appointment") appointment = &e["resource"];
      if (type == "QuestionnaireResponse") response = &e["resource"];
    }
    BOOST_REQUIRE(patient && appointment && response);
    edit(d, a, *patient, *appointment, *response);
    out.emplace_back(name, write(d));
  };
  using Alloc = rapidjson::Document::AllocatorType;
  auto parse = [](const char* text, Alloc& a) {
    rapidjson::Document tmp;
    tmp.Parse(text);
    BOOST_REQUIRE(!tmp.HasParseError());
    rapidjson::Value v;
    v.CopyFrom(tmp, a);
    return v;
  };

  // Two Appointments: the second telehealth, with its own provider and service.
  variant("two appointments", [&](rapidjson::Document& d, Alloc& a, rapidjson::Value&,
                                  rapidjson::Value& appt, rapidjson::Value&) {
    rapidjson::Value entry(rapidjson::kObjectType);
    rapidjson::Value copy;
    copy.CopyFrom(appt, a);
    copy["serviceType"][0]["text"].SetString("Follow-up 🩺", a);
    copy["participant"][1]["actor"]["display"].SetString("Dra. María José Ibáñez", a);
    copy["serviceCategory"][0]["coding"][0]["code"].SetString("VR", a);
    copy["start"].SetString("2026-03-10T14:00:00Z", a);
    entry.AddMember("resource", copy, a);
    d["entry"].PushBack(entry, a);
  });
  // Missing elements: no name, no participants, no service type, no answers.
  variant("missing elements", [&](rapidjson::Document&, Alloc&, rapidjson::Value& patient,
                                  rapidjson::Value& appt, rapidjson::Value& qr) {
    patient.RemoveMember("name");
    appt.RemoveMember("participant");
    appt.RemoveMember("serviceType");
    qr.RemoveMember("item");
  });
  // Primitive extensions beside values and a given name that is only an extension.
  variant("primitive extensions", [&](rapidjson::Document&, Alloc& a, rapidjson::Value& patient,
                                      rapidjson::Value& appt, rapidjson::Value&) {
    patient["name"][0].AddMember(
        "_given", parse(R"([null, {"extension": [{"url": "x", "valueString": "y"}]}])", a), a);
    appt["participant"][1]["actor"].AddMember("_display", parse(R"({"id": "d1"})", a), a);
  });
  // Answers of every kind; the visit type says telehealth; active flags; a fractional instant.
  variant("choice answers", [&](rapidjson::Document&, Alloc& a, rapidjson::Value& patient,
                                rapidjson::Value& appt, rapidjson::Value& qr) {
    qr["item"] = parse(R"([
      {"linkId": "visit_type", "answer": [{"valueCoding": {"code": "telehealth"}},
                                          {"valueString": "telehealth"}]},
      {"linkId": "flags", "answer": [{"valueBoolean": true}, {"valueInteger": 3},
                                     {"valueDecimal": 1.50}, {"valueDate": "2026-03"},
                                     {"valueDateTime": "2026-03-09T09:30:00.5Z"}]}])",
                       a);
    patient.AddMember("active", true, a);
    appt["start"].SetString("2026-03-09T14:30:00.250Z", a);
    appt.AddMember("minutesDuration", 30, a);
  });
  // JSON an EHR should not see but a template must survive: nulls in arrays, an entry without a
  // resource, a resource without a type, a number where text belongs, an unknown resource type.
  variant("odd json", [&](rapidjson::Document& d, Alloc& a, rapidjson::Value& patient,
                          rapidjson::Value& appt, rapidjson::Value&) {
    patient["name"][0]["given"] = parse(R"([null, "Zoë", null])", a);
    appt["serviceType"][0]["text"].SetInt(42);
    d["entry"].PushBack(parse(R"({"fullUrl": "urn:uuid:x"})", a), a);
    d["entry"].PushBack(parse(R"({"resource": {"id": "no-type"}})", a), a);
    d["entry"].PushBack(parse(R"({"resource": {"resourceType": "Wibble", "name": "w"}})", a), a);
    d["entry"].PushBack(parse(R"J({"resource": {"resourceType": "Appointment", "participant":
        [{"actor": {"type": "Practitioner", "display": "Dr. Sarah Smith (Family Medicine)"}},
         {"actor": {"type": "Location"}}]}})J",
                              a),
                        a);
  });
  return out;
}

// Hand-written templates: one per line of `lines` plus some alone (an error stops a render, so
// expressions the engine may refuse are templates of their own).
std::vector<std::pair<std::string, std::string>> templates() {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("appointment-confirmed.txt",
                   readSource("conf/replies/appointment-confirmed.txt"));
  out.emplace_back("appointment-rejected.txt", readSource("conf/replies/appointment-rejected.txt"));
  const char* lines[] = {
      // covered by plans
      "{{ entry.resource.ofType(Patient).name.given }}",
      "{{ entry.resource.ofType(Patient).name.family.first() }} / {{ "
      "entry.resource.ofType(Patient).name.given.last() }}",
      "{{ entry.resource.ofType(Appointment).participant.actor.display }}",
      "{{ entry.resource.ofType(Appointment).participant.where(actor.type = "
      "'Location').actor.display }}",
      "{{ "
      "entry.resource.ofType(Appointment).participant.actor.display.where($this.startsWith('Dr')) "
      "}}",
      "{{ entry.resource.ofType(Appointment).participant.actor.where(display.endsWith(')')).type "
      "}}",
      "{{ entry.resource.ofType(Appointment).participant.actor.where(display.contains('ñ') or "
      "display.contains('Ib')).display }}",
      "{{#if entry.resource.ofType(Appointment).participant.where(actor.display = 'Zoë "
      "Núñez-Łukasiewicz').exists()}}self{{else}}other{{/if}}",
      "{{ entry.resource.ofType(Appointment).serviceType.text }} | {{ "
      "entry.resource.ofType(Appointment).comment }}",
      "{{ (entry.resource.ofType(Appointment).serviceType | "
      "entry.resource.ofType(Appointment).serviceType).text }}",
      "{{ entry.resource.ofType(Appointment).select(serviceType | serviceCategory).text }}",
      "{{ entry.resource.ofType(Appointment).start }} {{ "
      "entry.resource.ofType(Appointment).end.first() }}",
      "{{ entry.resource.ofType(Appointment).minutesDuration }} {{ "
      "entry.resource.ofType(Patient).active }} {{ entry.resource.ofType(Patient).active.not() }}",
      "{{#if entry.resource.ofType(Patient).active}}active{{else}}not active{{/if}}",
      "{{#if entry.resource.ofType(Patient).active = true}}yes{{/if}}{{#if "
      "entry.resource.ofType(Patient).active != true}}no{{/if}}",
      "{{ entry.resource.ofType(QuestionnaireResponse).item.answer.value }}",
      "{{ entry.resource.ofType(QuestionnaireResponse).item.answer.value.select(toString()) }}",
      "{{ entry.resource.ofType(QuestionnaireResponse).item.where(linkId = "
      "'visit_type').answer.value.code }}",
      "{{#if 'telehealth' in "
      "entry.resource.ofType(QuestionnaireResponse).item.answer.value.select(toString())}}video{{/"
      "if}}",
      "{{ entry.resource.ofType(DomainResource).exists() }} {{ "
      "entry.resource.ofType(Resource).empty() }} {{ entry.resource.ofType(Bundle).exists() }}",
      "{{ entry.resource.ofType(FHIR.Patient).birthDate }} {{ "
      "entry.resource.ofType(Coverage).status }}",
      "{{ entry.resource.name }} {{ entry.fullUrl }}",
      "{{ %clinicName }} {{ %appointmentNumber.exists() }} {{ %appointmentNumber }} {{ %flag }} {{ "
      "%count }}",
      "{{#if %appointmentNumber.exists().not()}}none{{/if}} {{ %sender.startsWith('+1') }}",
      "{{ true }} {{ 'Zoë' }} {{ ('a' | 'b' | 'a') }} {{ ('a' = 'a') and ('b' != 'b') }} {{ {} }}",
      "{{ entry.resource.ofType(Appointment).participant.type.coding.code = 'PPRF' }}",
      "{{ entry.resource.ofType(Appointment).participant.where(type.coding.code = 'PPRF' or "
      "actor.reference.startsWith('Practitioner')).status }}",
      // not covered by plans: the engine evaluates them
      "{{ entry.count() }} {{ entry.resource.ofType(Appointment).participant.count() > 1 }}",
      "{{ Bundle.entry.resource.ofType(Patient).name.given[1] }} {{ %resource.type }}",
      "{{ iif(entry.resource.ofType(Patient).exists(), 'p', 'q') }} {{ "
      "entry.resource.ofType(Appointment).minutesDuration + 1 }}",
      "{{ entry.resource.ofType(Patient).name.family.upper() }} {{ "
      "entry.resource.ofType(Appointment).start.first().toString().substring(0, 10) }}",
      "{{ "
      "entry.resource.ofType(Appointment).participant.actor.display.exists($this.startsWith('Dr')) "
      "}}",
  };
  std::string all;
  for (const char* line : lines) {
    all += line;
    all += "\n";
  }
  out.emplace_back("lines", all);
  // Alone: the engine may report an error on some Bundles, and the plan must report the same.
  const char* alone[] = {
      "{{ entry.resource.ofType(Patient).name.given.startsWith('Z') }}",
      "{{ entry.resource.ofType(Patient).nmae }}",
      "{{ entry.resource.ofType(Appointment).participant.where(actor.display) }}",
      "{{#if entry.resource.ofType(Appointment).participant.actor.display = 'x' or true}}x{{/if}}",
      "{{ entry.resource.ofType(Appointment).serviceType.text.startsWith('S') }}",
      "{{ entry.resource.ofType(QuestionnaireResponse).item.answer.value.toString() }}",
      "{{ %undefinedVariable }}",
      "{{ "
      "entry.resource.ofType(Appointment).participant.actor.reference.startsWith('Practitioner') "
      "}}",
      "{{ entry.resource.ofType(Patient).name.given.upper() }}",
      "{{ "
      "entry.resource.ofType(Appointment).participant.where(actor.display.startsWith('D')).actor."
      "display }}",
  };
  for (const char* t : alone) out.emplace_back(t, t);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(plans_render_exactly_as_the_engine) {
  int planned = 0, engine = 0, compared = 0, errors = 0;
  auto parsedBundles = bundles();
  std::vector<std::pair<std::string, fhirpath::Node>> foci;
  for (const auto& [name, text] : parsedBundles) {
    auto node = fhirpath::parseJsonResource(text);
    BOOST_REQUIRE_MESSAGE(node.has_value(), name);
    foci.emplace_back(name, *node);
  }
  foci.emplace_back("no Bundle", fhirpath::Node());  // a rejection whose payload did not parse

  for (const auto& [tplName, tplText] : templates()) {
    auto tpl = ReplyTemplate::parse(tplText, tplName);
    BOOST_REQUIRE_MESSAGE(tpl.has_value(), tplName + ": " + (tpl ? "" : tpl.error().message));
    for (const auto& [focusName, focus] : foci) {
      for (bool number : {true, false}) {
        const fhirpath::Environment env = environment(number);
        ReplyTemplate::RenderStats stats;
        auto fast = tpl->render(focus, env, &stats);
        auto general = tpl->renderWithEngine(focus, env);
        planned += stats.planned;
        engine += stats.engine;
        ++compared;
        const std::string what = tplName + " over " + focusName;
        // The reply destination's way: the variables as text, the Environment only on demand.
        int asked = 0;
        const PlanVariables vars = textVariables(number);
        auto fromText = tpl->render(focus, vars, [&]() -> const fhirpath::Environment& {
          ++asked;
          return env;
        });
        if (stats.engine == 0) BOOST_TEST(asked == 0, what);
        BOOST_REQUIRE_MESSAGE(fast.has_value() == general.has_value(), what);
        BOOST_REQUIRE_MESSAGE(fromText.has_value() == general.has_value(), what);
        if (!general) {
          ++errors;
          BOOST_TEST_MESSAGE(what << ": " << general.error().message);
          BOOST_TEST(fast.error().message == general.error().message, what);
          BOOST_TEST(fromText.error().message == general.error().message, what);
          continue;
        }
        BOOST_TEST(*fromText == *general, what);
        BOOST_TEST(*fast == *general, what << ":\n--- plans\n"
                                           << *fast << "\n--- engine\n"
                                           << *general);
        if (std::getenv("REPLY_PLAN_SHOW") && tplName == "lines") {
          BOOST_TEST_MESSAGE(what << ":\n" << *fast);
        }
        // The shipped templates over the shipped Bundles never need the engine.
        if (tplName.starts_with("appointment-") && focusName.ends_with(".json")) {
          BOOST_TEST(stats.engine == 0, what);
          BOOST_TEST(stats.planned > 5, what);
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("compared " << compared << " renders (" << errors << " errors), " << planned
                                 << " expressions by plans, " << engine << " by the engine");
  // Both paths were exercised, and so were the engine's errors.
  BOOST_TEST(planned > 500);
  BOOST_TEST(engine > 50);
  BOOST_TEST(errors > 5);
}

BOOST_AUTO_TEST_CASE(shared_subexpressions_are_computed_per_render) {
  // The same template over two Bundles in turn: nothing computed for the first may leak into the
  // second (the memo lives in one render).
  auto tpl = ReplyTemplate::parse(
      "{{ entry.resource.ofType(Patient).name.given.first() }}|"
      "{{ entry.resource.ofType(Patient).name.given.last() }}",
      "memo.txt");
  BOOST_REQUIRE(tpl.has_value());
  const fhirpath::Environment env = environment(true);
  auto first = fhirpath::parseJsonResource(
      R"({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient",
          "name": [{"given": ["Ana", "Bo"]}]}}]})");
  auto second = fhirpath::parseJsonResource(
      R"({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient",
          "name": [{"given": ["Cy"]}]}}]})");
  BOOST_REQUIRE(first.has_value() && second.has_value());
  ReplyTemplate::RenderStats stats;
  BOOST_TEST(*tpl->render(*first, env, &stats) == "Ana|Bo");
  BOOST_TEST(*tpl->render(*second, env, &stats) == "Cy|Cy");
  BOOST_TEST(*tpl->render(*first, env, &stats) == "Ana|Bo");
  BOOST_TEST(stats.planned == 6);
  BOOST_TEST(stats.engine == 0);
}

namespace {

// Random expressions from the forms plans cover (and a few they do not), over names the test
// Bundles have and some they lack: a seeded generator, so a failure names an expression that
// fails again on the next run.
class ExpressionMaker {
 public:
  explicit ExpressionMaker(std::uint32_t seed) : rng_(seed) {}

  std::string top() {
    switch (pick(10)) {
      case 0:
        return path(true) + " | " + path(true);
      case 1:
        return path(true) + " contains " + literal();
      case 2:
        return literal() + " in " + path(true);
      case 3:
        return path(true) + (pick(2) ? " = " : " != ") + (pick(2) ? literal() : path(true));
      case 4:
        return path(true) + (pick(2) ? " and " : " or ") + path(true);
      default:
        return path(true);
    }
  }

 private:
  std::size_t pick(std::size_t n) { return rng_() % n; }
  template <std::size_t N>
  const char* one(const char* const (&items)[N]) {
    return items[pick(N)];
  }

  std::string literal() {
    static const char* const kLiterals[] = {
        "'Practitioner'", "'Location'",   "'PPRF'", "'telehealth'", "'VR'",
        "'booked'",       "'Zoë'",        "'Dr'",   "''",           "'accepted'",
        "'sick_visit'",   "'Sick Visit'", "true",   "false",        "'李'"};
    return one(kLiterals);
  }

  std::string member() {
    static const char* const kNames[] = {
        "entry",       "resource",   "name",       "given",       "family",
        "participant", "actor",      "display",    "type",        "reference",
        "coding",      "code",       "text",       "serviceType", "serviceCategory",
        "item",        "answer",     "value",      "linkId",      "status",
        "start",       "active",     "birthDate",  "telecom",     "system",
        "use",         "identifier", "subject",    "description", "minutesDuration",
        "fullUrl",     "extension",  "id",         "nmae",        "appointmentType",
        "required",    "end",        "valueString"};
    return one(kNames);
  }

  std::string type() {
    static const char* const kTypes[] = {"Patient",  "Appointment",      "QuestionnaireResponse",
                                         "Coverage", "Resource",         "DomainResource",
                                         "Bundle",   "FHIR.Appointment", "Practitioner"};
    return one(kTypes);
  }

  // A condition over one item (where()'s argument).
  std::string condition(int depth) {
    switch (depth > 1 ? pick(4) : pick(7)) {
      case 0:
        return relative(2) + " = " + literal();
      case 1:
        return relative(2) + " != " + literal();
      case 2:
        return relative(2) + ".startsWith(" + literal() + ")";
      case 3:
        return relative(2) + ".exists()";
      case 4:
        return "(" + condition(depth + 1) + (pick(2) ? " and " : " or ") + condition(depth + 1) +
               ")";
      case 5:
        return "$this = " + literal();
      default:
        return relative(1);
    }
  }

  std::string relative(int most) {
    std::string p = member();
    for (std::size_t i = 0, n = pick(static_cast<std::size_t>(most)); i < n; ++i) {
      p += "." + member();
    }
    return p;
  }

  std::string path(bool allowVariables) {
    std::string p;
    switch (pick(allowVariables ? 7 : 5)) {
      case 0:
      case 1:
      case 2:
        p = "entry.resource.ofType(" + type() + ")";
        break;
      case 3:
        p = "entry.resource";
        break;
      case 4:
        p = "entry";
        break;
      case 5:
        p = pick(2) ? "%clinicName" : "%appointmentNumber";
        break;
      default:
        p = literal();
        break;
    }
    for (std::size_t i = 0, n = 1 + pick(5); i < n; ++i) {
      switch (pick(14)) {
        case 0:
          p += ".where(" + condition(0) + ")";
          break;
        case 1:
          p += ".select(" + relative(2) + (pick(3) == 0 ? " | " + relative(1) : "") + ")";
          break;
        case 2:
          p += std::string(".") + (pick(2) ? "first()" : "last()");
          break;
        case 3:
          p += std::string(".") + (pick(2) ? "exists()" : "empty()");
          break;
        case 4:
          p += std::string(".") + (pick(2) ? "not()" : "toString()");
          break;
        case 5:
          p += ".ofType(" + type() + ")";
          break;
        case 6:
          p += std::string(".") + (pick(2) ? "startsWith(" : "contains(") + literal() + ")";
          break;
        case 7:
          p += std::string(".") + (pick(2) ? "count()" : "single()");  // not covered
          break;
        default:
          p += "." + member();
          break;
      }
    }
    return p;
  }

  std::mt19937 rng_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(random_expressions_render_exactly_as_the_engine) {
  std::vector<std::pair<std::string, fhirpath::Node>> foci;
  for (const auto& [name, text] : bundles()) {
    auto node = fhirpath::parseJsonResource(text);
    BOOST_REQUIRE(node.has_value());
    foci.emplace_back(name, *node);
  }
  const fhirpath::Environment env = environment(true);
  const PlanVariables vars = textVariables(true);
  // REPLY_PLAN_SEED and REPLY_PLAN_COUNT explore further than the default run.
  const char* seed = std::getenv("REPLY_PLAN_SEED");
  const char* count = std::getenv("REPLY_PLAN_COUNT");
  ExpressionMaker maker(seed ? static_cast<std::uint32_t>(std::strtoul(seed, nullptr, 10))
                             : 20261202u);
  const int expressions = count ? std::atoi(count) : 1500;
  int planned = 0, engine = 0, errors = 0, compiled = 0;
  for (int i = 0; i < expressions; ++i) {
    const std::string expr = maker.top();
    for (const std::string& text :
         {"{{ " + expr + " }}", "{{#if " + expr + "}}T{{else}}F{{/if}}"}) {
      auto tpl = ReplyTemplate::parse(text, "random");
      if (!tpl) continue;  // e.g. an unknown function for the type: refused at deployment
      ++compiled;
      for (const auto& [focusName, focus] : foci) {
        ReplyTemplate::RenderStats stats;
        auto fast = tpl->render(focus, env, &stats);
        auto general = tpl->renderWithEngine(focus, env);
        auto fromText =
            tpl->render(focus, vars, [&]() -> const fhirpath::Environment& { return env; });
        planned += stats.planned;
        engine += stats.engine;
        const std::string what = text + " over " + focusName;
        BOOST_REQUIRE_MESSAGE(fast.has_value() == general.has_value(), what);
        BOOST_REQUIRE_MESSAGE(fromText.has_value() == general.has_value(), what);
        if (!general) {
          ++errors;
          BOOST_REQUIRE_MESSAGE(fast.error().message == general.error().message, what);
          BOOST_REQUIRE_MESSAGE(fromText.error().message == general.error().message, what);
          continue;
        }
        BOOST_REQUIRE_MESSAGE(*fast == *general, what << ": plans gave \"" << *fast
                                                      << "\", the engine \"" << *general << "\"");
        BOOST_REQUIRE_MESSAGE(*fromText == *general, what << " (variables as text)");
      }
    }
  }
  BOOST_TEST_MESSAGE(compiled << " random templates: " << planned << " expressions by plans, "
                              << engine << " by the engine, " << errors << " errors");
  BOOST_TEST(compiled > expressions * 5 / 3);
  BOOST_TEST(planned > engine);
  BOOST_TEST(errors > 100);
}

BOOST_AUTO_TEST_CASE(one_template_renders_on_several_threads_at_once) {
  // A parsed template is shared by a destination's delivery workers: plans keep nothing of a
  // render outside its scope (the type model's answers each thread keeps are the same for all).
  auto tpl = ReplyTemplate::parse(readSource("conf/replies/appointment-confirmed.txt"),
                                  "appointment-confirmed.txt");
  BOOST_REQUIRE(tpl.has_value());
  const fhirpath::Environment env = environment(true);
  std::vector<std::pair<fhirpath::Node, std::string>> cases;
  for (const auto& [name, text] : bundles()) {
    auto node = fhirpath::parseJsonResource(text);
    BOOST_REQUIRE(node.has_value());
    auto expected = tpl->renderWithEngine(*node, env);
    BOOST_REQUIRE(expected.has_value());
    cases.emplace_back(*node, *expected);
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const auto& [focus, expected] = cases[static_cast<std::size_t>(i + t) % cases.size()];
        auto text = tpl->render(focus, env);
        if (!text || *text != expected) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(mismatches.load() == 0);
}
