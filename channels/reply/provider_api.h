// The three send APIs a reply goes out through, as data: which URL, headers and body a text or
// template message becomes, and how a provider's answer reads (outbound message id, error text).
//   Meta Cloud API: POST {base}/{version}/{phone_number_id}/messages, JSON, Bearer access token;
//                   answer {"messages":[{"id":"wamid..."}]}, errors {"error":{"code","message"}}.
//   8x8 Chat Apps:  POST {base}/api/v1/subaccounts/{subAccountId}/messages, JSON, Bearer API key;
//                   answer {"umid":"..."}, errors {"code","message","errorId"}.
//   Twilio:         POST {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded, Basic auth;
//                   answer {"sid":"SM..."}, errors {"code","message","status"}.
// No network here, so every byte is testable. Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/http_types.h"

namespace switchboard::channels::reply {

enum class Provider { kMeta, kEightByEight, kTwilio };

std::optional<Provider> parseProvider(std::string_view name);  // "meta" | "8x8" | "twilio"
const char* providerName(Provider provider);
std::string defaultBaseUrl(Provider provider);
// Longest text body each API takes, in characters (code points): Meta 4096, 8x8 35000,
// Twilio 1600.
std::size_t maxTextChars(Provider provider);

// Account settings, resolved from config (secrets already expanded by the config loader).
struct ProviderSettings {
  Provider provider = Provider::kMeta;
  std::string baseUrl;      // no trailing '/'
  std::string apiVersion;   // Meta, e.g. v21.0
  std::string accessToken;  // Meta
  std::string apiKey;       // 8x8
  std::string accountSid;   // Twilio
  std::string authToken;    // Twilio
};

// One message to send.
struct OutboundMessage {
  std::string to;    // Meta: wa_id or BSUID; 8x8: +E.164; Twilio: "whatsapp:+..."
  std::string from;  // Meta: phone_number_id; 8x8: subAccountId; Twilio: sender address
  bool isTemplate = false;
  std::string text;  // free-form text
  // Template messages: Meta and 8x8 use name + language; Twilio uses contentSid.
  std::string templateName;
  std::string templateLanguage;
  std::string contentSid;
  std::vector<std::string> parameters;  // body parameters {{1}}, {{2}}, ... in order
  std::string clientReference;          // 8x8 clientMessageId (at most 50 characters)
};

struct HttpCall {
  std::string url;
  std::string contentType;
  std::vector<core::HttpHeader> headers;  // Authorization and friends (no Content-Type)
  std::string body;
};

// The request for `message`; an error when a required value (recipient, sender id, template
// name...) is missing.
Result<HttpCall> buildCall(const ProviderSettings& settings, const OutboundMessage& message);

// The provider's id of the message it accepted, from a 2xx body ("" when absent).
std::string outboundIdFrom(Provider provider, std::string_view body);

struct ProviderError {
  std::string code;     // provider error code as text ("131047", "21211"), may be empty
  std::string message;  // provider's message with digit runs (phone numbers) masked
};
// Reads a provider error body; falls back to an empty code and no message.
ProviderError providerErrorFrom(Provider provider, std::string_view body);
// Meta answers some rate limits with 400 and a throttling code (130429, 131056): retry those.
bool isThrottled(Provider provider, const ProviderError& error);

// Masks runs of 5 or more digits (phone numbers, ids that could identify a patient) as "***".
std::string maskDigits(std::string_view text);
// Cuts `text` to at most `maxChars` UTF-8 code points without splitting one.
std::string truncateUtf8(std::string_view text, std::size_t maxChars);
// application/x-www-form-urlencoded encoding of one value ('+' for space).
std::string formEncode(std::string_view text);

}  // namespace switchboard::channels::reply
