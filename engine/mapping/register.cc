#include "engine/mapping/register.h"

#include "engine/mapping/mapping_stage.h"

namespace switchboard::mapping {
void registerMappingStages(core::ConnectorRegistry& registry) {
  registry.addStage("mapping", &MappingStage::fromConfig);
}

void registerMappingStages(core::ConnectorRegistry& registry,
                           std::function<Result<void>(const std::string& file)> check) {
  registry.addStage("mapping", [check = std::move(check)](core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx) {
    return MappingStage::fromConfigChecked(config, ctx, check);
  });
}
}  // namespace switchboard::mapping
