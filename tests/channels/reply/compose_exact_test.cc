// The confirmation and apology texts the reply destination composes with the shipped
// conf/replies templates, byte for byte, over a compact mapped Bundle (tests/data/fhir) and a
// pretty-printed one (tests/data/reply), after a transaction-response, a 400 OperationOutcome and
// a 503; each also with the Bundle written with \u escapes and a decimal (which the thread's
// arena reader leaves to RapidJSON), and with the thread's arena held elsewhere.
#include <boost/test/unit_test.hpp>

#include <rapidjson/document.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "channels/reply/reply_destination.h"
#include "engine/fhir/json_arena.h"

using namespace switchboard;
using namespace switchboard::channels::reply;

namespace {

constexpr core::Millis kNow = 1'772'000'000'000;  // 2026-02-25T06:13:20Z

std::string sourceRoot() {
  const char* env = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return env && *env ? env : SB_SOURCE_DIR;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  BOOST_REQUIRE_MESSAGE(in.good() || in.eof(), "cannot read " + path);
  return s.str();
}

// The shipped whatsapp-meta reply destination's settings (its ${env:...} defaults).
std::unique_ptr<ReplyDestination> shippedDestination() {
  const std::string json = R"({"type": "reply", "provider": "meta",
      "base_url": "http://127.0.0.1:9", "access_token": "EAAG-test-token",
      "window_template": {"name": "appointment_update", "language": "en_US"},
      "template": "conf/replies/appointment-confirmed.txt",
      "rejection_template": "conf/replies/appointment-rejected.txt",
      "clinic_phone": "+1 555 010 0100", "timezone": "America/New_York",
      "variables": {"clinicName": "the clinic",
                    "clinicAddress": "see your booking email for the address",
                    "telehealthInstructions": "We will send you the video link 15 minutes before the visit."}})";
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  BOOST_REQUIRE(!doc.HasParseError());
  core::ConfigReader reader(doc, "conf/channels/test.json", "/destinations/1");
  reader.skip("type");
  core::ConnectorContext ctx;
  ctx.channelId = "whatsapp-meta";
  ctx.confDir = sourceRoot() + "/conf";
  auto made = ReplyDestination::create(reader, ctx, std::make_shared<core::FakeClock>(kNow));
  BOOST_REQUIRE_MESSAGE(made.has_value(), (made ? std::string() : made.error().message));
  return std::move(*made);
}

// The FHIR destination's summaries (channels/fhir summariseSuccess / summariseFailure) of a
// transaction-response, a 400 OperationOutcome and a 503, as the engine hands them on.
struct Upstream {
  const char* name;
  const char* status;
  const char* response;
};
const Upstream kUpstreams[] = {
    {"accepted", "succeeded",
     R"({"entry":[{"status":"201 Created","location":"Patient/0b6f-1/_history/1","etag":"W/\"1\""},)"
     R"({"status":"201 Created","location":"Organization/0b6f-2/_history/1","etag":"W/\"1\""},)"
     R"({"status":"201 Created","location":"Appointment/0b6f-5/_history/1","etag":"W/\"1\""}]})"},
    {"rejected", "failed",
     R"({"status":400,"issues":[{"severity":"error","code":"invalid","details":"Missing required )"
     R"(property","expression":["Bundle.entry[3].resource.end"]}]})"},
    {"unavailable", "dead", R"({"status":503,"body":"busy, later"})"},
};

// `bundle` with its first non-ASCII or plain character of a name written as a \u escape, and a
// decimal added: the same resource, in JSON the arena reader declines.
std::string escapedVariant(std::string bundle) {
  for (const auto& [from, to] : std::map<std::string, std::string>{
           {"Zo\xC3\xAB", "Zo\\u00eb"}, {"\"Emily\"", "\"Emil\\u0079\""}}) {
    if (auto at = bundle.find(from); at != std::string::npos) bundle.replace(at, from.size(), to);
  }
  const std::string type = "\"resourceType\"";
  bundle.insert(bundle.find(type), "\"x-weight\": 1.50, ");
  return bundle;
}

std::string composeText(const ReplyDestination& d, const std::string& payload, const Upstream& u) {
  core::Metadata m;
  core::setMetadata(m, "provider", "meta");
  core::setMetadata(m, "kind", "flow");
  core::setMetadata(m, "sender", "+15551234567");
  core::setMetadata(m, "reply_to", "15551234567");
  core::setMetadata(m, "reply_from", "123456123");
  core::setMetadata(m, "received_at_ms", std::to_string(kNow - 60'000));
  core::setMetadata(m, "upstream_status", u.status);
  core::setMetadata(m, "upstream_response", u.response);
  core::DeliveryRequest r;
  r.deliveryId = 41;
  r.messageId = 7;
  r.channelId = "whatsapp-meta";
  r.destination = "reply";
  r.payload = payload;
  r.metadata = &m;
  auto composed = d.compose(r);
  if (!composed) return "error: " + composed.error().message;
  if (composed->outcome == ComposedReply::Outcome::kSkip) return "skip: " + composed->skipReason;
  return std::string(composed->rejection ? "rejection\n" : "confirmation\n") +
         composed->message.text;
}

// The texts the shipped templates gave before the Bundle was read in the thread's arena.
std::string expectedText(const std::string& key) {
  static const std::map<std::string, std::string> kTexts = {
      {"seed-flow/accepted",
       "confirmation\n"
       "Hello Emily, your appointment is confirmed ✅\n"
       "\n"
       "📅 Date: Thursday, February 12, 2026\n"
       "🕒 Time: 10:00 AM\n"
       "👩‍⚕️ Provider: Dr. Sarah Smith\n"
       "🩺 Visit: Sick Visit\n"
       "🔖 Appointment number: 0b6f-5\n"
       "\n"
       "📍 Where: the clinic, see your booking email for the address\n"
       "Please arrive 15 minutes early to check in, and bring your insurance card and a photo ID.\n"
       "\n"
       "Need to reschedule or cancel? Call us at +1 555 010 0100 or reply to this message.\n"},
      {"seed-flow/rejected",
       "rejection\n"
       "Hello Emily, we're sorry: we could not book your appointment for Thursday, February 12, "
       "2026 at 10:00 AM online.\n"
       "\n"
       "Nothing has been scheduled and nothing is charged. Please call the clinic at +1 555 010 "
       "0100 and our team will gladly find a time that works for you.\n"},
      {"seed-flow/unavailable",
       "rejection\n"
       "Hello Emily, we're sorry: we could not book your appointment for Thursday, February 12, "
       "2026 at 10:00 AM online.\n"
       "\n"
       "Nothing has been scheduled and nothing is charged. Please call the clinic at +1 555 010 "
       "0100 and our team will gladly find a time that works for you.\n"},
      {"appointment/accepted",
       "confirmation\n"
       "Hello Zoë, your appointment is confirmed ✅\n"
       "\n"
       "📅 Date: Monday, March 9, 2026\n"
       "🕒 Time: 10:30 AM\n"
       "👩‍⚕️ Provider: Dr. Sarah Smith (Family Medicine)\n"
       "🩺 Visit: Sick Visit\n"
       "🔖 Appointment number: 0b6f-5\n"
       "\n"
       "📍 Where: Riverside Family Clinic – Main Street, see your booking email for the address\n"
       "Please arrive 15 minutes early to check in, and bring your insurance card and a photo ID.\n"
       "\n"
       "Need to reschedule or cancel? Call us at +1 555 010 0100 or reply to this message.\n"},
      {"appointment/rejected",
       "rejection\n"
       "Hello Zoë, we're sorry: we could not book your appointment for Monday, March 9, 2026 at "
       "10:30 AM online.\n"
       "\n"
       "Nothing has been scheduled and nothing is charged. Please call the clinic at +1 555 010 "
       "0100 and our team will gladly find a time that works for you.\n"},
      {"appointment/unavailable",
       "rejection\n"
       "Hello Zoë, we're sorry: we could not book your appointment for Monday, March 9, 2026 at "
       "10:30 AM online.\n"
       "\n"
       "Nothing has been scheduled and nothing is charged. Please call the clinic at +1 555 010 "
       "0100 and our team will gladly find a time that works for you.\n"},
  };
  const auto it = kTexts.find(key);
  return it == kTexts.end() ? "(no text for " + key + ")" : it->second;
}

}  // namespace

BOOST_AUTO_TEST_CASE(shipped_templates_compose_the_same_texts_however_the_bundle_is_read) {
  const auto destination = shippedDestination();
  const std::pair<const char*, std::string> bundles[] = {
      {"seed-flow", readFile(sourceRoot() + "/tests/data/fhir/seed-flow-bundle.json")},
      {"appointment", readFile(sourceRoot() + "/tests/data/reply/appointment-bundle.json")},
  };
  const char* print = std::getenv("REPLY_COMPOSE_PRINT");  // writes the texts instead
  std::ofstream out(print ? print : "/dev/null", std::ios::binary);
  for (const auto& [bundleName, bundle] : bundles) {
    for (const Upstream& u : kUpstreams) {
      const std::string key = std::string(bundleName) + "/" + u.name;
      const std::string text = composeText(*destination, bundle, u);
      if (print) {
        out << key << '\0' << text << '\0';
        continue;
      }
      BOOST_TEST_CONTEXT(key) {
        BOOST_TEST(text == expectedText(key));
        BOOST_TEST(composeText(*destination, escapedVariant(bundle), u) == text);
        auto held = fhir::ArenaDocument::read("{}");
        BOOST_REQUIRE(held.has_value());
        BOOST_TEST(composeText(*destination, bundle, u) == text);
      }
    }
  }
  // Unreadable Bundles: refused ones still get the apology, accepted ones fail as before.
  BOOST_TEST(composeText(*destination, "{not json", kUpstreams[1]) ==
             "rejection\nHello, we're sorry: we could not book your appointment online.\n\n"
             "Nothing has been scheduled and nothing is charged. Please call the clinic at "
             "+1 555 010 0100 and our team will gladly find a time that works for you.\n");
  BOOST_TEST(composeText(*destination, "\f{}", kUpstreams[0])
                 .starts_with("error: reply: the payload is not a FHIR Bundle: "));
}
