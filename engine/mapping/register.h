// Registration of the mapping module's pipeline stages ("mapping").
#pragma once

#include <functional>
#include <string>

#include "engine/core/connector.h"

namespace switchboard::mapping {
void registerMappingStages(core::ConnectorRegistry& registry);
// The same, with every mapping file also passed through `check` when it loads and reloads (the
// app passes the FHIR lint against fhir-profiles when engine/fhir is built).
void registerMappingStages(core::ConnectorRegistry& registry,
                           std::function<Result<void>(const std::string& file)> check);
}
