// Plain value types that cross module boundaries on the message path: inbound messages from
// sources, stored messages handed to stages, delivery requests and results.
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/error.h"

namespace switchboard::core {

// Ordered key/value pairs (sender, sender_raw, kind, ...). Small, so a vector beats a map.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Value of `key` in `metadata`, or nullptr.
const std::string* findMetadata(const Metadata& metadata, std::string_view key);
void setMetadata(Metadata& metadata, std::string key, std::string value);

// Milliseconds since the Unix epoch; the unit of every stored timestamp.
using Millis = std::int64_t;

// A message as a source connector hands it to intake, before it is stored.
struct InboundMessage {
  std::string idempotencyKey;  // provider message id (wamid, umid, MessageSid, ...); may be empty
  std::string contentType;     // e.g. application/json
  std::string body;            // the bytes to keep: the raw request, or one item split from it
  Metadata metadata;           // source facts: sender (E.164), sender_raw, kind, ...
};

// A message as stored and handed to the pipeline.
struct StoredMessage {
  std::int64_t id = 0;
  std::string channelId;
  std::string idempotencyKey;
  Millis receivedAtMs = 0;
  std::string contentType;
  std::string body;
  Metadata metadata;
  std::string status;  // see docs/store.md for the lifecycle
  std::string error;   // last pipeline error, if any
};

// What a destination is asked to send.
struct DeliveryRequest {
  std::int64_t deliveryId = 0;
  std::int64_t messageId = 0;
  std::string channelId;
  std::string destination;  // destination name within the channel
  int attempt = 1;          // 1 for the first try
  std::string_view payload;
  std::string_view contentType;
  const Metadata* metadata = nullptr;  // the message's metadata; never null when sent by the runner
};

enum class DeliveryStatus {
  kOk,     // accepted by the peer
  kRetry,  // transient: the runner backs off and tries again
  kFail,   // permanent: the runner dead-letters at once
};

struct DeliveryResult {
  DeliveryStatus status = DeliveryStatus::kOk;
  int responseCode = 0;          // HTTP status, or 0
  std::string response;          // short summary of the peer's answer, kept on the attempt (no PHI)
  std::optional<std::chrono::milliseconds> retryAfter;  // peer-requested delay (429 Retry-After)
  // The peer's id of what it accepted (a WhatsApp wamid, an 8x8 umid, a Twilio SM sid), so later
  // status callbacks naming it can be recorded against this delivery. Empty when none.
  std::string externalId;
  // Sending this payload again would create nothing new at the peer (conditional creates, a
  // deterministic file name): the runner then records the attempt without a flush of its own (an
  // OS crash may roll the record back, and the payload is sent again).
  bool repeatable = false;

  static DeliveryResult ok(std::string response = {}, int code = 0) {
    return {DeliveryStatus::kOk, code, std::move(response), std::nullopt, {}};
  }
  static DeliveryResult retry(std::string response, int code = 0) {
    return {DeliveryStatus::kRetry, code, std::move(response), std::nullopt, {}};
  }
  static DeliveryResult fail(std::string response, int code = 0) {
    return {DeliveryStatus::kFail, code, std::move(response), std::nullopt, {}};
  }
};

}  // namespace switchboard::core
