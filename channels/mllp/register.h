// Registers the `mllp` source and destination types.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerMllpConnectors(core::ConnectorRegistry& registry);
}
