// Registration of the `fhir` destination.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerFhirConnectors(core::ConnectorRegistry& registry);
}
