// Registration of the scheduling-system webhook source (type "scheduling").
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerSchedulingConnectors(core::ConnectorRegistry& registry);
}
