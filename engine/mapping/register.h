// Registration of the mapping module's pipeline stages ("mapping").
#pragma once

#include "engine/core/connector.h"

namespace switchboard::mapping {
void registerMappingStages(core::ConnectorRegistry& registry);
}
