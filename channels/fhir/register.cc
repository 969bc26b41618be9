#include "channels/fhir/register.h"

#include "channels/fhir/fhir_destination.h"

namespace switchboard::channels {
void registerFhirConnectors(core::ConnectorRegistry& registry) {
  registry.addDestination("fhir", &fhir::FhirDestination::create);
}
}  // namespace switchboard::channels
