// Registration of the `reply` destination; see register.h.
#include "channels/reply/register.h"

#include "channels/reply/reply_destination.h"

namespace switchboard::channels {
void registerReplyConnectors(core::ConnectorRegistry& registry) {
  registry.addDestination("reply",
                          [](core::ConfigReader& config, const core::ConnectorContext& ctx) {
                            return reply::ReplyDestination::create(config, ctx);
                          });
}
}  // namespace switchboard::channels
