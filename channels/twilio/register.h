// Registration of the Twilio webhook source (type "twilio").
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerTwilioConnectors(core::ConnectorRegistry& registry);
}
