// Registration of the generic http source and destination.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerHttpConnectors(core::ConnectorRegistry& registry);
}
