// The `8x8` source: 8x8 Chat Apps webhooks (WhatsApp). Authenticates each request by the
// configured Authorization header value (constant-time; 8x8 documents no body signature), then
// turns an `inbound_message_received` event (v2 or v3 envelope) into one message keyed by its umid
// and an `outbound_message_status_changed` receipt into one kind=status message. Other event types
// are answered 200 and nothing is stored. The raw request body is what gets stored.
// Thread-safety: immutable after construction; handle() is safe to call concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "engine/core/connector.h"
#include "engine/core/identifiers.h"

namespace switchboard::channels {

struct EightByEightSourceConfig {
  std::string path;
  std::size_t maxBodyBytes = 1 << 20;
  std::string authorization;  // the exact Authorization header value 8x8 sends
};

class EightByEightSource final : public core::HttpSource {
 public:
  explicit EightByEightSource(EightByEightSourceConfig config);
  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.maxBodyBytes; }
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  // Reads `path` (required), `max_body_bytes`, `authorization` (required, non-empty; write it as
  // ${env:NAME} or ${file:/path}).
  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  EightByEightSourceConfig config_;
};

namespace eightbyeight {

// "+15551234567" from "+1 555-123-4567", "15551234567" or "(+1) 555.123.4567"; empty when the text
// is not a phone number of 7 to 15 digits (for example a WhatsApp BSUID).
using core::normalizeE164;
using core::constantTimeEquals;

}  // namespace eightbyeight

}  // namespace switchboard::channels
