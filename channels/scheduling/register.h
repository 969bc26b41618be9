// Registration of the scheduling-system webhook source (type "scheduling") and the
// `conditional-update` stage its channel uses after the mapping.
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerSchedulingConnectors(core::ConnectorRegistry& registry);
}
