// Registration of the `reply` destination (answers the patient through Meta, 8x8 or Twilio).
// Thread-safety: call once at start-up, before the registry is shared.
#pragma once

#include "engine/core/connector.h"

namespace switchboard::channels {
void registerReplyConnectors(core::ConnectorRegistry& registry);
}
