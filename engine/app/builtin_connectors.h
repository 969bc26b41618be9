// The one place where connector types are registered: one line per connector family.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::app {
void registerBuiltinConnectors(core::ConnectorRegistry& registry);
}
