// Registration of the Meta WhatsApp Cloud API connectors (source type "whatsapp").
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerWhatsappConnectors(core::ConnectorRegistry& registry);
}
