#include "engine/app/builtin_connectors.h"

#include "channels/file/file_destination.h"
#include "channels/http/register.h"
#include "engine/runtime/builtin_stages.h"

namespace switchboard::app {

void registerBuiltinConnectors(core::ConnectorRegistry& registry) {
  runtime::registerBuiltinStages(registry);
  channels::registerHttpConnectors(registry);
  channels::registerFileConnectors(registry);
}

}  // namespace switchboard::app
