// The generic `http` JSON source: one exact path, optional shared-secret header checked in
// constant time, body size limit, idempotency key from a JSON pointer or a header.
// Thread-safety: immutable after construction; handle() is safe to call concurrently.
#pragma once

#include <memory>
#include <string>

#include "engine/core/connector.h"
#include "engine/core/identifiers.h"

namespace switchboard::channels {

struct HttpSourceConfig {
  std::string path;
  std::size_t maxBodyBytes = 1 << 20;
  std::string secretHeader;  // empty: no shared secret
  std::string secret;
  std::string idempotencyPointer;  // JSON pointer into the body, e.g. /id
  std::string idempotencyHeader;   // or a header, e.g. Idempotency-Key
  bool requireJson = true;
};

class HttpJsonSource final : public core::HttpSource {
 public:
  explicit HttpJsonSource(HttpSourceConfig config);
  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.maxBodyBytes; }
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  HttpSourceConfig config_;
};

// Constant-time comparison of two byte strings (time depends only on the lengths).
using core::constantTimeEquals;

}  // namespace switchboard::channels
