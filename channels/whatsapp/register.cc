// Registration of the Meta WhatsApp Cloud API connectors.
#include "channels/whatsapp/register.h"

#include "channels/whatsapp/whatsapp_source.h"

namespace switchboard::channels {
void registerWhatsappConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("whatsapp", &whatsapp::WhatsappSource::create);
}
}  // namespace switchboard::channels
