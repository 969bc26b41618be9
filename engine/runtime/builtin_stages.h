// Generic stages: the `passthrough` transformer and the `json-match` filter.
// Thread-safety: immutable after construction.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::runtime {
void registerBuiltinStages(core::ConnectorRegistry& registry);
}
