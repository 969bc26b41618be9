// The reply destination: templates over the FHIR Bundle, time zones, the 24-hour window, and
// each vendor's send API against a local fake that checks requests as documented.
#define BOOST_TEST_MODULE channel_reply
#include <boost/test/unit_test.hpp>

#include <Poco/Net/ServerSocket.h>
#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>

#include "channels/reply/provider_api.h"
#include "channels/reply/register.h"
#include "channels/reply/reply_destination.h"
#include "channels/reply/reply_template.h"
#include "engine/core/http_types.h"
#include "engine/core/time_zone.h"
#include "fake_vendor.h"
#include "tests/support/source_tests.h"

using namespace switchboard;
using namespace switchboard::channels::reply;
using switchboard::testing::FakeVendor;
using switchboard::testing::ScriptedResponse;

namespace {

constexpr core::Millis kNow = 1'772'000'000'000;  // 2026-02-25T06:13:20Z

std::string sourceDir() {
  const char* env = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return env && *env ? env : SB_SOURCE_DIR;
}

std::string bundle(const std::string& name = "appointment-bundle.json") {
  return switchboard::testing::readTestFile(sourceDir() + "/tests/data/reply/" + name);
}

const char* kUpstreamOk =
    R"({"entry":[{"status":"201 Created","location":"Patient/7/_history/1"},)"
    R"({"status":"201 Created","location":"Coverage/8/_history/1"},)"
    R"({"status":"201 Created","location":"Appointment/12/_history/1"},)"
    R"({"status":"201 Created","location":"QuestionnaireResponse/9/_history/1"}]})";

const char* kUpstreamRefused =
    R"({"status":400,"issues":[{"severity":"error","code":"invalid","diagnostics":"Appointment.start is required","expression":["Appointment.start"]}]})";

// Inbound metadata as the vendor sources and the FHIR destination leave it.
core::Metadata inbound(const std::string& provider, const std::string& upstreamStatus = "succeeded",
                       core::Millis receivedAt = kNow - 5 * 60 * 1000) {
  core::Metadata m;
  core::setMetadata(m, "provider", provider);
  core::setMetadata(m, "kind", "flow");
  core::setMetadata(m, "sender", "+15551234567");
  if (provider == "meta") {
    core::setMetadata(m, "sender_raw", "15551234567");
    core::setMetadata(m, "reply_to", "15551234567");
    core::setMetadata(m, "reply_from", "123456123");
  } else if (provider == "8x8") {
    core::setMetadata(m, "sender_raw", "+15551234567");
    core::setMetadata(m, "reply_to", "+15551234567");
    core::setMetadata(m, "reply_from", "Clinic_WA");
  } else {
    core::setMetadata(m, "sender_raw", "whatsapp:+15551234567");
    core::setMetadata(m, "reply_to", "whatsapp:+15551234567");
    core::setMetadata(m, "reply_from", "whatsapp:+14155238886");
  }
  core::setMetadata(m, "provider_message_id", "in-1");
  core::setMetadata(m, "received_at_ms", std::to_string(receivedAt));
  core::setMetadata(m, "upstream_status", upstreamStatus);
  core::setMetadata(m, "upstream_response",
                    upstreamStatus == "succeeded" ? kUpstreamOk : kUpstreamRefused);
  return m;
}

struct Request {
  std::string payload;
  core::Metadata metadata;
  core::DeliveryRequest req;
  Request(std::string p, core::Metadata m) : payload(std::move(p)), metadata(std::move(m)) {
    req.deliveryId = 41;
    req.messageId = 7;
    req.channelId = "whatsapp-appointments";
    req.destination = "reply";
    req.payload = payload;
    req.contentType = "application/fhir+json";
    req.metadata = &metadata;
  }
};

const char* kVariables =
    R"("variables": {"clinicName": "Riverside Family Clinic",
                     "clinicAddress": "123 Medical Center Dr, San José, CA 95110",
                     "telehealthInstructions": "We will send you the video link one hour before."})";

Result<std::unique_ptr<ReplyDestination>> make(const std::string& json,
                                               std::shared_ptr<core::FakeClock> clock = nullptr) {
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  BOOST_REQUIRE_MESSAGE(!doc.HasParseError(), "test config is not JSON: " + json);
  core::ConfigReader reader(doc, "conf/channels/test.json", "/destinations/1");
  reader.skip("type");  // read by the engine, as for every destination
  reader.skip("name");
  reader.skip("after");
  core::ConnectorContext ctx;
  ctx.channelId = "whatsapp-appointments";
  ctx.confDir = sourceDir() + "/conf";
  if (!clock) clock = std::make_shared<core::FakeClock>(kNow);
  return ReplyDestination::create(reader, ctx, clock);
}

std::string metaConfig(const std::string& baseUrl, const std::string& extra = "") {
  return R"({"type": "reply", "provider": "meta", "base_url": ")" + baseUrl +
         R"(", "access_token": "EAAG-test-token", "timeout_ms": 3000,
            "template": "conf/replies/appointment-confirmed.txt",
            "rejection_template": "conf/replies/appointment-rejected.txt",
            "clinic_phone": "+1 (555) 010-0200", "timezone": "America/New_York", )" +
         kVariables + extra + "}";
}

FakeVendor metaFake() {
  return FakeVendor(FakeVendor::Api::kMeta,
                    {"/v21.0/123456123/messages", "Bearer EAAG-test-token"});
}

rapidjson::Document json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  BOOST_REQUIRE_MESSAGE(!d.HasParseError(), "not JSON: " + text);
  return d;
}

std::string formValue(const std::string& body, const std::string& name) {
  for (const auto& [k, v] : core::parseForm(body)) {
    if (k == name) return v;
  }
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

// ------------------------------------------------------------------ time zones

// Zone offsets and POSIX rules themselves are tested with engine/core/time_zone (core_tests);
// here: the clinic wall clock built on them.

BOOST_AUTO_TEST_CASE(local_date_and_time_in_the_clinic_zone) {
  auto zone = core::TimeZone::get("America/New_York");
  BOOST_REQUIRE(zone.has_value());
  const core::TimeZone* ny = zone->get();
  // Written with the EST offset, shown in EDT: the clinic's wall clock on that day.
  auto l = localDateTime("2026-03-09T09:30:00-05:00", ny, DateStyle::kUs, false);
  BOOST_REQUIRE(l.has_value());
  BOOST_TEST(l->date == "Monday, March 9, 2026");
  BOOST_TEST(l->time == "10:30 AM");
  BOOST_TEST(l->isoDate == "2026-03-09");
  // Without a zone the instant is shown in its own offset.
  auto own = localDateTime("2026-03-09T09:30:00-05:00", nullptr, DateStyle::kUs, false);
  BOOST_TEST(own->time == "9:30 AM");
  // UTC instants crossing midnight move the date.
  auto late = localDateTime("2026-07-01T02:15:00Z", ny, DateStyle::kIntl, true);
  BOOST_TEST(late->date == "Tuesday 30 June 2026");
  BOOST_TEST(late->time == "22:15");
  auto noon = localDateTime("2026-07-01T16:00:00Z", ny, DateStyle::kIso, false);
  BOOST_TEST(noon->date == "2026-07-01");
  BOOST_TEST(noon->time == "12:00 PM");
  auto dateOnly = localDateTime("2026-07-01", ny, DateStyle::kUs, false);
  BOOST_TEST(dateOnly->date == "Wednesday, July 1, 2026");
  BOOST_TEST(dateOnly->time.empty());
  BOOST_TEST(!localDateTime("not a date", ny, DateStyle::kUs, false).has_value());
}

// ------------------------------------------------------------------ pieces

BOOST_AUTO_TEST_CASE(appointment_number_from_the_fhir_response) {
  BOOST_TEST(appointmentNumberFrom(kUpstreamOk) == "12");
  BOOST_TEST(
      appointmentNumberFrom(
          R"({"entry":[{"status":"200 OK","location":"https://ehr.example/fhir/Appointment/A-77/_history/3"}]})") ==
      "A-77");
  // Cut off by the stored-response limit: still found.
  BOOST_TEST(appointmentNumberFrom(std::string(kUpstreamOk).substr(0, 185)) == "12");
  // Cut inside the id: no guess.
  BOOST_TEST(appointmentNumberFrom(std::string(kUpstreamOk).substr(0, 178)).empty());
  BOOST_TEST(appointmentNumberFrom(kUpstreamRefused).empty());
  BOOST_TEST(appointmentNumberFrom(R"({"entry":[{"location":"XAppointment/1"}]})").empty());
  BOOST_TEST(appointmentNumberFrom("").empty());
}

BOOST_AUTO_TEST_CASE(templates_render_if_else_and_drop_standalone_tag_lines) {
  auto tpl = ReplyTemplate::parse(
      "{{! a comment line }}\n"
      "Hi {{ %name }}!\n"
      "{{#if %n > 2}}\n"
      "  many: {{ %n }}\n"
      "{{else}}\n"
      "  few\n"
      "{{/if}}\n"
      "[{{#if %missing.exists()}}x{{else}}y{{/if}}] {{ (1 | 2 | 3) }}\n",
      "t.txt");
  BOOST_REQUIRE_MESSAGE(tpl.has_value(), (tpl ? std::string() : tpl.error().message));
  fhirpath::Environment env;
  env.setVariable("name", "Zoë 李");
  env.setVariable("n", fhirpath::Collection{fhirpath::Node::integer(3)});
  env.setVariable("missing", fhirpath::Collection{});
  auto text = tpl->render(fhirpath::Node(), env);
  BOOST_REQUIRE(text.has_value());
  BOOST_TEST(*text == "Hi Zoë 李!\n  many: 3\n[y] 1, 2, 3\n");
  BOOST_TEST((tpl->variables() == std::vector<std::string>{"missing", "n", "name"}));
}

BOOST_AUTO_TEST_CASE(template_errors_name_the_line) {
  auto unclosed = ReplyTemplate::parse("a\n{{#if true}}\nb\n", "x.txt");
  BOOST_REQUIRE(!unclosed.has_value());
  BOOST_TEST(contains(unclosed.error().message, "x.txt: line 2"));
  auto badExpr = ReplyTemplate::parse("a\nb {{ name.where( }}", "y.txt");
  BOOST_REQUIRE(!badExpr.has_value());
  BOOST_TEST(contains(badExpr.error().message, "y.txt: line 2"));
  BOOST_TEST(!ReplyTemplate::parse("{{else}}", "z").has_value());
  BOOST_TEST(!ReplyTemplate::parse("{{/if}}", "z").has_value());
  BOOST_TEST(!ReplyTemplate::parse("{{#each x}}{{/each}}", "z").has_value());
  BOOST_TEST(!ReplyTemplate::parse("open {{ %a ", "z").has_value());
  BOOST_TEST((referencedVariables("%a + '%notme' + %`vs-x` + %b_2") ==
              std::vector<std::string>{"a", "vs-x", "b_2"}));
}

BOOST_AUTO_TEST_CASE(masking_truncation_and_form_encoding) {
  BOOST_TEST(maskDigits("The 'To' number +15551234567 is not valid (code 21211)") ==
             "The 'To' number +*** is not valid (code ***)");
  BOOST_TEST(maskDigits("error 4 of 1234") == "error 4 of 1234");
  BOOST_TEST(truncateUtf8("Zoë李x", 4) == "Zoë李");
  BOOST_TEST(truncateUtf8("Zoë李x", 3) == "Zoë");
  BOOST_TEST(truncateUtf8("abc", 10) == "abc");
  BOOST_TEST(formEncode("whatsapp:+1 555 é&=") == "whatsapp%3A%2B1+555+%C3%A9%26%3D");
}

// ------------------------------------------------------------------ Meta Cloud API

BOOST_AUTO_TEST_CASE(meta_confirmation_text_in_clinic_zone_with_appointment_number) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE_MESSAGE(dest.has_value(), (dest ? std::string() : dest.error().message));
  Request r(bundle(), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(result.responseCode == 200);
  auto response = json(result.response);
  BOOST_TEST(std::string(response["outbound_id"].GetString()) ==
             "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA1");
  BOOST_TEST(std::string(response["reply"].GetString()) == "confirmation");

  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  BOOST_TEST(sent[0].shapeError == "");
  auto body = json(sent[0].body);
  BOOST_TEST(std::string(body["to"].GetString()) == "15551234567");
  BOOST_TEST(std::string(body["type"].GetString()) == "text");
  const std::string text = body["text"]["body"].GetString();
  BOOST_TEST_MESSAGE(text);
  BOOST_TEST(contains(text, "Hello Zoë, your appointment is confirmed"));
  BOOST_TEST(contains(text, "Date: Monday, March 9, 2026\n"));
  BOOST_TEST(contains(text, "Time: 10:30 AM\n"));  // 09:30-05:00 is 10:30 EDT that day
  BOOST_TEST(contains(text, "Provider: Dr. Sarah Smith (Family Medicine)\n"));
  BOOST_TEST(contains(text, "Visit: Sick Visit\n"));
  BOOST_TEST(contains(text, "Appointment number: 12\n"));
  BOOST_TEST(contains(
      text, "Where: Riverside Family Clinic – Main Street, 123 Medical Center Dr, San José"));
  BOOST_TEST(!contains(text, "telehealth"));
  BOOST_TEST(contains(text, "Call us at +1 (555) 010-0200"));
  BOOST_TEST(!contains(text, "{{"));
  BOOST_TEST(!contains(text, "\n\n\n"));
}

BOOST_AUTO_TEST_CASE(meta_telehealth_confirmation_has_instructions_not_address) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl(), R"(, "date_style": "intl", "clock": "24h")"));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle("telehealth-bundle.json"), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  const std::string text = json(sent[0].body)["text"]["body"].GetString();
  BOOST_TEST(contains(text, "Date: Wednesday 1 July 2026\n"));
  BOOST_TEST(contains(text, "Time: 14:00\n"));  // 18:00Z is 14:00 EDT
  BOOST_TEST(contains(text, "video (telehealth) visit. We will send you the video link"));
  BOOST_TEST(!contains(text, "Where:"));
  BOOST_TEST(!contains(text, "Provider:"));

  // serviceCategory VR alone (as the shipped mapping writes it) marks the visit as telehealth.
  std::string vrOnly = bundle("telehealth-bundle.json");
  const std::string answer = R"("valueString": "telehealth")";
  BOOST_REQUIRE(vrOnly.find(answer) != std::string::npos);
  vrOnly.replace(vrOnly.find(answer), answer.size(), R"("valueString": "other")");
  Request v(vrOnly, inbound("meta"));
  (*dest)->send(v.req);
  const std::string vrText = json(fake.requests().back().body)["text"]["body"].GetString();
  BOOST_TEST(contains(vrText, "video (telehealth) visit"));
}

BOOST_AUTO_TEST_CASE(meta_rejection_sends_the_apology_with_clinic_phone) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  for (const std::string status : {"dead", "failed"}) {
    Request r(bundle(), inbound("meta", status));
    auto result = (*dest)->send(r.req);
    BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
    BOOST_TEST(std::string(json(result.response)["reply"].GetString()) == "rejection");
  }
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 2u);
  const std::string text = json(sent[0].body)["text"]["body"].GetString();
  BOOST_TEST(contains(text, "Hello Zoë, we're sorry"));
  BOOST_TEST(contains(text, "for Monday, March 9, 2026 at 10:30 AM"));
  BOOST_TEST(contains(text, "call Riverside Family Clinic at +1 (555) 010-0200"));
  BOOST_TEST(!contains(text, "confirmed"));

  // An unreadable payload still gets an apology (without the personal details).
  Request broken("{not json", inbound("meta", "dead"));
  auto result = (*dest)->send(broken.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  const std::string plain = json(fake.requests().back().body)["text"]["body"].GetString();
  BOOST_TEST(plain.starts_with("Hello, we're sorry: we could not book your appointment online."));
}

BOOST_AUTO_TEST_CASE(meta_outside_the_window_sends_the_template_message) {
  FakeVendor fake = metaFake();
  auto clock = std::make_shared<core::FakeClock>(kNow);
  auto dest =
      make(metaConfig(fake.baseUrl(),
                      R"(, "window_template": {"name": "appointment_update", "language": "en_US",
                                   "parameters": ["{{ %localDate }} {{ %localTime }}", "{{ %appointmentNumber }}"]})"),
           clock);
  BOOST_REQUIRE_MESSAGE(dest.has_value(), (dest ? std::string() : dest.error().message));
  const core::Millis received = kNow - 24 * 3600 * 1000;
  Request r(bundle(), inbound("meta", "succeeded", received));
  // Exactly 24 hours: still inside.
  auto inside = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(inside.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(std::string(json(inside.response)["form"].GetString()) == "text");
  clock->advance(1);
  auto outside = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(outside.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(std::string(json(outside.response)["form"].GetString()) == "template");
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 2u);
  BOOST_TEST(sent[1].shapeError == "");
  BOOST_TEST(
      sent[1].body ==
      R"({"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567",)"
      R"("type":"template","template":{"name":"appointment_update","language":{"code":"en_US"},)"
      R"("components":[{"type":"body","parameters":[{"type":"text","text":"Monday, March 9, 2026 10:30 AM"},)"
      R"({"type":"text","text":"12"}]}]}})");
}

BOOST_AUTO_TEST_CASE(outside_the_window_without_a_template_fails_permanently) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl(), R"(, "window_hours": 2)"));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta", "succeeded", kNow - 3 * 3600 * 1000));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(contains(result.response, "more than 2 hours"));
  BOOST_TEST(contains(result.response, "window_template"));
  BOOST_TEST(fake.requests().empty());
}

BOOST_AUTO_TEST_CASE(meta_429_is_retried_after_the_retry_after_delay) {
  FakeVendor fake = metaFake();
  fake.push(
      {429,
       R"({"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4}})",
       {{"Retry-After", "7"}}});
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(result.responseCode == 429);
  BOOST_REQUIRE(result.retryAfter.has_value());
  BOOST_TEST(result.retryAfter->count() == 7000);
  // The next attempt goes through.
  auto again = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(again.status) == static_cast<int>(core::DeliveryStatus::kOk));
}

BOOST_AUTO_TEST_CASE(meta_500_and_rate_limit_codes_are_retried) {
  FakeVendor fake = metaFake();
  fake.push(
      {500,
       R"({"error":{"message":"An unknown error occurred","type":"OAuthException","code":1}})",
       {}});
  fake.push(
      {400, R"({"error":{"message":"Rate limit hit","type":"OAuthException","code":130429}})", {}});
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta"));
  auto first = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(first.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(first.responseCode == 500);
  BOOST_TEST(!first.retryAfter.has_value());
  auto second = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(second.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(contains(second.response, "130429"));
}

BOOST_AUTO_TEST_CASE(meta_400_fails_with_the_provider_error_and_no_phi) {
  FakeVendor fake = metaFake();
  fake.push(
      {400,
       R"({"error":{"message":"(#131047) Re-engagement message: recipient 15551234567","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"AbCdEf"}})",
       {}});
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(result.responseCode == 400);
  auto response = json(result.response);
  BOOST_TEST(response["status"].GetInt() == 400);
  BOOST_TEST(std::string(response["provider"].GetString()) == "meta");
  BOOST_TEST(std::string(response["code"].GetString()) == "131047");
  BOOST_TEST(contains(response["message"].GetString(), "Re-engagement message"));
  BOOST_TEST(!contains(result.response, "15551234567"));
  BOOST_TEST(!contains(result.response, "Zoë"));
}

BOOST_AUTO_TEST_CASE(wrong_token_is_a_permanent_failure) {
  FakeVendor fake(FakeVendor::Api::kMeta, {"/v21.0/123456123/messages", "Bearer other-token"});
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(result.responseCode == 401);
  BOOST_TEST(contains(result.response, "190"));
}

BOOST_AUTO_TEST_CASE(unreachable_api_is_retried) {
  int port = 0;
  {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = socket.address().port();
  }  // closed: nothing listens there now
  auto dest = make(metaConfig("http://127.0.0.1:" + std::to_string(port)));
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("meta"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(contains(result.response, "connection"));
}

BOOST_AUTO_TEST_CASE(status_callbacks_and_unknown_recipients_are_skipped) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl(), R"(, "kinds": ["flow", "text"])"));
  BOOST_REQUIRE(dest.has_value());
  core::Metadata status = inbound("meta");
  core::setMetadata(status, "kind", "status");
  core::setMetadata(status, "outbound_id", "wamid.OUT");
  core::setMetadata(status, "status", "delivered");
  Request s(bundle(), status);
  auto skipped = (*dest)->send(s.req);
  BOOST_TEST(static_cast<int>(skipped.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(std::string(json(skipped.response)["skipped"].GetString()) == "status callback");

  core::Metadata bsuidOnly = inbound("meta");
  core::setMetadata(bsuidOnly, "reply_to", "");
  Request b(bundle(), bsuidOnly);
  auto noRecipient = (*dest)->send(b.req);
  BOOST_TEST(static_cast<int>(noRecipient.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(std::string(json(noRecipient.response)["skipped"].GetString()) == "no reply_to");

  core::Metadata media = inbound("meta");
  core::setMetadata(media, "kind", "media");
  Request m(bundle(), media);
  auto notAnswered = (*dest)->send(m.req);
  BOOST_TEST(static_cast<int>(notAnswered.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(contains(notAnswered.response, "skipped"));
  BOOST_TEST(fake.requests().empty());
}

BOOST_AUTO_TEST_CASE(reply_needs_the_ehr_outcome_and_a_matching_provider) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  core::Metadata noUpstream = inbound("meta");
  noUpstream.erase(std::remove_if(noUpstream.begin(), noUpstream.end(),
                                  [](const auto& kv) { return kv.first == "upstream_status"; }),
                   noUpstream.end());
  Request a(bundle(), noUpstream);
  auto result = (*dest)->send(a.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(contains(result.response, "after"));
  Request b(bundle(), inbound("twilio"));
  auto other = (*dest)->send(b.req);
  BOOST_TEST(static_cast<int>(other.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(fake.requests().empty());
}

// ------------------------------------------------------------------ 8x8

BOOST_AUTO_TEST_CASE(eightbyeight_text_and_template) {
  FakeVendor fake(FakeVendor::Api::kEightByEight,
                  {"/api/v1/subaccounts/Clinic_WA/messages", "Bearer 8x8-api-key"});
  auto clock = std::make_shared<core::FakeClock>(kNow);
  auto dest =
      make(R"({"provider": "8x8", "base_url": ")" + fake.baseUrl() +
               R"(", "credentials": {"api_key": "8x8-api-key", "subaccount_id": "Fallback_WA"},
                          "template": ")" +
               sourceDir() + R"(/conf/replies/appointment-confirmed.txt",
                          "clinic_phone": "+1 555 0100", "timezone": "America/New_York",
                          "window_template": {"name": "appointment_update", "language": "en_US",
                                              "parameters": ["{{ %appointmentNumber }}"]}, )" +
               kVariables + "}",
           clock);
  BOOST_REQUIRE_MESSAGE(dest.has_value(), (dest ? std::string() : dest.error().message));
  Request r(bundle(), inbound("8x8"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(std::string(json(result.response)["outbound_id"].GetString()) ==
             "82188ee0-109f-e811-8150-020897000001");
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  BOOST_TEST(sent[0].shapeError == "");
  auto body = json(sent[0].body);
  BOOST_TEST(std::string(body["user"]["msisdn"].GetString()) == "+15551234567");
  BOOST_TEST(std::string(body["clientMessageId"].GetString()) == "sb-41");
  BOOST_TEST(std::string(body["type"].GetString()) == "text");
  const std::string text = body["content"]["text"].GetString();
  BOOST_TEST(contains(text, "Hello Zoë"));
  BOOST_TEST(contains(text, "Appointment number: 12"));

  clock->advance(25 * 3600 * 1000);
  auto late = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(late.status) == static_cast<int>(core::DeliveryStatus::kOk));
  sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 2u);
  BOOST_TEST(sent[1].shapeError == "");
  BOOST_TEST(sent[1].body ==
             R"({"user":{"msisdn":"+15551234567"},"clientMessageId":"sb-41","type":"template",)"
             R"("content":{"template":{"name":"appointment_update","language":"en_US",)"
             R"("components":[{"type":"body","parameters":[{"type":"text","text":"12"}]}]}}})");
}

BOOST_AUTO_TEST_CASE(eightbyeight_errors_map_to_retry_and_fail) {
  FakeVendor fake(FakeVendor::Api::kEightByEight,
                  {"/api/v1/subaccounts/Clinic_WA/messages", "Bearer k"});
  fake.push(
      {500,
       R"({"code":2000,"message":"Internal server error","errorId":"db9dced4-3534-4d86-9d18-6b448af0d621","timestamp":"2018-07-02T09:42:38.8988997+00:00"})",
       {}});
  fake.push({429, R"({"code":1003,"message":"Too many requests"})", {{"Retry-After", "3"}}});
  fake.push(
      {400,
       R"J({"code":1002,"message":"Invalid MSISDN format (not E.164 international number)","errorId":"b4478860-b76c-e811-814e-022a35cc1c71","timestamp":"2018-08-04T09:25:40.9235752+00:00"})J",
       {}});
  auto dest = make(R"({"provider": "8x8", "base_url": ")" + fake.baseUrl() +
                   R"(", "api_key": "k", "template": "conf/replies/appointment-confirmed.txt", )" +
                   kVariables + "}");
  BOOST_REQUIRE_MESSAGE(dest.has_value(), (dest ? std::string() : dest.error().message));
  Request r(bundle(), inbound("8x8"));
  auto a = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(a.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  auto b = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(b.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_REQUIRE(b.retryAfter.has_value());
  BOOST_TEST(b.retryAfter->count() == 3000);
  auto c = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(c.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(std::string(json(c.response)["code"].GetString()) == "1002");
  BOOST_TEST(contains(c.response, "Invalid MSISDN format"));
}

// ------------------------------------------------------------------ Twilio

BOOST_AUTO_TEST_CASE(twilio_form_post_with_basic_auth_and_unicode) {
  const std::string sid = "AC0123456789abcdef0123456789abcdef";
  // Basic base64("AC0123456789abcdef0123456789abcdef:tw-secret")
  FakeVendor fake(FakeVendor::Api::kTwilio,
                  {"/2010-04-01/Accounts/" + sid + "/Messages.json",
                   "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0dy1zZWNyZXQ="});
  auto clock = std::make_shared<core::FakeClock>(kNow);
  auto dest = make(R"({"provider": "twilio", "base_url": ")" + fake.baseUrl() + R"(",
                       "account_sid": ")" +
                       sid + R"(", "auth_token": "tw-secret",
                       "from": "whatsapp:+10000000000",
                       "template": "conf/replies/appointment-confirmed.txt",
                       "rejection_template": "conf/replies/appointment-rejected.txt",
                       "clinic_phone": "+1 555 0100", "timezone": "America/New_York",
                       "window_template": {"content_sid": "HX0123456789abcdef0123456789abcdef",
                                           "parameters": ["{{ entry.resource.ofType(Patient).name.given.first() }}", "{{ %localDate }}"]}, )" +
                       kVariables + "}",
                   clock);
  BOOST_REQUIRE_MESSAGE(dest.has_value(), (dest ? std::string() : dest.error().message));
  Request r(bundle(), inbound("twilio"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(result.responseCode == 201);
  BOOST_TEST(std::string(json(result.response)["outbound_id"].GetString()) ==
             "SM1234567890abcdef1234567890abcd01");
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  BOOST_TEST(sent[0].shapeError == "");
  BOOST_TEST(formValue(sent[0].body, "To") == "whatsapp:+15551234567");
  BOOST_TEST(formValue(sent[0].body, "From") == "whatsapp:+14155238886");  // the inbound To
  BOOST_TEST(sent[0].body.starts_with(
      "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886&Body="));
  const std::string text = formValue(sent[0].body, "Body");
  BOOST_TEST(contains(text, "Hello Zoë, your appointment is confirmed ✅"));
  BOOST_TEST(contains(text, "San José"));
  BOOST_TEST(contains(text, "Appointment number: 12"));

  clock->advance(2 * 24 * 3600 * 1000);
  auto late = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(late.status) == static_cast<int>(core::DeliveryStatus::kOk));
  sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 2u);
  BOOST_TEST(sent[1].shapeError == "");
  BOOST_TEST(formValue(sent[1].body, "ContentSid") == "HX0123456789abcdef0123456789abcdef");
  BOOST_TEST(formValue(sent[1].body, "ContentVariables") ==
             R"({"1":"Zoë","2":"Monday, March 9, 2026"})");
  BOOST_TEST(formValue(sent[1].body, "Body").empty());
}

BOOST_AUTO_TEST_CASE(twilio_rejection_and_invalid_number) {
  const std::string sid = "AC0123456789abcdef0123456789abcdef";
  FakeVendor fake(FakeVendor::Api::kTwilio,
                  {"/2010-04-01/Accounts/" + sid + "/Messages.json",
                   "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0dy1zZWNyZXQ="});
  fake.push(
      {400,
       R"({"code":21211,"message":"The 'To' number whatsapp:+15551234567 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400})",
       {}});
  auto dest = make(R"({"provider": "twilio", "base_url": ")" + fake.baseUrl() + R"(",
                       "account_sid": ")" +
                   sid + R"(", "auth_token": "tw-secret",
                       "template": "conf/replies/appointment-confirmed.txt",
                       "rejection_template": "conf/replies/appointment-rejected.txt",
                       "clinic_phone": "+1 555 0100", )" +
                   kVariables + "}");
  BOOST_REQUIRE(dest.has_value());
  Request r(bundle(), inbound("twilio", "dead"));
  auto result = (*dest)->send(r.req);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(std::string(json(result.response)["code"].GetString()) == "21211");
  BOOST_TEST(!contains(result.response, "5551234567"));
  auto sent = fake.requests();
  BOOST_REQUIRE_EQUAL(sent.size(), 1u);
  BOOST_TEST(contains(formValue(sent[0].body, "Body"), "we're sorry"));
  BOOST_TEST(contains(formValue(sent[0].body, "Body"), "+1 555 0100"));

  // Outside the window with no Content SID configured: a clear permanent failure, nothing sent.
  Request late(bundle(), inbound("twilio", "succeeded", kNow - 30 * 3600 * 1000));
  auto refused = (*dest)->send(late.req);
  BOOST_TEST(static_cast<int>(refused.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(contains(refused.response, "window_template"));
  BOOST_TEST(fake.requests().size() == 1u);
}

// ------------------------------------------------------------------ configuration

BOOST_AUTO_TEST_CASE(config_errors_are_precise) {
  auto expectError = [](const std::string& config, const std::string& fragment) {
    auto r = make(config);
    BOOST_REQUIRE_MESSAGE(!r.has_value(), "accepted: " + config);
    BOOST_TEST_MESSAGE(r.error().message);
    BOOST_TEST(contains(r.error().message, fragment), r.error().message << " lacks " << fragment);
  };
  const std::string base =
      R"("template": "conf/replies/appointment-confirmed.txt", )" + std::string(kVariables);
  expectError(R"({"provider": "signal", )" + base + "}", "/destinations/1/provider");
  expectError(R"({"provider": "meta", )" + base + "}", "/destinations/1/access_token");
  expectError(R"({"provider": "twilio", "account_sid": "AC1", )" + base + "}",
              "/destinations/1/auth_token");
  expectError(R"({"provider": "meta", "access_token": "t", "tempalte": "x", )" + base + "}",
              "tempalte");
  expectError(R"({"provider": "meta", "access_token": "t", "timezone": "Mars/Base", )" + base + "}",
              "/destinations/1/timezone");
  expectError(R"({"provider": "meta", "access_token": "t", "template": "conf/replies/nope.txt"})",
              "/destinations/1/template");
  // The shipped template needs the clinic variables.
  expectError(
      R"({"provider": "meta", "access_token": "t", "template": "conf/replies/appointment-confirmed.txt"})",
      "%clinicAddress");
  expectError(R"({"provider": "meta", "access_token": "t", "window_template": {"name": "x"}, )" +
                  base + "}",
              "/destinations/1/window_template/language");
  expectError(
      R"({"provider": "twilio", "account_sid": "AC1", "auth_token": "x", "window_template": {"name": "x"}, )" +
          base + "}",
      "/destinations/1/window_template/content_sid");
  expectError(
      R"({"provider": "meta", "credentials": {"access_token": "t", "secret": "x"}, )" + base + "}",
      "/destinations/1/credentials/secret");
  expectError(
      R"({"provider": "meta", "access_token": "t", "variables": {"sender": "x"}, "template": "conf/replies/appointment-confirmed.txt"})",
      "/destinations/1/variables");
  expectError(R"({"provider": "meta", "access_token": "t", "base_url": "ftp://x", )" + base + "}",
              "/destinations/1/base_url");
}

BOOST_AUTO_TEST_CASE(registered_as_reply) {
  core::ConnectorRegistry registry;
  channels::registerReplyConnectors(registry);
  BOOST_TEST((registry.destination("reply") != nullptr));
  auto types = registry.destinationTypes();
  BOOST_TEST((std::find(types.begin(), types.end(), "reply") != types.end()));
}

// ------------------------------------------------------------------ a pass's replies at once

BOOST_AUTO_TEST_CASE(send_many_answers_each_reply_in_its_place) {
  FakeVendor fake = metaFake();
  auto dest = make(metaConfig(fake.baseUrl()));
  BOOST_REQUIRE(dest.has_value());
  core::Metadata status = inbound("meta");
  core::setMetadata(status, "kind", "status");
  Request confirmed(bundle(), inbound("meta"));
  Request callback(bundle(), status);
  Request refused(bundle(), inbound("meta", "dead"));
  Request again(bundle(), inbound("meta"));
  const core::DeliveryRequest* requests[] = {&confirmed.req, &callback.req, &refused.req,
                                             &again.req};
  std::vector<core::SentDelivery> sent(4);
  (*dest)->sendMany(requests, sent);
  for (const auto& s : sent) {
    BOOST_TEST(static_cast<int>(s.result.status) == static_cast<int>(core::DeliveryStatus::kOk));
  }
  BOOST_TEST(std::string(json(sent[0].result.response)["reply"].GetString()) == "confirmation");
  BOOST_TEST(std::string(json(sent[1].result.response)["skipped"].GetString()) ==
             "status callback");
  BOOST_TEST(std::string(json(sent[2].result.response)["reply"].GetString()) == "rejection");
  BOOST_TEST(std::string(json(sent[3].result.response)["reply"].GetString()) == "confirmation");
  BOOST_TEST(!sent[0].result.externalId.empty());
  const auto seen = fake.requests();
  BOOST_REQUIRE_EQUAL(seen.size(), 3u);  // the status callback is not answered
  int apologies = 0;
  for (const auto& s : seen) {
    BOOST_TEST(s.shapeError == "");
    apologies += contains(json(s.body)["text"]["body"].GetString(), "we're sorry") ? 1 : 0;
  }
  BOOST_TEST(apologies == 1);

  // Nothing listening: each reply that would be sent is retried, the skipped one still is Ok.
  int port = 0;
  {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = socket.address().port();
  }
  auto unreachable = make(metaConfig("http://127.0.0.1:" + std::to_string(port)));
  BOOST_REQUIRE(unreachable.has_value());
  (*unreachable)->sendMany(requests, sent);
  BOOST_TEST(static_cast<int>(sent[0].result.status) ==
             static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(contains(sent[0].result.response, "connection"));
  BOOST_TEST(static_cast<int>(sent[1].result.status) ==
             static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(static_cast<int>(sent[2].result.status) ==
             static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(static_cast<int>(sent[3].result.status) ==
             static_cast<int>(core::DeliveryStatus::kRetry));
}
