#include "channels/http/register.h"

#include "channels/http/http_destination.h"
#include "channels/http/http_source.h"

namespace switchboard::channels {
void registerHttpConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("http", &HttpJsonSource::create);
  registry.addDestination("http", &HttpDestination::create);
}
}  // namespace switchboard::channels
