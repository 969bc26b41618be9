// Registration of the 8x8 Chat Apps source (type "8x8").
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerEightByEightConnectors(core::ConnectorRegistry& registry);
}
