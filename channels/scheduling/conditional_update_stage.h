// The `conditional-update` stage: turns the conditional creates of a transaction Bundle (POST
// with ifNoneExist) into conditional updates (PUT [type]?[the same search]) for the listed
// resource types, so a later event about the same appointment or patient updates the resource the
// first one created. It stands in for a mapping-language way to ask for PUT (docs/scheduling.md).
// Thread-safety: immutable after construction; process() is safe to call concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/core/connector.h"

namespace switchboard::channels::scheduling {

class ConditionalUpdateStage final : public core::Stage {
 public:
  explicit ConditionalUpdateStage(std::vector<std::string> resourceTypes);
  // A payload that is not a transaction or batch Bundle fails (code structure); entries of other
  // types, and entries without ifNoneExist, are left as they are.
  core::StageResult process(core::PipelineMessage& message) const override;

  // Reads `resource_types` (required, non-empty).
  static Result<std::unique_ptr<core::Stage>> create(core::ConfigReader& config,
                                                     const core::ConnectorContext& ctx);

 private:
  std::vector<std::string> resourceTypes_;
};

}  // namespace switchboard::channels::scheduling
