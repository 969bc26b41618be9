#include "channels/mllp/register.h"

#include "channels/mllp/mllp_destination.h"
#include "channels/mllp/mllp_source.h"

namespace switchboard::channels {
void registerMllpConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("mllp", &mllp::MllpSource::create);
  registry.addDestination("mllp", &mllp::MllpDestination::create);
}
}  // namespace switchboard::channels
