// The shipped whatsapp-meta channel's reply destination, loaded as `switchboard serve` loads it,
// and the delivery the engine hands it after the EHR accepted a Bundle: what bench/reply and
// bench/delivery time. For the benchmarks only (prints to stderr and returns null on failure).
// Thread-safety: call from one thread; the destination itself is as thread-safe as in the engine.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <rapidjson/document.h>

#include "channels/reply/reply_destination.h"
#include "engine/core/clock.h"
#include "engine/core/config.h"

namespace switchboard::benchmarks {

// conf/channels/whatsapp-meta.json's reply destination under `root`, its ${env:...} defaults
// expanded as at start-up (the send API's token only has to be present: nothing is sent).
inline std::unique_ptr<channels::reply::ReplyDestination> shippedReplyDestination(
    const std::string& root, const std::shared_ptr<core::Clock>& clock, const char* tool) {
  ::setenv("SWITCHBOARD_META_ACCESS_TOKEN", "bench-token", 0);
  auto file = core::loadConfigFile(root + "/conf/channels/whatsapp-meta.json");
  if (!file) {
    std::fprintf(stderr, "%s: %s\n", tool, file.error().message.c_str());
    return nullptr;
  }
  const rapidjson::Value* config = nullptr;
  const auto& destinations = (*file->document)["destinations"];
  for (rapidjson::SizeType i = 0; i < destinations.Size(); ++i) {
    if (std::string(destinations[i]["type"].GetString()) == "reply") config = &destinations[i];
  }
  if (config == nullptr) {
    std::fprintf(stderr, "%s: no reply destination in conf/channels/whatsapp-meta.json\n", tool);
    return nullptr;
  }
  core::ConfigReader reader(*config, "conf/channels/whatsapp-meta.json", "/destinations/reply");
  reader.skip("type");
  reader.skip("name");
  reader.skip("after");
  core::ConnectorContext ctx;
  ctx.channelId = "whatsapp-meta";
  ctx.confDir = root + "/conf";
  auto destination = channels::reply::ReplyDestination::create(reader, ctx, clock);
  if (!destination) {
    std::fprintf(stderr, "%s: %s\n", tool, destination.error().message.c_str());
    return nullptr;
  }
  return std::move(*destination);
}

// The metadata of a Meta Flow submission's reply after the EHR answered `upstreamResponse`.
inline core::Metadata acceptedReplyMetadata(const core::Clock& clock,
                                            const std::string& upstreamResponse) {
  core::Metadata metadata;
  core::setMetadata(metadata, "provider", "meta");
  core::setMetadata(metadata, "kind", "flow");
  core::setMetadata(metadata, "sender", "+15551234567");
  core::setMetadata(metadata, "reply_to", "15551234567");
  core::setMetadata(metadata, "reply_from", "123456123");
  core::setMetadata(metadata, "received_at_ms", std::to_string(clock.nowMs() - 60'000));
  core::setMetadata(metadata, "upstream_status", "succeeded");
  core::setMetadata(metadata, "upstream_response", upstreamResponse);
  return metadata;
}

// The reply delivery of `bundle` with `metadata` (which must outlive it).
inline core::DeliveryRequest replyRequest(const std::string& bundle,
                                          const core::Metadata* metadata) {
  core::DeliveryRequest request;
  request.deliveryId = 41;
  request.messageId = 7;
  request.channelId = "whatsapp-meta";
  request.destination = "reply";
  request.payload = bundle;
  request.contentType = "application/fhir+json";
  request.metadata = metadata;
  return request;
}

}  // namespace switchboard::benchmarks
