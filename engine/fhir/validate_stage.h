// The "fhir-validate" pipeline stage: validates the payload (a FHIR resource or Bundle, JSON or
// XML, e.g. the mapping stage's output) against fhir-profiles/ and fails the message with the
// first issues when it holds errors, so no invalid Bundle reaches a destination.
// Thread-safety: process() may run on many threads at once (the Validator is immutable).
#pragma once

#include <memory>
#include <string>

#include "engine/core/connector.h"
#include "engine/fhir/validator.h"

namespace switchboard::fhir {

struct ValidateStageConfig {
  std::string definitionsDir;  // fhir-profiles/ to load
  ValidationOptions options;
  bool failOnWarning = false;
};

class ValidateStage final : public core::Stage {
 public:
  // Loads the definitions (shared between stages that name the same directory); fails on a
  // missing directory or an unknown profile.
  static Result<std::unique_ptr<ValidateStage>> create(ValidateStageConfig config);
  // Factory for the registry: config {"profiles", "definitions", "fail_on_warning",
  // "best_practice"}.
  static Result<std::unique_ptr<core::Stage>> fromConfig(core::ConfigReader& config,
                                                         const core::ConnectorContext& ctx);

  // Continue (with a "validated" event) when the payload has no error; otherwise a failure whose
  // Error carries the issue code of the first error, a summary of the first issues and its
  // FHIRPath location.
  core::StageResult process(core::PipelineMessage& message) const override;

 private:
  ValidateStage(ValidateStageConfig config, Validator validator)
      : config_(std::move(config)), validator_(std::move(validator)) {}

  ValidateStageConfig config_;
  Validator validator_;
};

// Registers "fhir-validate".
void registerFhirStages(core::ConnectorRegistry& registry);

}  // namespace switchboard::fhir
