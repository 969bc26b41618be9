#include "channels/scheduling/register.h"

#include "channels/scheduling/scheduling_source.h"

namespace switchboard::channels {
void registerSchedulingConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("scheduling", &scheduling::SchedulingSource::create);
}
}  // namespace switchboard::channels
