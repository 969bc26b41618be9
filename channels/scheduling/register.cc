#include "channels/scheduling/register.h"

#include "channels/scheduling/conditional_update_stage.h"
#include "channels/scheduling/scheduling_source.h"

namespace switchboard::channels {
void registerSchedulingConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("scheduling", &scheduling::SchedulingSource::create);
  registry.addStage("conditional-update", &scheduling::ConditionalUpdateStage::create);
}
}  // namespace switchboard::channels
