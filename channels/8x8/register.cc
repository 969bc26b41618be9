#include "channels/8x8/register.h"

#include "channels/8x8/eight_by_eight_source.h"

namespace switchboard::channels {
void registerEightByEightConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("8x8", &EightByEightSource::create);
}
}  // namespace switchboard::channels
