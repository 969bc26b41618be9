// bench/reply: what the reply destination spends composing one confirmation (no network): the
// shipped whatsapp-meta channel's reply destination renders conf/replies/appointment-confirmed.txt
// over an appointment Bundle, in a loop on one thread; beside it, the Bundle's parse alone into
// FHIRPath nodes, for scale. The journey (bench/e2e) does this once per message.
// Usage: bench_reply [SECONDS] [RUNS] [BUNDLE]; BENCH_COMPOSE_ONLY=1 skips the parse-only line.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <rapidjson/document.h>

#include "bench/bench_support.h"
#include "channels/reply/reply_destination.h"
#include "engine/core/config.h"
#include "engine/core/heap.h"
#include "engine/fhirpath/fhirpath.h"

using namespace switchboard;

namespace {

template <typename F>
void measure(const char* label, double seconds, int runs, F&& once) {
  const benchmarks::Rate rate = benchmarks::medianRate(seconds, runs, once);
  std::printf("%-14s %9.0f per CPU second (%6.1f us each), %9.0f per wall second (medians of %d runs of "
              "%.1f s)\n",
              label, rate.cpu, 1e6 / rate.cpu, rate.wall, runs, seconds);
}

}  // namespace

int main(int argc, char** argv) {
  core::keepFreedMemory();  // as `switchboard serve`, whose work this measures
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::string root = SWITCHBOARD_SOURCE_DIR;
  const std::string bundlePath = argc > 3 ? argv[3] : root + "/tests/data/reply/appointment-bundle.json";
  const std::string bundle = benchmarks::readFile(bundlePath);

  // The shipped channel's reply destination, its ${env:...} defaults expanded as at start-up
  // (the send API's token only has to be present: nothing is sent).
  ::setenv("SWITCHBOARD_META_ACCESS_TOKEN", "bench-token", 0);
  auto file = core::loadConfigFile(root + "/conf/channels/whatsapp-meta.json");
  if (!file) {
    std::fprintf(stderr, "bench_reply: %s\n", file.error().message.c_str());
    return 1;
  }
  const rapidjson::Value* config = nullptr;
  const auto& destinations = (*file->document)["destinations"];
  for (rapidjson::SizeType i = 0; i < destinations.Size(); ++i) {
    if (std::string(destinations[i]["type"].GetString()) == "reply") config = &destinations[i];
  }
  if (config == nullptr) {
    std::fprintf(stderr, "bench_reply: no reply destination in conf/channels/whatsapp-meta.json\n");
    return 1;
  }
  core::ConfigReader reader(*config, "conf/channels/whatsapp-meta.json", "/destinations/reply");
  reader.skip("type");
  reader.skip("name");
  reader.skip("after");
  core::ConnectorContext ctx;
  ctx.channelId = "whatsapp-meta";
  ctx.confDir = root + "/conf";
  auto clock = std::make_shared<core::SystemClock>();
  auto destination = channels::reply::ReplyDestination::create(reader, ctx, clock);
  if (!destination) {
    std::fprintf(stderr, "bench_reply: %s\n", destination.error().message.c_str());
    return 1;
  }

  // What the engine hands the destination after the EHR accepted the Bundle.
  core::Metadata metadata;
  core::setMetadata(metadata, "provider", "meta");
  core::setMetadata(metadata, "kind", "flow");
  core::setMetadata(metadata, "sender", "+15551234567");
  core::setMetadata(metadata, "reply_to", "15551234567");
  core::setMetadata(metadata, "reply_from", "123456123");
  core::setMetadata(metadata, "received_at_ms", std::to_string(clock->nowMs() - 60'000));
  core::setMetadata(metadata, "upstream_status", "succeeded");
  core::setMetadata(metadata, "upstream_response",
                    R"({"entry":[{"status":"201 Created","location":"Patient/7/_history/1"},)"
                    R"({"status":"201 Created","location":"Appointment/12/_history/1"}]})");
  core::DeliveryRequest request;
  request.deliveryId = 41;
  request.messageId = 7;
  request.channelId = "whatsapp-meta";
  request.destination = "reply";
  request.payload = bundle;
  request.contentType = "application/fhir+json";
  request.metadata = &metadata;

  auto first = (*destination)->compose(request);
  if (!first || first->message.text.empty()) {
    std::fprintf(stderr, "bench_reply: compose failed: %s\n",
                 first ? "empty text" : first.error().message.c_str());
    return 1;
  }
  std::printf("Bundle %zu bytes (%s); confirmation %zu bytes\n", bundle.size(), bundlePath.c_str(),
              first->message.text.size());
  if (std::getenv("BENCH_COMPOSE_ONLY") == nullptr) {  // set it for profiles of compose alone
    measure("parse only:", seconds, runs, [&] {
      auto node = fhirpath::parseJsonResource(bundle);
      if (!node) std::abort();
    });
  }
  measure("compose:", seconds, runs, [&] {
    auto composed = (*destination)->compose(request);
    if (!composed) std::abort();
  });
  return 0;
}
