#include "engine/mapping/register.h"

#include "engine/mapping/mapping_stage.h"

namespace switchboard::mapping {
void registerMappingStages(core::ConnectorRegistry& registry) {
  registry.addStage("mapping", &MappingStage::fromConfig);
}
}  // namespace switchboard::mapping
