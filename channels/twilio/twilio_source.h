// The `twilio` source: Twilio messaging webhooks (WhatsApp and SMS). Verifies X-Twilio-Signature
// against every configured auth token (rotation), over the public URL with and without its port;
// form posts sign the sorted parameters, JSON posts sign the URL carrying bodySHA256 (which must
// equal the body's SHA-256). One inbound message (or status callback) per request, keyed by
// MessageSid; the raw form body is stored. Answers with empty TwiML.
// Thread-safety: immutable after construction; handle() is safe to call concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/connector.h"

namespace switchboard::channels {

struct TwilioSourceConfig {
  std::string path;
  std::size_t maxBodyBytes = 1 << 20;
  std::vector<std::string> authTokens;  // any of them may sign (token rotation)
  // The URL Twilio calls (scheme://host[:port]/path), without query; the request's query string
  // is appended. Empty: rebuilt from X-Forwarded-Proto/Host (or X-Forwarded-Host) and the path.
  std::string publicUrl;
};

class TwilioSource final : public core::HttpSource {
 public:
  explicit TwilioSource(TwilioSourceConfig config);
  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.maxBodyBytes; }
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  // The URL the signature is checked against for `request`.
  std::string signedUrl(const core::HttpRequest& request) const;

  // Reads `path` (required), `max_body_bytes`, `auth_tokens` (array) or `auth_token`, and
  // `public_url`. Tokens should be written as ${env:NAME} or ${file:/path}.
  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  TwilioSourceConfig config_;
};

// The empty TwiML document Twilio expects as an answer.
inline constexpr std::string_view kEmptyTwiml =
    R"(<?xml version="1.0" encoding="UTF-8"?><Response></Response>)";

namespace twilio {
// "+15551234567" from "whatsapp:+15551234567", "+1 555 123 4567" or "15551234567"; empty when the
// text is not a phone number of 7 to 15 digits (e.g. "messenger:123" or a BSUID).
std::string normalizeSender(std::string_view text);
}  // namespace twilio

}  // namespace switchboard::channels
