// The `file` destination: one file per delivered message, written to a temporary name, fsynced
// and atomically renamed to <channel>-<message id>-<delivery id>.<extension>, so a crash leaves
// either no file or the whole file, and a repeated attempt of the same delivery rewrites the same
// name instead of adding a second file.
// Thread-safety: send() touches only its own temporary file; safe to call concurrently.
#pragma once

#include <memory>
#include <string>

#include "engine/core/connector.h"

namespace switchboard::channels {

struct FileDestinationConfig {
  std::string directory;
  std::string extension = "json";
  bool fsync = true;
};

class FileDestination final : public core::Destination {
 public:
  explicit FileDestination(FileDestinationConfig config);
  std::string endpointKey() const override { return "file:" + config_.directory; }
  core::DeliveryResult send(const core::DeliveryRequest& request) override;

  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);

 private:
  FileDestinationConfig config_;
};

void registerFileConnectors(core::ConnectorRegistry& registry);

}  // namespace switchboard::channels
