// The `reply` destination: answers the patient on the channel they wrote from (Meta Cloud API,
// 8x8 Chat Apps or Twilio) once the EHR has answered. It runs with "after": "<fhir destination>",
// so its metadata carries upstream_status and upstream_response next to the inbound metadata
// (reply_to, reply_from, kind, sender, received_at_ms); its payload is the FHIR transaction
// Bundle the EHR received.
//  - EHR accepted (upstream_status ok/succeeded): the `template` file rendered over the Bundle,
//    with %appointmentNumber taken from the Appointment location in upstream_response.
//  - EHR refused (anything else): the `rejection_template` (an apology with %clinicPhone).
//  - More than window_hours since received_at_ms: WhatsApp allows only a pre-approved template
//    message, so the configured window template is sent instead (or the delivery fails
//    permanently, saying so, when none is configured).
//  - Status callbacks (kind=status) and messages without reply_to are not answered: Ok with
//    {"skipped": why}.
// Results: 2xx Ok with {"outbound_id": provider message id}; 429 Retry honouring Retry-After;
// 408/425/5xx/timeout/connection failure Retry; other 4xx Fail with the provider's error code
// and message (digit runs masked; the message text itself is never logged or stored).
// A plain http:// base URL is served by the lean HttpClient, and sendMany() posts a pass's replies
// at once over up to kConnections connections; https:// goes through Poco NetSSL, one after
// another.
// Thread-safety: configuration and templates are immutable after create(); send() and sendMany()
// take kept connections (ClientPool, HttpClient) or open them, and are safe to call concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <Poco/Net/Context.h>

#include "channels/http/client_pool.h"
#include "channels/http/http_client.h"
#include "channels/reply/provider_api.h"
#include "channels/reply/reply_template.h"
#include "engine/core/clock.h"
#include "engine/core/connector.h"
#include "engine/core/time_zone.h"

namespace switchboard::channels::reply {

enum class DateStyle {
  kUs,    // Monday, March 9, 2026
  kIntl,  // Monday 9 March 2026
  kIso,   // 2026-03-09
};

// A template message for use outside the 24-hour window. Meta and 8x8: name + language;
// Twilio: content_sid. `parameters` are reply templates rendered like the text template.
struct WindowTemplate {
  bool configured = false;
  std::string name;
  std::string language;
  std::string contentSid;
  std::vector<ReplyTemplate> parameters;
};

struct ReplyConfig {
  ProviderSettings provider;
  // Sender fallbacks when the inbound metadata has no reply_from.
  std::string phoneNumberId;  // Meta
  std::string subaccountId;   // 8x8
  std::string from;           // Twilio
  std::chrono::milliseconds timeout{10000};
  std::shared_ptr<const ReplyTemplate> confirmation;
  std::shared_ptr<const ReplyTemplate> rejection;  // may be null: refusals are then not answered
  std::string clinicPhone;
  std::shared_ptr<const core::TimeZone> zone;  // null: show the instant in its own offset
  std::int64_t windowHours = 24;
  WindowTemplate windowTemplate;
  WindowTemplate rejectionWindowTemplate;  // falls back to windowTemplate when not configured
  std::vector<std::pair<std::string, std::string>> variables;  // extra %name values
  std::vector<std::string> kinds;  // answer only these inbound kinds (empty: all but status)
  DateStyle dateStyle = DateStyle::kUs;
  bool clock24 = false;
};

// What a delivery turns into before it is sent.
struct ComposedReply {
  enum class Outcome { kSend, kSkip };
  Outcome outcome = Outcome::kSend;
  std::string skipReason;
  bool rejection = false;  // the apology rather than the confirmation
  OutboundMessage message;
};

class ReplyDestination final : public core::Destination {
 public:
  ReplyDestination(ReplyConfig config, std::shared_ptr<const core::Clock> clock);
  ~ReplyDestination() override;

  std::string endpointKey() const override;
  core::DeliveryResult send(const core::DeliveryRequest& request) override;
  void sendMany(std::span<const core::DeliveryRequest* const> requests,
                std::span<core::SentDelivery> sent) override;
  std::size_t sendsAtOnce() const override { return kConnections; }

  // Connections one sendMany() uses at most (one request in flight on each).
  static constexpr std::size_t kConnections = 8;

  // Decides and renders what `request` sends (no network). Errors are permanent: a template
  // that cannot be rendered, a Bundle that cannot be read, no window template outside the window.
  Result<ComposedReply> compose(const core::DeliveryRequest& request) const;

  // Factory for the registry (system clock) and for tests (any clock).
  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);
  static Result<std::unique_ptr<ReplyDestination>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx,
                                                          std::shared_ptr<const core::Clock> clock);

 private:
  ReplyConfig config_;
  std::shared_ptr<const core::Clock> clock_;
  fhirpath::Expression appointmentStart_;
  std::shared_ptr<const ReplyPlan> appointmentStartPlan_;  // its plan; null: the engine's
  // One delivery made ready to send: the provider's URL, headers and body; or the result it gets
  // unsent (skipped, or a reply that cannot be composed).
  struct Prepared {
    HttpCall call;
    std::vector<core::HttpHeader> headers;  // Content-Type, Accept, then the call's
    bool rejection = false;
    bool isTemplate = false;
    std::optional<core::DeliveryResult> unsent;
  };
  Prepared prepare(const core::DeliveryRequest& request) const;
  // The delivery's result from the provider's answer (or the exchange's failure).
  core::DeliveryResult interpret(const Prepared& prepared, const Result<HttpReply>& answer) const;
  // One exchange: the lean client for http://, Poco (TLS) otherwise.
  Result<HttpReply> exchange(const Prepared& prepared);

  static constexpr std::size_t kMaxBody = 65536;
  Poco::Net::Context::Ptr tls_;  // for https base URLs: verifies peers against the system CAs
  ClientPool connections_;       // kept-alive connections to an https:// provider API
  HttpClient client_;            // kept-alive connections to an http:// one
};

// The id of the first "Appointment/<id>" location in the FHIR destination's compact response
// ({"entry":[{"status":"201 Created","location":"Appointment/12/_history/1"}]}); also finds it
// in a response cut short by storage limits, and in absolute URLs. Empty when there is none.
std::string appointmentNumberFrom(std::string_view upstreamResponse);

// The %variables every reply template may use; config "variables" add to them.
const std::vector<std::string>& builtinReplyVariables();

// An appointment start shown in the clinic's zone.
struct LocalDateTime {
  std::string date;     // per DateStyle
  std::string time;     // "10:30 AM" or "10:30"; empty when the start has no time of day
  std::string isoDate;  // 2026-03-09
};
// `start` is a FHIR instant or dateTime. With `zone`, the instant is converted to that zone's
// offset at that moment; without it (or when `start` carries no offset) it is shown as written.
std::optional<LocalDateTime> localDateTime(std::string_view start, const core::TimeZone* zone,
                                           DateStyle style, bool clock24);

}  // namespace switchboard::channels::reply
