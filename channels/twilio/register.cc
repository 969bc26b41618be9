#include "channels/twilio/register.h"

#include "channels/twilio/twilio_source.h"

namespace switchboard::channels {
void registerTwilioConnectors(core::ConnectorRegistry& registry) {
  registry.addSource("twilio", &TwilioSource::create);
}
}  // namespace switchboard::channels
