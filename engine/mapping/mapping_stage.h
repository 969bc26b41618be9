// The "mapping" pipeline stage: runs a mapping file over the message payload and replaces it
// with the produced FHIR Bundle (application/fhir+json). The mapping file is re-read when it or
// its ConceptMaps change; a version that fails to load is reported on stderr and the previous
// one stays in use. Thread-safety: process() may run on many threads; reload is serialised by
// an internal mutex and never blocks a run already in progress.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/connector.h"
#include "engine/mapping/mapping.h"

namespace switchboard::mapping {

struct MappingStageConfig {
  std::string file;                 // absolute path of the mapping file
  fhirpath::Environment variables;  // the stage's "variables" (facility, timezone, ...)
  std::vector<std::string> kinds;   // metadata kinds to map; empty = all
  std::chrono::milliseconds reloadInterval{1000};  // 0: check the file on every message
  LoadOptions load;
  // Extra check of the mapping file after it loads (e.g. lint against fhir-profiles); an error
  // stops deployment, or at reload keeps the previous version. Empty: none.
  std::function<Result<void>(const std::string& file)> check;
};

class MappingStage final : public core::Stage {
 public:
  // Loads the mapping once; an error here stops the channel from deploying.
  static Result<std::unique_ptr<MappingStage>> create(MappingStageConfig config);
  // Factory for the registry: config {"file", "variables", "kinds", "reload_interval_ms"}.
  static Result<std::unique_ptr<core::Stage>> fromConfig(core::ConfigReader& config,
                                                         const core::ConnectorContext& ctx);
  // fromConfig with a file check (see MappingStageConfig::check).
  static Result<std::unique_ptr<core::Stage>> fromConfigChecked(
      core::ConfigReader& config, const core::ConnectorContext& ctx,
      const std::function<Result<void>(const std::string&)>& check);

  core::StageResult process(core::PipelineMessage& message) const override;

  // The mapping in use now (after any reload check).
  std::shared_ptr<const Mapping> current() const;

 private:
  explicit MappingStage(MappingStageConfig config) : config_(std::move(config)) {}
  std::string fileSignature() const;  // mtimes and sizes of the file and its ConceptMaps
  void maybeReload() const;

  MappingStageConfig config_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Mapping> mapping_;
  mutable std::string signature_;
  mutable std::chrono::steady_clock::time_point lastCheck_{};
};

}  // namespace switchboard::mapping
